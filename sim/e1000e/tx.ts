/**
 * The 82574L model's transmit engine (82574 §7.2): TCTL (EN, PSP), one ring of legacy descriptors
 * (§7.2.10.1) with its base, length, head and tail registers; frames assembled from descriptors
 * up to EOP, padded to 60 bytes with TCTL.PSP, sent to the wire; STA.DD written back for RS;
 * extended (DEXT) descriptors skipped and counted.
 *
 * Transmit runs as the function's work routine (sim/sched.ts), kicked by TDT and TCTL writes:
 * inside the write ('sync') or after the driver's batch ('deferred'); the wire delivers to the
 * peer at once. Descriptors up to the tail (or the ring's end) are fetched in one DMA read, as the
 * hardware's prefetch does. A refused buffer read drops the frame (TXD completes, nothing is sent);
 * a refused descriptor fetch or STA write-back stops the ring (`ringFault = 'tx'`) until reset.
 */
import { REG } from '../../spec/e1000e/registers.js';
import { DESC_SIZE, TXD, TXD_CMD, TXD_STA } from '../../spec/e1000e/descriptors.js';
import { ETH } from '../../spec/e1000e/ethernet.js';
import type { RegisterDef } from '../regs.js';
import type { DeviceWork } from '../sched.js';
import { MAX_IOVA, type E1000eCore } from './core.js';
import { TxFault } from './fault-plan.js';
import type { Interrupts } from './interrupts.js';
import { I, type Statistics } from './statistics.js';
import { isBroadcast } from './ethernet.js';

const { TCTL, ICR } = REG;
const TCTL_I = TCTL.offset >>> 2;
const TDBAL_I = REG.TDBAL.offset >>> 2;
const TDBAH_I = REG.TDBAH.offset >>> 2;
const TDLEN_I = REG.TDLEN.offset >>> 2;
const TDH_I = REG.TDH.offset >>> 2;
const TDT_I = REG.TDT.offset >>> 2;
const EN = TCTL.EN.mask,
  PSP = TCTL.PSP.mask;
const TXDW = ICR.TXDW.mask,
  TXQE = ICR.TXQE.mask;
const EOP = TXD_CMD.EOP.mask,
  RS = TXD_CMD.RS.mask,
  DEXT = TXD_CMD.DEXT.mask;
const DD = TXD_STA.DD.mask;
/** STA is the low nibble of its byte; the high nibble is reserved and kept. */
const STA_RESERVED = 0xf0;
const ADDR_AT = TXD.BUFFER_ADDR.offset,
  LENGTH_AT = TXD.LENGTH.offset,
  CMD_AT = TXD.CMD.offset,
  STA_AT = TXD.STA.offset;
/** Frame assembly limit of the model (16 KiB); longer frames are dropped at EOP. */
const TX_MAX = 16384;
/** Descriptors fetched per DMA burst at most. */
const FETCH_MAX = 64;
/**
 * Descriptors processed per run of the work routine at most (four bursts): a ring of 64K
 * descriptors goes out in steps, the rest in the next deferred step (sim/sched.ts), so one
 * driver's ring never holds the event loop for more than this many frames.
 */
export const TX_BUDGET = 256;

export class TxEngine {
  private readonly core: E1000eCore;
  private readonly regs: Uint32Array;
  private readonly irq: Interrupts;
  private readonly stats: Statistics;
  private work: DeviceWork | null = null;
  private readonly fetched = new Uint8Array(FETCH_MAX * DESC_SIZE);
  private readonly fetchedView = new DataView(this.fetched.buffer);
  private readonly frame = new Uint8Array(TX_MAX);
  private len = 0;
  /** The frame being assembled lost a buffer (refused read, or too long): dropped at EOP. */
  private blocked = false;

  constructor(core: E1000eCore, irq: Interrupts, stats: Statistics) {
    this.core = core;
    this.regs = core.regs;
    this.irq = irq;
    this.stats = stats;
  }

  /** Transmit runs as `work`, the function's work routine (before attach there is no DMA engine: nothing to run). */
  attach(work: DeviceWork): void {
    this.work = work;
  }

  registers(): RegisterDef[] {
    const c = this.core,
      r = this.regs;
    return [
      c.register(
        'TCTL',
        () => r[TCTL_I]!,
        (v) => {
          r[TCTL_I] = v;
          this.kick();
        },
      ),
      c.stored('TIPG'),
      c.stored('TDBAL', REG.TDBAL.TDBAL.mask),
      c.stored('TDBAH'),
      c.stored('TDLEN', REG.TDLEN.LEN.mask),
      c.plan === null
        ? c.stored('TDH', REG.TDH.TDH.mask)
        : c.register(
            'TDH',
            // e1000e.head-range: a read of TDH may answer a head outside the ring.
            () => c.plan!.tdh(r[TDH_I]!, r[TDLEN_I]! / DESC_SIZE),
            (v) => {
              r[TDH_I] = v & REG.TDH.TDH.mask;
            },
          ),
      c.register(
        'TDT',
        () => r[TDT_I]!,
        (v) => {
          r[TDT_I] = v & REG.TDT.TDT.mask;
          this.kick();
        },
      ),
      c.stored('TIDV'),
      c.stored('TXDCTL'),
    ];
  }

  /** Reset: the frame being assembled forgotten (the registers are cleared by the caller). */
  reset(): void {
    this.len = 0;
    this.blocked = false;
  }

  private kick(): void {
    if (this.work !== null) this.work.kick();
  }

  /** The work routine: process descriptors from TDH up to TDT. */
  transmit(): void {
    const core = this.core,
      r = this.regs;
    if (!(r[TCTL_I]! & EN) || core.hung || core.ringFault === 'tx' || core.dma === null) return;
    const dma = core.dma;
    const n = r[TDLEN_I]! / DESC_SIZE;
    if (n === 0) return;
    const base = r[TDBAL_I]! + r[TDBAH_I]! * 0x1_0000_0000;
    const tail = r[TDT_I]!;
    let head = r[TDH_I]!;
    if (head >= n || tail >= n) return; // out-of-range pointers: the ring is not processed
    const fetched = this.fetched;
    const fv = this.fetchedView;
    let causes = 0;
    const burst = core.wireBurst;
    if (burst !== null) burst(true);
    let budget = TX_BUDGET;
    const start = head;
    while (head !== tail && budget > 0) {
      // Fetch the descriptors up to the tail (or the ring's end) in one burst: one DMA read per run.
      const run = Math.min(tail > head ? tail - head : n - head, FETCH_MAX, budget);
      budget -= run;
      const at0 = base + head * DESC_SIZE;
      if (!(at0 + run * DESC_SIZE <= MAX_IOVA ? dma.read(at0, fetched, 0, run * DESC_SIZE) : core.refuse(at0, run * DESC_SIZE, 'read'))) {
        core.ringFault = 'tx';
        break;
      }
      let k = 0;
      for (; k < run; k++) {
        const at = k * DESC_SIZE;
        const cmd = fetched[at + CMD_AT]!;
        if (cmd & DEXT) {
          core.counters.txUnsupported++;
        } else {
          const len = fv.getUint16(at + LENGTH_AT, true);
          const addr = fv.getUint32(at + ADDR_AT, true) + fv.getUint32(at + ADDR_AT + 4, true) * 0x1_0000_0000;
          if (core.plan !== null && core.plan.thunderclap !== null) core.plan.thunderclap.txDescriptor(addr, len);
          if (this.len + len > TX_MAX)
            this.blocked = true; // oversize: dropped at EOP
          else if (len > 0 && !(addr + len <= MAX_IOVA ? dma.read(addr, this.frame, this.len, len) : core.refuse(addr, len, 'read'))) this.blocked = true;
          else this.len += len;
          if (cmd & EOP) this.send();
        }
        if (cmd & RS) {
          fetched[at + STA_AT] = (fetched[at + STA_AT]! & STA_RESERVED) | DD;
          if (!core.dmaWrite(base + (head + k) * DESC_SIZE + STA_AT, fetched, at + STA_AT, 1)) {
            core.ringFault = 'tx';
            k++;
            break;
          }
          causes |= TXDW;
        }
      }
      head = (head + k) % n;
      if (core.ringFault === 'tx') break;
    }
    if (burst !== null) burst(false);
    r[TDH_I] = head;
    if (core.plan !== null && head !== start) causes |= this.faultyRun(base, tail);
    if (head === tail) causes |= TXQE;
    if (causes) this.irq.cause(causes);
    if (head !== tail && core.ringFault !== 'tx' && budget === 0) {
      // Budget spent with descriptors left: go on in the next step.
      core.counters.txYields++;
      this.kick();
    }
  }

  /** The end of a run with a fault plan (sim/e1000e/fault-plan.ts): what the device does wrong; returns causes to raise. */
  private faultyRun(base: number, tail: number): number {
    const core = this.core,
      plan = core.plan!;
    if (plan.linkDownRuns > 0 && --plan.linkDownRuns === 0) return ICR.LSC.mask; // the link comes back
    switch (plan.txRun()) {
      case TxFault.DD_UNOWNED:
        // STA.DD into the descriptor at TDT: software never handed it over.
        this.fetched[0] = DD;
        core.dmaWrite(base + tail * DESC_SIZE + STA_AT, this.fetched, 0, 1);
        return 0;
      case TxFault.LINK_FLAP:
        plan.linkDownRuns = plan.flapRuns;
        return ICR.LSC.mask;
      case TxFault.REMOVAL:
        plan.removed = true;
        return 0;
      default:
        return 0;
    }
  }

  /** EOP: count and send the assembled frame, unless it lost a buffer. */
  private send(): void {
    const core = this.core,
      stats = this.stats;
    let len = this.len;
    const blocked = this.blocked;
    this.len = 0;
    this.blocked = false;
    if (blocked) {
      core.counters.txDmaDropped++;
      return;
    }
    if (len === 0) return;
    const f = this.frame;
    if (len < ETH.MIN_FRAME && this.regs[TCTL_I]! & PSP) {
      f.fill(0, len, ETH.MIN_FRAME);
      len = ETH.MIN_FRAME;
    }
    stats.count(I.TPT);
    stats.count64(I.TOTL, len + ETH.FCS);
    if (!core.linkUp()) return; // no carrier: counted as attempted, not as good
    stats.count(I.GPTC);
    stats.count64(I.GOTCL, len + ETH.FCS);
    if (f[0]! & 1) stats.count(isBroadcast(f) ? I.BPTC : I.MPTC);
    core.counters.txFrames++;
    core.wire!(f, len);
  }
}
