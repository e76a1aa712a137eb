/**
 * A model of the Intel 82574L (e1000e): the register and descriptor subset dmabox's driver uses.
 *
 * Source: Intel 82574 GbE Controller Family Datasheet (317694). Register map and fields are
 * shared with the driver (drivers/e1000e/regs.ts, descriptors.ts); QEMU's e1000e in the lab
 * checks both against a second implementation.
 *
 * What is modelled:
 * - CTRL (RST self-clearing: registers back to their reset values, RA0 reloaded from the EEPROM;
 *   SLU), STATUS (LU when SLU is set and a wire is attached; 1000 Mb/s full duplex), EERD reads
 *   of a 64-word EEPROM holding the MAC address (the NVM map), RAL/RAH x16, MTA x128.
 * - Interrupts: ICR (read-to-clear when IMS is 0 or INT_ASSERTED is set, as QEMU 7.2 and
 *   §10.2.4.1 describe; write 1 to clear), ICS, IMS, IMC, IAM with CTRL_EXT.IAME, EIAC (auto-clear
 *   and auto-mask of a cause once its message is sent: the driver re-arms through IMS), and
 *   MSI-X routing by IVAR (§10.2.4.9: RXQ0, TXQ0, OTHER); without MSI-X, vector 0 of whatever the
 *   host function delivers (MSI/INTx). No moderation: ITR, RDTR, TIDV are stored, not timed.
 * - RCTL (EN, UPE, MPE, BAM, MO, BSIZE/BSEX, SECRC, RDMTS, LPE), TCTL (EN, PSP), one RX and one
 *   TX ring of legacy descriptors (§7.1.4, §7.2.10.1), head and tail registers, frames spanning
 *   several RX buffers, null RX buffer addresses skipped (§7.1.7.2).
 * - Statistics (read-to-clear; the high dword of a 64-bit pair clears the pair).
 *
 * DMA goes through the simulated IOMMU (`SimDeviceDma`, sim/dma.ts). A refused transfer is logged
 * there; the model drops the frame and counts it: RX writes back the descriptor with
 * ERRORS.RXE and length 0 (a real device reports a data error, unlike QEMU, which writes back a
 * clean descriptor over zero bytes) and increments RXERRC; TX completes the descriptor and does not
 * send. A descriptor-ring fetch that is refused stops that ring (`ringFault`), as a real DMA
 * engine stops on a completion error, until the next reset.
 *
 * Transmit runs as the function's work routine (sim/sched.ts), kicked by TDT and TCTL writes:
 * inside the write ('sync') or after the driver's batch ('deferred'); the wire delivers to the
 * peer at once. The function's hang switch stops transmit and refuses receive.
 *
 * PCI (as QEMU's e1000e and the 82574L show it): 8086:10d3, class 020000 (Ethernet), BAR0 128 KiB
 * of registers (32-bit memory BAR), BAR3 16 KiB holding the MSI-X table (offset 0) and PBA
 * (offset 0x2000), 5 MSI-X vectors, an INTA# pin.
 */
import { REG, CTRL, STATUS, EERD, CTRL_EXT, ICR, IVAR, RCTL, TCTL, RAH, STAT, STAT_FIRST, STAT_LAST, BAR0_SIZE,
  RAR_ENTRIES, MTA_DWORDS, PCI_VENDOR_INTEL, PCI_DEVICE_82574L, rctlBufferSize } from '../../spec/e1000e/registers.js';
import { DESC_SIZE, RXD, RXD_STATUS, RXD_ERRORS, TXD, TXD_CMD, TXD_STA, ETH } from '../../spec/e1000e/descriptors.js';
import type { FrameSink, WirePort } from '../wire.js';
import type { BarDecl, DeviceModel, MsixDecl, PciIds } from '../model.js';
import type { PciFunction } from '../pci.js';
import type { DeviceWork } from '../sched.js';
import { RegisterTable } from '../regs.js';
import { isBroadcast, fcs32 } from './ethernet.js';

/** The DMA calls the model makes (sim/dma.ts DeviceDma has these). */
export interface SimDeviceDma {
  read(iova: number, dst: Uint8Array, off: number, len: number): boolean;
  write(iova: number, src: Uint8Array, off: number, len: number): boolean;
}

/** How the model raises an interrupt: MSI-X vector `vector`, or vector 0 of MSI/INTx. */
export interface SimIrqLine {
  /** True when MSI-X is enabled in the function's capability (then IVAR routes causes). */
  msixEnabled(): boolean;
  raise(vector: number): void;
}

export interface E1000eModelOptions {
  /** The MAC address stored in the EEPROM; default 52:54:00:12:34:56 (QEMU's default). */
  mac?: Uint8Array | readonly number[];
}

/** Counters kept by the model itself (not device registers): what a test asks about. */
export interface E1000eModelCounters {
  /** Frames dropped because a DMA transfer was refused (RX buffer write or TX buffer read). */
  rxDmaDropped: number;
  txDmaDropped: number;
  /** Frames dropped because no RX descriptors were available (also in MPC). */
  rxNoDescriptor: number;
  /** Frames not accepted by the address filter. */
  rxFiltered: number;
  /** Frames offered while the receiver was off or the link down. */
  rxDisabled: number;
  /** Frames sent to the wire. */
  txFrames: number;
  /** Extended (DEXT) TX descriptors: not modelled, skipped. */
  txUnsupported: number;
}

const RX_CAUSES = ICR.RXT0 | ICR.RXO | ICR.RXDMT0;
const TX_CAUSES = ICR.TXDW | ICR.TXQE;
const QUEUE_CAUSES = ICR.RXQ0 | ICR.TXQ0 | ICR.OTHER;
/** TX frame assembly limit of the model (16 KiB); longer frames are dropped at EOP. */
const TX_MAX = 16384;
/** The sim's IOVAs are exact numbers below 2^53; anything beyond is refused before the DMA engine. */
const MAX_IOVA = Number.MAX_SAFE_INTEGER;
/** TX / RX descriptors fetched per DMA burst. */
const TX_FETCH_MAX = 64;
const RX_FETCH_MAX = 64;
/** RX descriptors written back per DMA burst at most. */
const RX_WB_MAX = 64;
const EEPROM_WORDS = 64;
/** The NVM map's checksum rule: words 0x00..0x3F sum to 0xBABA. */
const EEPROM_CHECKSUM_WORD = 0x3f;
const EEPROM_SUM = 0xbaba;

export class E1000eModel implements WirePort, DeviceModel {
  readonly name = 'e1000e';
  readonly ids: PciIds = { vendor: PCI_VENDOR_INTEL, device: PCI_DEVICE_82574L, classCode: 0x020000, revision: 0 };
  readonly bars: readonly BarDecl[];
  readonly msix: MsixDecl = { vectors: 5, bar: 3, tableOffset: 0, pbaOffset: 0x2000 };
  readonly intx = true;
  readonly mac: Uint8Array;
  readonly counters: E1000eModelCounters = {
    rxDmaDropped: 0, txDmaDropped: 0, rxNoDescriptor: 0, rxFiltered: 0, rxDisabled: 0, txFrames: 0, txUnsupported: 0,
  };
  /** Set when a descriptor fetch or write-back was refused: that ring stops until reset. */
  ringFault: 'rx' | 'tx' | null = null;

  private readonly regs = new Uint32Array(BAR0_SIZE / 4);
  private readonly eeprom = new Uint16Array(EEPROM_WORDS);
  private dma: SimDeviceDma | null = null;
  private irq: SimIrqLine | null = null;
  private fn: PciFunction | null = null;
  private txWork: DeviceWork | null = null;
  private wire: FrameSink | null = null;
  private wireBurst: ((on: boolean) => void) | null = null;
  // Preallocated scratch: nothing is allocated per frame.
  // Separate RX and TX scratch: a loopback wire receives inside transmit.
  private readonly txFetched = new Uint8Array(TX_FETCH_MAX * DESC_SIZE);
  private readonly txFetchedView = new DataView(this.txFetched.buffer);
  /**
   * RX descriptor prefetch: buffer addresses of descriptors [rxCacheStart, +rxCacheCount), fetched
   * in one burst. They belong to the device (between RDH and RDT), so software may not change them;
   * the cache is dropped when RDBAL/RDBAH/RDLEN/RDH are written and on reset.
   */
  private readonly rxFetched = new Uint8Array(RX_FETCH_MAX * DESC_SIZE);
  private readonly rxFetchedView = new DataView(this.rxFetched.buffer);
  private readonly rxCache = new Float64Array(RX_FETCH_MAX);
  private rxCacheStart = 0;
  private rxCacheCount = 0;
  /**
   * RX write-back coalescing: while a peer's transmit burst lasts (WirePort.burst), completed
   * descriptors [wbStart, +wbCount) collect here (whole 16-byte descriptors, the buffer address
   * rewritten as read) and go to host memory in one DMA write when the burst ends, the run would
   * wrap or fill; then RDH moves and the causes are raised, so a woken driver sees DD. Outside a
   * burst every frame is written back at once. `rxHead` is the device's head; RDH shows it after
   * each write-back.
   */
  private readonly wbBuf = new Uint8Array(RX_WB_MAX * DESC_SIZE);
  private readonly wbView = new DataView(this.wbBuf.buffer);
  private wbStart = 0;
  private wbCount = 0;
  private wbCauses = 0;
  private rxHead = 0;
  private inBurst = false;
  private readonly txFrame = new Uint8Array(TX_MAX);
  private readonly rxPad = new Uint8Array(ETH.MIN_FRAME + ETH.FCS);
  private readonly fcs = new Uint8Array(ETH.FCS);
  private txLen = 0;
  private txBlocked = false;

  constructor(options: E1000eModelOptions = {}) {
    const mac = options.mac ?? [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    if (mac.length !== 6) throw new RangeError(`e1000e model: a MAC address has 6 bytes, got ${mac.length}`);
    this.mac = Uint8Array.from(mac);
    for (let i = 0; i < 3; i++) this.eeprom[i] = this.mac[2 * i]! | (this.mac[2 * i + 1]! << 8);
    for (let i = 3; i < EEPROM_CHECKSUM_WORD; i++) this.eeprom[i] = 0xffff;
    let sum = 0;
    for (let i = 0; i < EEPROM_CHECKSUM_WORD; i++) sum = (sum + this.eeprom[i]!) & 0xffff;
    this.eeprom[EEPROM_CHECKSUM_WORD] = (EEPROM_SUM - sum) & 0xffff;
    this.bars = [
      { index: 0, size: BAR0_SIZE, handler: this, is64: false },
      { index: 3, size: 0x4000, handler: new RegisterTable(0x4000, []), is64: false },
    ];
    this.powerOn();
  }

  /** DeviceModel: take the function's DMA engine, interrupt line and a work routine for transmit. */
  attach(fn: PciFunction): void {
    this.fn = fn;
    this.dma = fn.dma;
    this.irq = {
      msixEnabled: () => fn.msix !== undefined && fn.msix.enabled,
      raise: (v) => { fn.interrupt(v); },
    };
    this.txWork = fn.work(() => this.transmit());
  }

  /** DeviceModel: function-level reset. */
  reset(): void {
    this.powerOn();
  }

  private get hung(): boolean {
    return this.fn !== null && this.fn.hung;
  }

  private kickTx(): void {
    if (this.txWork !== null) this.txWork.kick();
    else this.transmit();
  }

  // ---- wire side (sim/wire.ts) ----

  attachWire(sink: FrameSink | null, burst?: (on: boolean) => void): void {
    const before = this.linkUp();
    this.wire = sink;
    this.wireBurst = sink === null ? null : burst ?? null;
    if (before !== this.linkUp()) this.cause(ICR.LSC);
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

  // ---- reset ----

  /** Power-on and function-level reset: everything to its reset value, the MTA cleared. */
  powerOn(): void {
    this.regs.fill(0);
    this.softReset();
  }

  /** CTRL.RST (§10.2.2.1): the MAC's registers to reset values, RA0 reloaded from the EEPROM. The MTA keeps its contents. */
  private softReset(): void {
    const mta = this.regs.slice(REG.MTA / 4, REG.MTA / 4 + MTA_DWORDS);
    this.regs.fill(0);
    this.regs.set(mta, REG.MTA / 4);
    this.regs[REG.CTRL / 4] = CTRL.FD | CTRL.ASDE;
    this.regs[REG.TXDCTL / 4] = 1 << 22;
    this.regs[REG.RAL / 4] = (this.mac[0]! | (this.mac[1]! << 8) | (this.mac[2]! << 16) | (this.mac[3]! << 24)) >>> 0;
    this.regs[REG.RAH / 4] = (this.mac[4]! | (this.mac[5]! << 8) | RAH.AV) >>> 0;
    this.txLen = 0;
    this.txBlocked = false;
    this.ringFault = null;
    this.rxCacheCount = 0;
    this.wbCount = 0;
    this.wbCauses = 0;
    this.rxHead = 0;
  }

  // ---- registers (BAR0) ----

  linkUp(): boolean {
    return (this.regs[REG.CTRL / 4]! & CTRL.SLU) !== 0 && this.wire !== null;
  }

  read32(offset: number): number {
    const r = this.regs;
    switch (offset) {
      case REG.STATUS: {
        let s = STATUS.FD | (0b10 << STATUS.SPEED_SHIFT);
        if (this.linkUp()) s |= STATUS.LU;
        if (!(r[REG.CTRL / 4]! & CTRL.GIO_MASTER_DISABLE)) s |= STATUS.GIO_MASTER_ENABLE;
        return s >>> 0;
      }
      case REG.ICR: return this.readIcr();
      case REG.IMC: return 0;
      case REG.ICS: return r[REG.ICR / 4]!;
      default:
        if (offset >= STAT_FIRST && offset <= STAT_LAST) return this.readStat(offset);
        return r[offset >>> 2]!;
    }
  }

  write32(offset: number, value: number): void {
    const r = this.regs;
    value >>>= 0;
    switch (offset) {
      case REG.CTRL: {
        const wasUp = this.linkUp();
        if (value & CTRL.RST) {
          this.softReset();
          r[REG.CTRL / 4] = (value & ~CTRL.RST & ~CTRL.PHY_RST) >>> 0;
        } else {
          r[REG.CTRL / 4] = (value & ~CTRL.PHY_RST) >>> 0;
        }
        if (wasUp !== this.linkUp()) this.cause(ICR.LSC);
        return;
      }
      case REG.STATUS: return; // read-only
      case REG.EERD: {
        if (value & EERD.START) {
          const addr = (value & EERD.ADDR_MASK) >>> EERD.ADDR_SHIFT;
          const data = addr < EEPROM_WORDS ? this.eeprom[addr]! : 0xffff;
          r[REG.EERD / 4] = ((data << EERD.DATA_SHIFT) | (addr << EERD.ADDR_SHIFT) | EERD.DONE) >>> 0;
        } else {
          r[REG.EERD / 4] = value & ~EERD.DONE;
        }
        return;
      }
      case REG.ICR: r[REG.ICR / 4] = (r[REG.ICR / 4]! & ~value) >>> 0; return;
      case REG.ICS: this.cause(value); return;
      case REG.IMS:
        r[REG.IMS / 4] = (r[REG.IMS / 4]! | value) >>> 0;
        this.cause(0);
        return;
      case REG.IMC: r[REG.IMS / 4] = (r[REG.IMS / 4]! & ~value) >>> 0; return;
      case REG.RDLEN: case REG.TDLEN: r[offset >>> 2] = value & 0xfff80; this.rxCacheCount = 0; return;
      case REG.RDBAL: case REG.TDBAL: r[offset >>> 2] = value & ~0xf; this.rxCacheCount = 0; return;
      case REG.RDBAH: r[offset >>> 2] = value; this.rxCacheCount = 0; return;
      case REG.RDH:
        this.flushWriteback();
        r[offset >>> 2] = value & 0xffff;
        this.rxHead = value & 0xffff;
        this.rxCacheCount = 0;
        return;
      case REG.RDT: case REG.TDH: r[offset >>> 2] = value & 0xffff; return;
      case REG.TDT:
        r[REG.TDT / 4] = value & 0xffff;
        this.kickTx();
        return;
      case REG.TCTL:
        r[REG.TCTL / 4] = value;
        this.kickTx();
        return;
      default:
        if (offset >= STAT_FIRST && offset <= STAT_LAST) return; // statistics are read-only
        r[offset >>> 2] = value;
    }
  }

  private readIcr(): number {
    const r = this.regs;
    const icr = r[REG.ICR / 4]!;
    if ((icr & ICR.INT_ASSERTED) && (r[REG.CTRL_EXT / 4]! & CTRL_EXT.IAME)) {
      r[REG.IMS / 4] = (r[REG.IMS / 4]! & ~r[REG.IAM / 4]!) >>> 0;
    }
    if (r[REG.IMS / 4] === 0 || (icr & ICR.INT_ASSERTED)) {
      r[REG.ICR / 4] = 0;
      if (icr & ICR.INT_ASSERTED) this.fn?.lowerIntx();
    }
    return icr;
  }

  private readStat(offset: number): number {
    const r = this.regs;
    const v = r[offset >>> 2]!;
    r[offset >>> 2] = 0;
    // High dword of a 64-bit pair: the pair clears (GORCH, GOTCH, TORH, TOTH).
    if (offset === STAT.GORCH || offset === STAT.GOTCH || offset === STAT.TORH || offset === STAT.TOTH) r[(offset >>> 2) - 1] = 0;
    return v;
  }

  private count(reg: number, n = 1): void {
    const r = this.regs;
    const v = r[reg >>> 2]! + n;
    r[reg >>> 2] = v > 0xffffffff ? 0xffffffff : v; // 32-bit counters stick at the maximum
  }

  private count64(lo: number, n: number): void {
    const r = this.regs;
    const v = r[lo >>> 2]! + n;
    if (v > 0xffffffff) {
      r[lo >>> 2] = v - 0x1_0000_0000;
      r[(lo >>> 2) + 1] = (r[(lo >>> 2) + 1]! + 1) >>> 0;
    } else {
      r[lo >>> 2] = v;
    }
  }

  // ---- interrupts (§10.2.4) ----

  /** Set cause bits and deliver whatever became pending and unmasked. */
  private cause(bits: number): void {
    const r = this.regs;
    const irq = this.irq;
    let icr = (r[REG.ICR / 4]! | bits) >>> 0;
    if (irq !== null && irq.msixEnabled()) {
      if (bits & RX_CAUSES) icr |= ICR.RXQ0;
      if (bits & TX_CAUSES) icr |= ICR.TXQ0;
      if (bits & ~(RX_CAUSES | TX_CAUSES | QUEUE_CAUSES) & 0x7fffffff) icr |= ICR.OTHER;
      const fire = icr & r[REG.IMS / 4]! & QUEUE_CAUSES;
      // EIAC (§10.2.4.6): a message for an auto-clear cause clears it in ICR and, unless
      // CTRL_EXT.IAME, masks it in IMS until the driver re-arms it (QEMU 7.2 does the same).
      const autoClear = fire & r[REG.EIAC / 4]!;
      icr = (icr & ~autoClear) >>> 0;
      r[REG.ICR / 4] = icr >>> 0;
      if (autoClear && !(r[REG.CTRL_EXT / 4]! & CTRL_EXT.IAME)) r[REG.IMS / 4] = (r[REG.IMS / 4]! & ~autoClear) >>> 0;
      if (fire === 0) return;
      const ivar = r[REG.IVAR / 4]!;
      if (fire & ICR.RXQ0) this.raiseIvar(ivar >>> IVAR.RXQ0_SHIFT);
      if (fire & ICR.TXQ0) this.raiseIvar(ivar >>> IVAR.TXQ0_SHIFT);
      if (fire & ICR.OTHER) this.raiseIvar(ivar >>> IVAR.OTHER_SHIFT);
      return;
    }
    if (icr & r[REG.IMS / 4]! & 0x7fffffff) {
      r[REG.ICR / 4] = (icr | ICR.INT_ASSERTED) >>> 0;
      if (irq !== null) irq.raise(0);
    } else {
      r[REG.ICR / 4] = icr;
    }
  }

  private raiseIvar(entry: number): void {
    if (entry & IVAR.VALID) this.irq!.raise(entry & IVAR.VECTOR_MASK);
  }

  // ---- transmit (§7.2) ----

  private transmit(): void {
    const r = this.regs;
    if (!(r[REG.TCTL / 4]! & TCTL.EN) || this.hung || this.ringFault === 'tx' || this.dma === null) return;
    const dma = this.dma;
    const n = r[REG.TDLEN / 4]! / DESC_SIZE;
    if (n === 0) return;
    const base = r[REG.TDBAL / 4]! + r[REG.TDBAH / 4]! * 0x1_0000_0000;
    const tail = r[REG.TDT / 4]!;
    let head = r[REG.TDH / 4]!;
    if (head >= n || tail >= n) return; // out-of-range pointers: the ring is not processed
    const fetched = this.txFetched;
    const fv = this.txFetchedView;
    let causes = 0;
    const burst = this.wireBurst;
    if (burst !== null) burst(true);
    while (head !== tail) {
      // Fetch the descriptors up to the tail (or the ring's end) in one burst, as the hardware's
      // descriptor prefetch does: one DMA read per run instead of one per descriptor.
      const run = Math.min(tail > head ? tail - head : n - head, TX_FETCH_MAX);
      const at0 = base + head * DESC_SIZE;
      if (!(at0 + run * DESC_SIZE <= MAX_IOVA ? dma.read(at0, fetched, 0, run * DESC_SIZE) : this.refuse(at0, run * DESC_SIZE, 'read'))) { this.ringFault = 'tx'; break; }
      let k = 0;
      for (; k < run; k++) {
        const at = k * DESC_SIZE;
        const cmd = fetched[at + TXD.CMD]!;
        if (cmd & TXD_CMD.DEXT) {
          this.counters.txUnsupported++;
        } else {
          const len = fv.getUint16(at + TXD.LENGTH, true);
          const addr = fv.getUint32(at + TXD.BUFFER_ADDR, true) + fv.getUint32(at + TXD.BUFFER_ADDR + 4, true) * 0x1_0000_0000;
          if (this.txLen + len > TX_MAX) this.txBlocked = true; // oversize: dropped at EOP
          else if (len > 0 && !(addr + len <= MAX_IOVA ? dma.read(addr, this.txFrame, this.txLen, len) : this.refuse(addr, len, 'read'))) this.txBlocked = true;
          else this.txLen += len;
          if (cmd & TXD_CMD.EOP) this.sendFrame();
        }
        if (cmd & TXD_CMD.RS) {
          fetched[at + TXD.STA] = (fetched[at + TXD.STA]! & 0xf0) | TXD_STA.DD;
          if (!this.dmaWrite(base + (head + k) * DESC_SIZE + TXD.STA, fetched, at + TXD.STA, 1)) { this.ringFault = 'tx'; k++; break; }
          causes |= ICR.TXDW;
        }
      }
      head = (head + k) % n;
      if (this.ringFault === 'tx') break;
    }
    if (burst !== null) burst(false);
    r[REG.TDH / 4] = head;
    if (head === tail) causes |= ICR.TXQE;
    if (causes) this.cause(causes);
  }

  private sendFrame(): void {
    const r = this.regs;
    let len = this.txLen;
    const blocked = this.txBlocked;
    this.txLen = 0;
    this.txBlocked = false;
    if (blocked) { this.counters.txDmaDropped++; return; }
    if (len === 0) return;
    if (len < ETH.MIN_FRAME && (r[REG.TCTL / 4]! & TCTL.PSP)) {
      this.txFrame.fill(0, len, ETH.MIN_FRAME);
      len = ETH.MIN_FRAME;
    }
    const f = this.txFrame;
    this.count(STAT.TPT);
    this.count64(STAT.TOTL, len + ETH.FCS);
    if (!this.linkUp()) return; // no carrier: counted as attempted, not as good
    this.count(STAT.GPTC);
    this.count64(STAT.GOTCL, len + ETH.FCS);
    if (f[0]! & 1) this.count(isBroadcast(f) ? STAT.BPTC : STAT.MPTC);
    this.counters.txFrames++;
    this.wire!(f, len);
  }

  // ---- receive (§7.1) ----

  private rx(frame: Uint8Array, len: number): boolean {
    const r = this.regs;
    const rctl = r[REG.RCTL / 4]!;
    if (!(rctl & RCTL.EN) || !this.linkUp() || this.hung || this.ringFault === 'rx' || this.dma === null) {
      this.counters.rxDisabled++;
      return false;
    }
    if (len < ETH.MIN_FRAME) { // short frames are padded as a wire's minimum frame would be
      this.rxPad.fill(0);
      this.rxPad.set(frame.subarray(0, len));
      frame = this.rxPad;
      len = ETH.MIN_FRAME;
    }
    this.count(STAT.TPR);
    this.count64(STAT.TORL, len + ETH.FCS);
    if (len > ETH.MAX_FRAME && !(rctl & RCTL.LPE)) { this.count(STAT.ROC); return false; }
    const mcast = (frame[0]! & 1) !== 0;
    const bcast = mcast && isBroadcast(frame);
    if (!this.accept(frame, rctl, mcast, bcast)) { this.counters.rxFiltered++; return false; }

    const dma = this.dma;
    const n = r[REG.RDLEN / 4]! / DESC_SIZE;
    let head = this.rxHead;
    const tail = r[REG.RDT / 4]!;
    const bufSize = rctlBufferSize(rctl);
    const crc = (rctl & RCTL.SECRC) ? 0 : ETH.FCS;
    const total = len + crc;
    if (n === 0 || head >= n || tail >= n || bufSize === 0) { this.miss(); return false; }
    const free = (tail - head + n) % n;
    const needed = Math.ceil(total / bufSize);
    if (free < needed) { this.miss(); return false; }
    if (crc) fcs32(frame, len, this.fcs);

    const base = r[REG.RDBAL / 4]! + r[REG.RDBAH / 4]! * 0x1_0000_0000;
    const wb = this.wbBuf;
    const wv = this.wbView;
    let done = 0;
    let blocked = false;
    while (done < total) {
      const addr = this.rxBufferAddress(head, tail, n, base);
      if (addr < 0) { this.flushWriteback(); this.ringFault = 'rx'; return false; }
      const chunk = Math.min(bufSize, total - done);
      if (addr !== 0 && !blocked) { // a null buffer address stores nothing (§7.1.7.2)
        const dataPart = Math.max(0, Math.min(chunk, len - done));
        if (dataPart > 0 && !(addr + dataPart <= MAX_IOVA ? dma.write(addr, frame, done, dataPart) : this.refuse(addr, dataPart, 'write'))) blocked = true;
        if (!blocked && chunk > dataPart && !this.dmaWrite(addr + dataPart, this.fcs, dataPart + done - len, chunk - dataPart)) blocked = true;
      }
      done += chunk;
      const last = done >= total;
      // Queue this descriptor's write-back (contiguous, non-wrapping runs only).
      if (this.wbCount > 0 && (this.wbStart + this.wbCount !== head || this.wbCount === RX_WB_MAX)) this.flushWriteback();
      if (this.wbCount === 0) this.wbStart = head;
      const o = this.wbCount * DESC_SIZE;
      wv.setUint32(o + RXD.BUFFER_ADDR, addr % 0x1_0000_0000, true);
      wv.setUint32(o + RXD.BUFFER_ADDR + 4, Math.floor(addr / 0x1_0000_0000), true);
      wv.setUint16(o + RXD.LENGTH, blocked ? 0 : chunk, true);
      wv.setUint16(o + RXD.CSUM, 0, true);
      wb[o + RXD.STATUS] = RXD_STATUS.DD | (last ? RXD_STATUS.EOP : 0);
      wb[o + RXD.ERRORS] = blocked && last ? RXD_ERRORS.RXE : 0;
      wv.setUint16(o + RXD.SPECIAL, 0, true);
      this.wbCount++;
      head = head + 1 === n ? 0 : head + 1;
    }
    this.rxHead = head;
    let causes = ICR.RXT0;
    if (blocked) {
      this.count(STAT.RXERRC);
      this.counters.rxDmaDropped++;
    } else {
      this.count(STAT.GPRC);
      this.count64(STAT.GORCL, len + ETH.FCS);
      if (bcast) this.count(STAT.BPRC);
      else if (mcast) this.count(STAT.MPRC);
    }
    // RXDMT0: free descriptors fell to RCTL.RDMTS's fraction of the ring (1/2, 1/4, 1/8).
    const rdmts = (rctl >>> 8) & 3;
    if (rdmts < 3 && (tail - head + n) % n <= n >>> (rdmts + 1)) causes |= ICR.RXDMT0;
    this.wbCauses |= causes;
    return !blocked;
  }

  /** Write the queued RX descriptors back in one DMA write, publish RDH, raise the causes. */
  private flushWriteback(): void {
    const count = this.wbCount;
    if (count === 0) return;
    this.wbCount = 0;
    const r = this.regs;
    const base = r[REG.RDBAL / 4]! + r[REG.RDBAH / 4]! * 0x1_0000_0000;
    if (!this.dmaWrite(base + this.wbStart * DESC_SIZE, this.wbBuf, 0, count * DESC_SIZE)) this.ringFault = 'rx';
    r[REG.RDH / 4] = this.rxHead;
    const causes = this.wbCauses;
    this.wbCauses = 0;
    if (causes) this.cause(causes);
  }

  /** The buffer address of RX descriptor `head`, from the prefetch cache or a new burst; -1 when the fetch is refused. */
  private rxBufferAddress(head: number, tail: number, n: number, base: number): number {
    const k = head - this.rxCacheStart;
    if (k >= 0 && k < this.rxCacheCount) return this.rxCache[k]!;
    const run = Math.min(tail > head ? tail - head : n - head, RX_FETCH_MAX);
    if (!this.dmaRead(base + head * DESC_SIZE, this.rxFetched, 0, run * DESC_SIZE)) return -1;
    const v = this.rxFetchedView;
    for (let i = 0; i < run; i++) this.rxCache[i] = v.getUint32(i * DESC_SIZE, true) + v.getUint32(i * DESC_SIZE + 4, true) * 0x1_0000_0000;
    this.rxCacheStart = head;
    this.rxCacheCount = run;
    return this.rxCache[0]!;
  }

  /**
   * DMA through the function's engine. Addresses come from registers and descriptors a hostile
   * driver controls: one at or above 2^53 (no IOMMU domain reaches it; the sim's IOVAs are exact
   * numbers below it) is refused here and logged as not present, like any unmapped IOVA. The
   * per-frame paths (TX descriptor burst and data, RX data) make the same check inline.
   */
  private dmaRead(iova: number, dst: Uint8Array, off: number, len: number): boolean {
    return iova + len <= MAX_IOVA ? this.dma!.read(iova, dst, off, len) : this.refuse(iova, len, 'read');
  }

  private dmaWrite(iova: number, src: Uint8Array, off: number, len: number): boolean {
    return iova + len <= MAX_IOVA ? this.dma!.write(iova, src, off, len) : this.refuse(iova, len, 'write');
  }

  /** Log a transfer refused before the engine (beyond 2^53); returns false, the transfer's result. */
  private refuse(iova: number, len: number, access: 'read' | 'write'): false {
    const fn = this.fn;
    if (fn !== null) fn.iommu.recordFault(fn.address, iova, len, access, 'not-present');
    return false;
  }

  private miss(): void {
    this.count(STAT.MPC);
    this.count(STAT.RNBC);
    this.counters.rxNoDescriptor++;
    this.cause(ICR.RXO);
  }

  /** Destination filter (receive filtering, §7.1): unicast exact match or UPE, multicast hash or MPE, broadcast BAM. */
  private accept(f: Uint8Array, rctl: number, mcast: boolean, bcast: boolean): boolean {
    if (bcast) return (rctl & (RCTL.BAM | RCTL.MPE)) !== 0;
    if (mcast) {
      if (rctl & RCTL.MPE) return true;
      // §10.2.5 MTA: 12 bits of the destination address select one of 4096 bits; RCTL.MO picks which.
      const mo = (rctl & RCTL.MO_MASK) >>> RCTL.MO_SHIFT;
      const hash = ((f[4]! >>> (4 - mo)) | (f[5]! << (4 + mo))) & 0xfff;
      return (this.regs[(REG.MTA >>> 2) + (hash >>> 5)]! & (1 << (hash & 31))) !== 0;
    }
    if (rctl & RCTL.UPE) return true;
    const lo = (f[0]! | (f[1]! << 8) | (f[2]! << 16) | (f[3]! << 24)) >>> 0;
    const hi = f[4]! | (f[5]! << 8);
    const r = this.regs;
    for (let i = 0; i < RAR_ENTRIES; i++) {
      const rah = r[(REG.RAH >>> 2) + 2 * i]!;
      if ((rah & RAH.AV) && r[(REG.RAL >>> 2) + 2 * i] === lo && (rah & 0xffff) === hi) return true;
    }
    return false;
  }
}
