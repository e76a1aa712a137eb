/**
 * The 82574L model's receive engine (82574 §7.1): RCTL (EN, UPE, MPE, BAM, MO, BSIZE/BSEX, SECRC,
 * RDMTS, LPE), one ring of legacy descriptors (§7.1.4) with its base, length, head and tail
 * registers, frames spanning several buffers, null buffer addresses skipped (§7.1.7.2), the CRC
 * stored when RCTL.SECRC is clear.
 *
 * DMA goes through the function's engine (E1000eCore). A refused buffer write drops the frame: the
 * descriptor is written back with ERRORS.RXE and length 0 (a real device reports a data error,
 * unlike QEMU, which writes back a clean descriptor over zero bytes) and RXERRC counts it. A
 * refused descriptor fetch or write-back stops the ring (`ringFault = 'rx'`) until the next reset.
 *
 * Descriptor prefetch: buffer addresses of up to 64 descriptors from RDH on are fetched in one DMA
 * read. They belong to the device (between RDH and RDT), so software may not change them; the
 * cache is dropped when RDBAL/RDBAH/RDLEN/RDH are written and on reset.
 *
 * Write-back coalescing: while a peer's transmit burst lasts (WirePort.burst), completed
 * descriptors [wbStart, +wbCount) collect here (whole 16-byte descriptors, the buffer address
 * rewritten as read) and go to host memory in one DMA write when the burst ends, the run would
 * wrap or fill; then RDH moves and the causes are raised, so a woken driver sees DD. Outside a
 * burst every frame is written back at once. `head` is the device's head; RDH shows it after each
 * write-back.
 */
import { REG, rctlBufferSize } from '../../spec/e1000e/registers.js';
import { DESC_SIZE, RXD, RXD_STATUS, RXD_ERRORS } from '../../spec/e1000e/descriptors.js';
import { ETH } from '../../spec/e1000e/ethernet.js';
import type { RegisterDef } from '../regs.js';
import { MAX_IOVA, type E1000eCore } from './core.js';
import { RxFault } from './fault-plan.js';
import type { Interrupts } from './interrupts.js';
import { I, type Statistics } from './statistics.js';
import { accepts } from './filter.js';
import { fcs32, isBroadcast } from './ethernet.js';

const { RCTL, ICR } = REG;
const RCTL_I = RCTL.offset >>> 2;
const RDBAL_I = REG.RDBAL.offset >>> 2;
const RDBAH_I = REG.RDBAH.offset >>> 2;
const RDLEN_I = REG.RDLEN.offset >>> 2;
const RDH_I = REG.RDH.offset >>> 2;
const RDT_I = REG.RDT.offset >>> 2;
const EN = RCTL.EN.mask,
  LPE = RCTL.LPE.mask,
  SECRC = RCTL.SECRC.mask;
const RDMTS_LO = RCTL.RDMTS.lo,
  RDMTS_MAX = RCTL.RDMTS.max;
const RXT0 = ICR.RXT0.mask,
  RXO = ICR.RXO.mask,
  RXDMT0 = ICR.RXDMT0.mask;
const DD = RXD_STATUS.DD.mask,
  EOP = RXD_STATUS.EOP.mask,
  RXE = RXD_ERRORS.RXE.mask;
const ADDR_AT = RXD.BUFFER_ADDR.offset,
  LENGTH_AT = RXD.LENGTH.offset,
  CSUM_AT = RXD.CSUM.offset;
const STATUS_AT = RXD.STATUS.offset,
  ERRORS_AT = RXD.ERRORS.offset,
  SPECIAL_AT = RXD.SPECIAL.offset;
/** RX descriptors fetched, and written back, per DMA burst at most. */
const FETCH_MAX = 64;
const WB_MAX = 64;

export class RxEngine {
  private readonly core: E1000eCore;
  private readonly regs: Uint32Array;
  private readonly irq: Interrupts;
  private readonly stats: Statistics;
  // Preallocated scratch: nothing is allocated per frame (and apart from TX's: a loopback wire receives inside transmit).
  private readonly fetched = new Uint8Array(FETCH_MAX * DESC_SIZE);
  private readonly fetchedView = new DataView(this.fetched.buffer);
  private readonly cache = new Float64Array(FETCH_MAX);
  private cacheStart = 0;
  private cacheCount = 0;
  private readonly wbBuf = new Uint8Array(WB_MAX * DESC_SIZE);
  private readonly wbView = new DataView(this.wbBuf.buffer);
  private wbStart = 0;
  private wbCount = 0;
  private wbCauses = 0;
  private head = 0;
  private inBurst = false;
  /** With a fault plan: the buffer address of the last descriptor filled (e1000e.rx-freed writes there again). */
  private lastAddr = 0;
  private readonly pad = new Uint8Array(ETH.MIN_FRAME + ETH.FCS);
  private readonly fcs = new Uint8Array(ETH.FCS);

  constructor(core: E1000eCore, irq: Interrupts, stats: Statistics) {
    this.core = core;
    this.regs = core.regs;
    this.irq = irq;
    this.stats = stats;
  }

  registers(): RegisterDef[] {
    const c = this.core,
      r = this.regs;
    const dropCache =
      (i: number, mask: number) =>
      (v: number): void => {
        r[i] = (v & mask) >>> 0;
        this.cacheCount = 0;
      };
    return [
      c.stored('RCTL'),
      c.register('RDBAL', () => r[RDBAL_I]!, dropCache(RDBAL_I, REG.RDBAL.RDBAL.mask)),
      c.register('RDBAH', () => r[RDBAH_I]!, dropCache(RDBAH_I, REG.RDBAH.RDBAH.mask)),
      c.register('RDLEN', () => r[RDLEN_I]!, dropCache(RDLEN_I, REG.RDLEN.LEN.mask)),
      c.register(
        'RDH',
        () => r[RDH_I]!,
        (v) => {
          this.flushWriteback();
          r[RDH_I] = v & REG.RDH.RDH.mask;
          this.head = r[RDH_I]!;
          this.cacheCount = 0;
        },
      ),
      c.stored('RDT', REG.RDT.RDT.mask),
      c.stored('RDTR'),
      c.stored('RXDCTL'),
      c.stored('RXCSUM'),
      c.stored('RFCTL'),
    ];
  }

  /** Reset: the ring forgotten (the registers are cleared by the caller). */
  reset(): void {
    this.cacheCount = 0;
    this.wbCount = 0;
    this.wbCauses = 0;
    this.head = 0;
    this.lastAddr = 0;
  }

  /** A frame arrives from the wire. True when it was written to host memory. */
  receive(frame: Uint8Array, len: number): boolean {
    const ok = this.rx(frame, len);
    if (!this.inBurst) this.flushWriteback();
    return ok;
  }

  /** The peer starts (true) or ends (false) a burst of frames: write-backs wait for its end. */
  burst(on: boolean): void {
    this.inBurst = on;
    if (!on) this.flushWriteback();
  }

  private rx(frame: Uint8Array, len: number): boolean {
    const core = this.core,
      r = this.regs,
      stats = this.stats;
    const rctl = r[RCTL_I]!;
    if (!(rctl & EN) || !core.linkUp() || core.hung || core.ringFault === 'rx' || core.dma === null) {
      core.counters.rxDisabled++;
      return false;
    }
    if (len < ETH.MIN_FRAME) {
      // short frames are padded as a wire's minimum frame would be
      this.pad.fill(0);
      this.pad.set(frame.subarray(0, len));
      frame = this.pad;
      len = ETH.MIN_FRAME;
    }
    stats.count(I.TPR);
    stats.count64(I.TORL, len + ETH.FCS);
    if (len > ETH.MAX_FRAME && !(rctl & LPE)) {
      stats.count(I.ROC);
      return false;
    }
    const mcast = (frame[0]! & 1) !== 0;
    const bcast = mcast && isBroadcast(frame);
    if (!accepts(r, frame, rctl, mcast, bcast)) {
      core.counters.rxFiltered++;
      return false;
    }

    const dma = core.dma;
    const n = r[RDLEN_I]! / DESC_SIZE;
    let head = this.head;
    const tail = r[RDT_I]!;
    const bufSize = rctlBufferSize(rctl);
    const crc = rctl & SECRC ? 0 : ETH.FCS;
    const total = len + crc;
    if (n === 0 || head >= n || tail >= n || bufSize === 0) {
      this.miss();
      return false;
    }
    const free = (tail - head + n) % n;
    const needed = Math.ceil(total / bufSize);
    if (free < needed) {
      this.miss();
      return false;
    }
    if (crc) fcs32(frame, len, this.fcs);

    const base = r[RDBAL_I]! + r[RDBAH_I]! * 0x1_0000_0000;
    const wb = this.wbBuf;
    const wv = this.wbView;
    let done = 0;
    let blocked = false;
    const fault = core.plan === null ? RxFault.NONE : core.plan.rxFrame(needed === 1 && this.lastAddr > 0);
    while (done < total) {
      const addr = this.bufferAddress(head, tail, n, base);
      if (addr < 0) {
        this.flushWriteback();
        core.ringFault = 'rx';
        return false;
      }
      const chunk = Math.min(bufSize, total - done);
      // e1000e.rx-freed: the data goes to the previous frame's buffer, reclaimed by the driver since.
      const to = fault === RxFault.FREED ? this.lastAddr : addr;
      if (to !== 0 && !blocked) {
        // a null buffer address stores nothing (§7.1.7.2)
        const dataPart = Math.max(0, Math.min(chunk, len - done));
        if (dataPart > 0 && !(to + dataPart <= MAX_IOVA ? dma.write(to, frame, done, dataPart) : core.refuse(to, dataPart, 'write'))) blocked = true;
        if (!blocked && chunk > dataPart && !core.dmaWrite(to + dataPart, this.fcs, dataPart + done - len, chunk - dataPart)) blocked = true;
      }
      if (core.plan !== null) this.lastAddr = addr;
      done += chunk;
      const last = done >= total;
      // Queue this descriptor's write-back (contiguous, non-wrapping runs only).
      if (this.wbCount > 0 && (this.wbStart + this.wbCount !== head || this.wbCount === WB_MAX)) this.flushWriteback();
      if (this.wbCount === 0) this.wbStart = head;
      const o = this.wbCount * DESC_SIZE;
      wv.setUint32(o + ADDR_AT, addr % 0x1_0000_0000, true);
      wv.setUint32(o + ADDR_AT + 4, Math.floor(addr / 0x1_0000_0000), true);
      wv.setUint16(o + LENGTH_AT, blocked ? 0 : chunk, true);
      wv.setUint16(o + CSUM_AT, 0, true);
      wb[o + STATUS_AT] = DD | (last ? EOP : 0);
      wb[o + ERRORS_AT] = blocked && last ? RXE : 0;
      wv.setUint16(o + SPECIAL_AT, 0, true);
      if (fault === RxFault.WRITEBACK && last) core.plan!.garbleWriteback(wv, o, bufSize);
      this.wbCount++;
      head = head + 1 === n ? 0 : head + 1;
    }
    this.head = head;
    if (fault === RxFault.DD_UNOWNED) this.ddUnowned(base, tail);
    let causes = RXT0;
    if (blocked) {
      stats.count(I.RXERRC);
      core.counters.rxDmaDropped++;
    } else {
      stats.count(I.GPRC);
      stats.count64(I.GORCL, len + ETH.FCS);
      if (bcast) stats.count(I.BPRC);
      else if (mcast) stats.count(I.MPRC);
    }
    // RXDMT0: free descriptors fell to RCTL.RDMTS's fraction of the ring (1/2, 1/4, 1/8).
    const rdmts = (rctl >>> RDMTS_LO) & RDMTS_MAX;
    if (rdmts < 3 && (tail - head + n) % n <= n >>> (rdmts + 1)) causes |= RXDMT0;
    this.wbCauses |= causes;
    return !blocked;
  }

  /** Write the queued RX descriptors back in one DMA write, publish RDH, raise the causes. */
  flushWriteback(): void {
    const count = this.wbCount;
    if (count === 0) return;
    this.wbCount = 0;
    const core = this.core,
      r = this.regs;
    const base = r[RDBAL_I]! + r[RDBAH_I]! * 0x1_0000_0000;
    if (!core.dmaWrite(base + this.wbStart * DESC_SIZE, this.wbBuf, 0, count * DESC_SIZE)) core.ringFault = 'rx';
    r[RDH_I] = this.head;
    const causes = this.wbCauses;
    this.wbCauses = 0;
    if (causes) this.irq.cause(causes);
  }

  /** The buffer address of descriptor `head`, from the prefetch cache or a new burst; -1 when the fetch is refused. */
  private bufferAddress(head: number, tail: number, n: number, base: number): number {
    const k = head - this.cacheStart;
    if (k >= 0 && k < this.cacheCount) return this.cache[k]!;
    const run = Math.min(tail > head ? tail - head : n - head, FETCH_MAX);
    if (!this.core.dmaRead(base + head * DESC_SIZE, this.fetched, 0, run * DESC_SIZE)) return -1;
    const v = this.fetchedView;
    for (let i = 0; i < run; i++) this.cache[i] = v.getUint32(i * DESC_SIZE + ADDR_AT, true) + v.getUint32(i * DESC_SIZE + ADDR_AT + 4, true) * 0x1_0000_0000;
    this.cacheStart = head;
    this.cacheCount = run;
    return this.cache[0]!;
  }

  /** e1000e.rx-dd-unowned: DD and EOP with a 60-byte length into descriptor `tail`, which software holds. */
  private ddUnowned(base: number, tail: number): void {
    const b = this.pad;
    b.fill(0, 0, 8);
    b[0] = ETH.MIN_FRAME;
    b[4] = DD | EOP;
    this.core.dmaWrite(base + tail * DESC_SIZE + LENGTH_AT, b, 0, 8);
  }

  /** No room for a frame: missed (MPC, RNBC) and RXO raised. */
  private miss(): void {
    this.stats.count(I.MPC);
    this.stats.count(I.RNBC);
    this.core.counters.rxNoDescriptor++;
    this.irq.cause(RXO);
  }
}
