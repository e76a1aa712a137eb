/**
 * The e1000e (Intel 82574L) driver: bring-up per the datasheet's software initialisation sequence
 * (§4.6), then batched receive and transmit over preallocated rings and packet pools.
 *
 * It sees only drivers/platform.ts: the same code runs on the simulator and, in the lab, on QEMU's
 * e1000e through VFIO. DMA windows, least privilege:
 * - RX descriptors: device read + write (it fetches buffer addresses and writes back status);
 * - RX buffers: device write only;
 * - TX descriptors: device read only (completion comes from TDH, see tx-ring.ts);
 * - TX buffers: device read only.
 *
 * Every wait on the device is bounded (options below) and ends in an E1000eError naming the register.
 *
 * Imports: drivers/platform.ts, this folder, and dma/pool.ts (pure code over a DmaWindow: a free
 * stack of buffer indices; it touches no hardware).
 */
import { PCI } from '../../spec/pci/config.js';
import type { Platform, RegisterSpace, DmaWindow, DmaPerm, IrqVector } from '../contract/platform.js';
import { DEVICE_READS, DEVICE_WRITES, DEVICE_READS_WRITES } from '../contract/platform.js';
import { REG, CTRL, STATUS, EERD, CTRL_EXT, ICR, IVAR, RCTL, TCTL, TXDCTL, RAH, TIPG_COPPER, STAT, STAT32, STAT64,
  MTA_DWORDS, BAR0_SIZE, PCI_VENDOR_INTEL, PCI_DEVICE_82574L, statusSpeed } from '../../spec/e1000e/registers.js';
import { DESC_SIZE, ETH } from '../../spec/e1000e/descriptors.js';
import { E1000eError } from './errors.js';
import { RxRing } from './rx-ring.js';
import { TxRing } from './tx-ring.js';
import { PacketBatch } from '../contract/packet-batch.js';
import { checkOptions, type E1000eOptions, type E1000eInterruptMode } from './options.js';
import { BufferPool } from '../kit/pool.js';

export type { E1000eOptions, E1000eInterruptMode } from './options.js';

export interface LinkStatus {
  up: boolean;
  speedMbps: 10 | 100 | 1000;
  fullDuplex: boolean;
}

/** Device statistics (datasheet mnemonics) accumulated since open, plus the driver's own counters. */
export interface E1000eStats {
  device: Record<(typeof STAT32)[number] | 'GORC' | 'GOTC' | 'TOR' | 'TOT', number>;
  rx: { packets: number; bytes: number; errors: number; fragmented: number; poolEmpty: number };
  tx: { packets: number; bytes: number; full: number; badHead: number };
  interrupts: number;
}

/** Every RX buffer is 2048 bytes: RCTL.BSIZE = 00b, BSEX = 0 (§10.2.5.1); a 1514-byte frame fits. */
export const BUFFER_SIZE = 2048;
/** PCI command register: Memory Space Enable, Bus Master Enable (PCI Local Bus 3.0 §6.2.2). */
const PCI_COMMAND = PCI.COMMAND.offset;
const PCI_COMMAND_MEMORY = PCI.COMMAND.MEMORY_SPACE.mask;
const PCI_COMMAND_MASTER = PCI.COMMAND.BUS_MASTER.mask;
const ALL_CAUSES = 0xffffffff;
/**
 * Causes unmasked in MSI-X mode: RX and link. Each message auto-masks its queue cause (EIAC,
 * §10.2.4.6; QEMU clears it from IMS), so the driver re-arms with this value before each wait, as a
 * NAPI-style driver does after polling.
 */
const MSIX_IMS = ICR.RXT0 | ICR.RXO | ICR.LSC | ICR.RXQ0 | ICR.OTHER;
/** Causes unmasked in INTx mode: RX and link (no auto-mask there). */
const INTX_IMS = ICR.RXT0 | ICR.RXO | ICR.LSC;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class E1000e {
  readonly platform: Platform;
  readonly regs: RegisterSpace;
  /** The station address, from the EEPROM (EERD) or RAL0/RAH0. */
  readonly mac: Uint8Array = new Uint8Array(6);
  readonly interrupts: E1000eInterruptMode;
  rxRing!: RxRing;
  txRing!: TxRing;
  rxPool!: BufferPool;
  txPool!: BufferPool;
  private readonly opts: Required<E1000eOptions>;
  private readonly windows: DmaWindow[] = [];
  private readonly statTotals = new Map<string, number>();
  private vectors: IrqVector[] = [];
  private irqCount = 0;
  private wake: (() => void) | null = null;
  private closed = false;
  private readonly sendBatch = new PacketBatch(1);

  private constructor(platform: Platform, opts: Required<E1000eOptions>) {
    this.platform = platform;
    this.opts = opts;
    this.interrupts = opts.interrupts;
    const bar = platform.bar(0);
    if (bar.size < BAR0_SIZE) {
      throw new E1000eError('ERR_E1000E_DEVICE', `${platform.name}: BAR0 is ${bar.size} bytes; the 82574L's BAR0 has ${BAR0_SIZE}`);
    }
    this.regs = bar;
  }

  /** Open and initialise the NIC behind `platform` (§4.6). */
  static async open(platform: Platform, options: E1000eOptions = {}): Promise<E1000e> {
    if (!LITTLE_ENDIAN) throw new E1000eError('ERR_E1000E_DEVICE', 'e1000e: the rings use host-endian typed arrays; this host is big-endian');
    const opts = checkOptions(options);
    const vendor = platform.config.read16(0x00);
    const device = platform.config.read16(0x02);
    if (vendor !== PCI_VENDOR_INTEL || device !== PCI_DEVICE_82574L) {
      throw new E1000eError('ERR_E1000E_DEVICE', `${platform.name}: PCI id ${hex4(vendor)}:${hex4(device)} is not an 82574L (8086:10d3)`, {
        fix: 'point the driver at the 82574L function (lspci -nn | grep 10d3)',
      });
    }
    const nic = new E1000e(platform, opts);
    try {
      await nic.init();
    } catch (e) {
      nic.releaseAll();
      throw e;
    }
    return nic;
  }

  private async init(): Promise<void> {
    const r = this.regs;
    const cfg = this.platform.config;
    // Memory space on; bus mastering stays off until the rings exist (below): a device left
    // running by an earlier driver can issue no DMA while it is being reset.
    cfg.write16(PCI_COMMAND, (cfg.read16(PCI_COMMAND) | PCI_COMMAND_MEMORY) & ~PCI_COMMAND_MASTER);

    // §4.6.1: interrupts masked for the whole initialisation.
    r.write32(REG.IMC, ALL_CAUSES);
    // §4.6.2 global reset: stop bus mastering first so no DMA is in flight, then CTRL.RST.
    await this.quiesceDma();
    r.write32(REG.CTRL, (r.read32(REG.CTRL) | CTRL.RST) >>> 0);
    await this.waitReg(REG.CTRL, CTRL.RST, 0, this.opts.resetTimeoutMs, 'ERR_E1000E_RESET_TIMEOUT', 'CTRL.RST to self-clear');
    r.write32(REG.IMC, ALL_CAUSES); // the reset unmasked nothing, but §4.6.1 asks again after it
    r.read32(REG.ICR);

    // §4.6.3 link: MAC/PHY link on, no forced speed, no flow control, no VLAN mode.
    const ctrl = (r.read32(REG.CTRL) | CTRL.SLU | CTRL.ASDE) & ~(CTRL.PHY_RST | CTRL.VME | CTRL.RFCE | CTRL.TFCE | CTRL.GIO_MASTER_DISABLE);
    r.write32(REG.CTRL, ctrl >>> 0);
    r.write32(REG.CTRL_EXT, (r.read32(REG.CTRL_EXT) | CTRL_EXT.DRV_LOAD) >>> 0);

    await this.readMac();
    // Receive address 0 = our MAC, valid; the other 15 entries invalid (§10.2.5).
    r.write32(REG.RAL, (this.mac[0]! | (this.mac[1]! << 8) | (this.mac[2]! << 16) | (this.mac[3]! << 24)) >>> 0);
    r.write32(REG.RAH, (this.mac[4]! | (this.mac[5]! << 8) | RAH.AV) >>> 0);
    for (let i = 1; i < 16; i++) { r.write32(REG.RAL + 8 * i, 0); r.write32(REG.RAH + 8 * i, 0); }
    // The MTA is not initialised by hardware: clear it (§4.6.5).
    for (let i = 0; i < MTA_DWORDS; i++) r.write32(REG.MTA + 4 * i, 0);

    // §4.6.4: statistics are read-to-clear; read them once so counting starts at zero.
    this.readStats(false);

    this.setupRings();
    cfg.write16(PCI_COMMAND, cfg.read16(PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    if (this.interrupts === 'msix') this.setupMsix();
    else if (this.interrupts === 'intx') this.setupIntx();

    // §4.6.5 receive: legacy descriptors (RFCTL.EXSTEN = 0), no checksum offload, 2048-byte buffers, strip CRC.
    // No interrupt moderation or delay. (Every register used is written: QEMU 7.2's CTRL.RST
    // reloads only the MAC address and leaves the rest as an earlier driver set it.)
    r.write32(REG.ITR, 0);
    r.write32(REG.RDTR, 0);
    r.write32(REG.TIDV, 0);
    r.write32(REG.RFCTL, 0);
    r.write32(REG.RXCSUM, 0);
    this.rxRing.start();
    r.write32(REG.RCTL, this.rctl());
    // §4.6.6 transmit.
    this.txRing.start();
    r.write32(REG.TXDCTL, (TXDCTL.MUST_BE_ONE | TXDCTL.GRAN) >>> 0);
    r.write32(REG.TIPG, TIPG_COPPER);
    r.write32(REG.TCTL, (TCTL.EN | TCTL.PSP | (15 << TCTL.CT_SHIFT) | (63 << TCTL.COLD_SHIFT)) >>> 0);

    await this.waitLink();
  }

  /** CTRL.GIO_MASTER_DISABLE, then wait (bounded) for STATUS.GIO_MASTER_ENABLE to clear. */
  private async quiesceDma(): Promise<void> {
    const r = this.regs;
    r.write32(REG.CTRL, (r.read32(REG.CTRL) | CTRL.GIO_MASTER_DISABLE) >>> 0);
    await this.waitReg(REG.STATUS, STATUS.GIO_MASTER_ENABLE, 0, this.opts.resetTimeoutMs, 'ERR_E1000E_RESET_TIMEOUT',
      'STATUS.GIO_MASTER_ENABLE to clear after CTRL.GIO_MASTER_DISABLE');
  }

  private rctl(): number {
    let v = RCTL.EN | RCTL.BAM | RCTL.SECRC; // BSIZE 00b, BSEX 0: 2048 bytes; RDMTS 1/2; MO 0
    if (this.opts.promiscuous) v |= RCTL.UPE | RCTL.MPE;
    return v >>> 0;
  }

  private setupRings(): void {
    const o = this.opts;
    const rxDesc = this.alloc(o.rxDescriptors * DESC_SIZE, DEVICE_READS_WRITES, 'e1000e rx descriptors');
    const txDesc = this.alloc(o.txDescriptors * DESC_SIZE, DEVICE_READS, 'e1000e tx descriptors');
    const rxBufs = this.alloc(o.rxBuffers * BUFFER_SIZE, DEVICE_WRITES, 'e1000e rx buffers');
    const txBufs = this.alloc(o.txBuffers * BUFFER_SIZE, DEVICE_READS, 'e1000e tx buffers');
    this.rxPool = new BufferPool(rxBufs, BUFFER_SIZE);
    this.txPool = new BufferPool(txBufs, BUFFER_SIZE);
    this.rxRing = new RxRing(this.regs, rxDesc, o.rxDescriptors, this.rxPool);
    this.txRing = new TxRing(this.regs, txDesc, o.txDescriptors, this.txPool);
  }

  private alloc(size: number, perm: DmaPerm, label: string): DmaWindow {
    const page = this.platform.dma.pageSize;
    const w = this.platform.dma.alloc(Math.ceil(size / page) * page, perm, { label });
    this.windows.push(w);
    return w;
  }

  /** MSI-X vector 0 for RX, TX and other causes (§10.2.4.9 IVAR), auto-cleared (EIAC), RX and link unmasked. */
  private setupMsix(): void {
    const irq = this.platform.irq;
    if (irq.count('msix') < 1) {
      throw new E1000eError('ERR_E1000E_IRQ', `${this.platform.name}: MSI-X asked for, but the function offers no MSI-X vector`, {
        fix: "open with { interrupts: 'poll' }",
      });
    }
    this.vectors = irq.enable('msix', 1);
    this.vectors[0]!.onFire(() => {
      this.irqCount++;
      const w = this.wake;
      if (w !== null) { this.wake = null; w(); }
    });
    const r = this.regs;
    const v0 = IVAR.VALID; // vector 0, valid
    r.write32(REG.IVAR, (v0 << IVAR.RXQ0_SHIFT) | (v0 << IVAR.TXQ0_SHIFT) | (v0 << IVAR.OTHER_SHIFT));
    r.write32(REG.CTRL_EXT, (r.read32(REG.CTRL_EXT) | CTRL_EXT.PBA_CLR) >>> 0);
    r.write32(REG.EIAC, ICR.RXQ0 | ICR.TXQ0 | ICR.OTHER);
    r.write32(REG.IMS, MSIX_IMS);
  }

  /**
   * INTx (legacy INTA#): RX and link causes unmasked. The line is level-triggered: the handler reads
   * ICR, which clears the causes and deasserts it (§10.2.4.1), before the platform unmasks it.
   */
  private setupIntx(): void {
    const irq = this.platform.irq;
    if (irq.count('intx') < 1) {
      throw new E1000eError('ERR_E1000E_IRQ', `${this.platform.name}: INTx asked for, but the function has no interrupt pin routed`, {
        fix: "open with { interrupts: 'msix' } or { interrupts: 'poll' }",
      });
    }
    this.vectors = irq.enable('intx', 1);
    this.vectors[0]!.onFire(() => {
      this.regs.read32(REG.ICR);
      this.irqCount++;
      const w = this.wake;
      if (w !== null) { this.wake = null; w(); }
    });
    this.regs.write32(REG.IMS, INTX_IMS);
  }

  private async readMac(): Promise<void> {
    const r = this.regs;
    try {
      for (let w = 0; w < 3; w++) {
        r.write32(REG.EERD, ((w << EERD.ADDR_SHIFT) | EERD.START) >>> 0);
        const v = await this.waitReg(REG.EERD, EERD.DONE, EERD.DONE, this.opts.eepromTimeoutMs, 'ERR_E1000E_EEPROM_TIMEOUT', `EERD.DONE for EEPROM word ${w}`);
        const data = v >>> EERD.DATA_SHIFT;
        this.mac[2 * w] = data & 0xff;
        this.mac[2 * w + 1] = data >>> 8;
      }
      if (this.mac.every((b) => b === 0xff) || this.mac.every((b) => b === 0)) throw new Error('blank EEPROM');
    } catch (e) {
      // §10.2.5: after reset RAL0/RAH0 hold the address loaded from the EEPROM; use it if valid.
      const ral = r.read32(REG.RAL);
      const rah = r.read32(REG.RAH);
      if (!(rah & RAH.AV)) {
        throw new E1000eError('ERR_E1000E_EEPROM_TIMEOUT', `${this.platform.name}: no MAC address: EEPROM read failed and RAH0.AV is clear`, { cause: e });
      }
      for (let i = 0; i < 4; i++) this.mac[i] = (ral >>> (8 * i)) & 0xff;
      this.mac[4] = rah & 0xff;
      this.mac[5] = (rah >>> 8) & 0xff;
    }
  }

  private async waitLink(): Promise<void> {
    const deadline = this.platform.clock.now() + this.opts.linkTimeoutMs;
    for (;;) {
      if (this.regs.read32(REG.STATUS) & STATUS.LU) return;
      if (this.platform.clock.now() >= deadline) break;
      await this.platform.clock.sleep(10);
    }
    if (this.opts.requireLink) {
      throw new E1000eError('ERR_E1000E_LINK_TIMEOUT', `${this.platform.name}: STATUS.LU still clear ${this.opts.linkTimeoutMs} ms after CTRL.SLU`, {
        fix: 'check the cable (or the simulated wire / QEMU -netdev), or open with { requireLink: false }',
      });
    }
  }

  /** Poll `reg` until `(value & mask) === want`, bounded by `timeoutMs`. Returns the last value read. */
  private async waitReg(reg: number, mask: number, want: number, timeoutMs: number, code: 'ERR_E1000E_RESET_TIMEOUT' | 'ERR_E1000E_EEPROM_TIMEOUT', what: string): Promise<number> {
    const clock = this.platform.clock;
    const deadline = clock.now() + timeoutMs;
    for (;;) {
      const v = this.regs.read32(reg);
      if ((v & mask) === want) return v;
      if (clock.now() >= deadline) {
        throw new E1000eError(code, `${this.platform.name}: timed out after ${timeoutMs} ms waiting for ${what} (register 0x${reg.toString(16)} = 0x${(v >>> 0).toString(16)})`, {
          fix: 'the device is not responding: reset it (FLR) or check that it is an 82574L',
        });
      }
      await clock.sleep(1);
    }
  }

  // ---- data path ----

  /** Receive up to the batch's free room; appends to `batch`, returns how many. The caller frees each buffer with rxFree(). */
  rx(batch: PacketBatch): number {
    return this.rxRing.harvest(batch);
  }

  /** The bytes of RX pool buffer `buf` (a view, valid until rxFree). */
  rxData(buf: number, len: number): Uint8Array {
    const off = this.rxPool.offset(buf);
    return this.rxPool.window.bytes.subarray(off, off + len);
  }

  /** Give received buffers back (all of the batch's entries), and empty the batch. */
  rxFree(batch: PacketBatch): void {
    const pool = this.rxPool;
    for (let i = 0; i < batch.count; i++) pool.free(batch.buf[i]!);
    batch.count = 0;
  }

  /** Take a TX buffer to fill (-1 when none is free: call tx() to reclaim sent ones). */
  txAlloc(): number {
    let b = this.txPool.alloc();
    if (b < 0 && this.txRing.reclaim() > 0) b = this.txPool.alloc();
    return b;
  }

  /** The writable bytes of TX pool buffer `buf`. */
  txData(buf: number): Uint8Array {
    const off = this.txPool.offset(buf);
    return this.txPool.window.bytes.subarray(off, off + BUFFER_SIZE);
  }

  /**
   * Transmit the batch's frames (buffers from txAlloc). Returns how many the ring took; those leave
   * the batch and their buffers go back to the pool once sent; the rest stay, at the batch's front.
   */
  tx(batch: PacketBatch): number {
    return this.txRing.send(batch);
  }

  /** Copy one frame into a TX buffer and send it (control path: ARP, ICMP). False when no buffer or ring slot is free. */
  send(frame: Uint8Array): boolean {
    if (frame.length < ETH.HEADER || frame.length > ETH.MAX_FRAME) {
      throw new RangeError(`e1000e send: a frame is ${ETH.HEADER} to ${ETH.MAX_FRAME} bytes without FCS, got ${frame.length}`);
    }
    const buf = this.txAlloc();
    if (buf < 0) return false;
    this.txData(buf).set(frame);
    const batch = this.sendBatch;
    batch.clear();
    batch.push(buf, frame.length);
    if (this.tx(batch) === 1) return true;
    this.txPool.free(buf);
    batch.clear();
    return false;
  }

  /**
   * Wait until a frame is waiting in the RX ring or `timeoutMs` passes; true when one is. In MSI-X
   * and INTx modes only the interrupt (or the timeout) ends the wait: no polling behind its back,
   * so a lost interrupt shows as a timeout. In poll mode the ring is checked every millisecond.
   */
  async waitRx(timeoutMs: number): Promise<boolean> {
    const clock = this.platform.clock;
    const deadline = clock.now() + timeoutMs;
    // Re-arm first, then look at the ring: a frame that lands in between still raises the vector.
    if (this.interrupts === 'msix' && !this.closed) this.regs.write32(REG.IMS, MSIX_IMS);
    while (!this.rxRing.ready()) {
      const left = deadline - clock.now();
      if (left <= 0) return false;
      if (this.interrupts !== 'poll') {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => { this.wake = null; resolve(); }, left);
          this.wake = () => { clearTimeout(t); resolve(); };
        });
        if (this.interrupts === 'msix' && !this.closed) this.regs.write32(REG.IMS, MSIX_IMS);
      } else {
        await clock.sleep(1);
      }
    }
    return true;
  }

  // ---- control ----

  link(): LinkStatus {
    const s = this.regs.read32(REG.STATUS);
    return { up: (s & STATUS.LU) !== 0, speedMbps: statusSpeed(s), fullDuplex: (s & STATUS.FD) !== 0 };
  }

  setPromiscuous(on: boolean): void {
    this.opts.promiscuous = on;
    this.regs.write32(REG.RCTL, this.rctl());
  }

  get promiscuous(): boolean {
    return this.opts.promiscuous;
  }

  /** Read (and so clear, §10.2) the device's statistics registers and return the totals since open. */
  stats(): E1000eStats {
    this.readStats(true);
    const device = {} as E1000eStats['device'];
    for (const name of STAT32) device[name] = this.statTotals.get(name) ?? 0;
    for (const [lo] of STAT64) {
      const name = lo.slice(0, -1) as 'GORC' | 'GOTC' | 'TOR' | 'TOT';
      device[name] = this.statTotals.get(name) ?? 0;
    }
    return { device, rx: { ...this.rxRing.counters }, tx: { ...this.txRing.counters }, interrupts: this.irqCount };
  }

  private readStats(keep: boolean): void {
    const r = this.regs;
    for (const name of STAT32) {
      const v = r.read32(STAT[name]);
      if (keep) this.statTotals.set(name, (this.statTotals.get(name) ?? 0) + v);
    }
    for (const [lo, hi] of STAT64) {
      // Low dword first, then high: reading the high dword clears the pair.
      const l = r.read32(STAT[lo]);
      const h = r.read32(STAT[hi]);
      const name = lo.slice(0, -1);
      if (keep) this.statTotals.set(name, (this.statTotals.get(name) ?? 0) + h * 0x1_0000_0000 + l);
    }
  }

  /** Stop the device (receiver, transmitter, interrupts, DMA, reset) and release every window. */
  async close(): Promise<void> {
    if (this.closed) return;
    const r = this.regs;
    r.write32(REG.RCTL, 0);
    r.write32(REG.TCTL, 0);
    r.write32(REG.IMC, ALL_CAUSES);
    try {
      await this.quiesceDma();
      r.write32(REG.CTRL, (r.read32(REG.CTRL) | CTRL.RST) >>> 0);
      await this.waitReg(REG.CTRL, CTRL.RST, 0, this.opts.resetTimeoutMs, 'ERR_E1000E_RESET_TIMEOUT', 'CTRL.RST to self-clear');
    } finally {
      this.releaseAll();
    }
  }

  private releaseAll(): void {
    this.closed = true;
    if (this.vectors.length) { this.platform.irq.disable(); this.vectors = []; }
    const cfg = this.platform.config;
    cfg.write16(PCI_COMMAND, cfg.read16(PCI_COMMAND) & ~PCI_COMMAND_MASTER);
    for (const w of this.windows.splice(0)) this.platform.dma.free(w);
  }
}

function hex4(v: number): string {
  return v.toString(16).padStart(4, '0');
}
