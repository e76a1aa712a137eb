/**
 * The e1000e (Intel 82574L) driver: bring-up per the datasheet's software initialisation sequence
 * (§4.6), then batched receive and transmit over preallocated rings and packet pools.
 *
 * It sees only the driver contract (drivers/contract/platform.ts): the same code runs on the
 * simulator and, in the lab, on QEMU's e1000e through VFIO. DMA windows, least privilege:
 * - RX descriptors: device read + write (it fetches buffer addresses and writes back status);
 * - RX buffers: device write only;
 * - TX descriptors: device read only (completion comes from TDH, see tx-ring.ts);
 * - TX buffers: device read only.
 *
 * Every wait on the device is bounded (options below) and ends in an E1000eError naming the register.
 *
 * Imports: the driver contract, the driver kit (BufferPool), spec/ (the register map), this folder.
 */
import { PCI } from '../../spec/pci/config.js';
import type { Platform, RegisterSpace, DmaWindow, DmaPerm } from '../contract/platform.js';
import { DEVICE_READS, DEVICE_WRITES, DEVICE_READS_WRITES } from '../contract/platform.js';
import { getField, setField } from '../../spec/field.js';
import {
  REG,
  BAR0_SIZE,
  PCI_ID,
  MTA_DWORDS,
  RAR_ENTRIES,
  NVM,
  TIPG_COPPER,
  mtaOffset,
  ralOffset,
  rahOffset,
  statusSpeed,
} from '../../spec/e1000e/registers.js';
import { DESC_SIZE } from '../../spec/e1000e/descriptors.js';
import { ETH } from '../../spec/e1000e/ethernet.js';
import { E1000eError } from './errors.js';
import { RxRing } from './rx-ring.js';
import { TxRing } from './tx-ring.js';
import { StatTotals, type DeviceStats } from './stats.js';
import { InterruptWait } from './interrupts.js';
import { PacketBatch } from '../contract/packet-batch.js';
import { checkOptions, type E1000eOptions, type E1000eInterruptMode } from './options.js';
import { BufferPool } from '../kit/pool.js';

export type { E1000eOptions, E1000eInterruptMode } from './options.js';
export type { DeviceStats } from './stats.js';

export interface LinkStatus {
  up: boolean;
  speedMbps: 10 | 100 | 1000;
  fullDuplex: boolean;
  /** Set when STATUS reads all ones: the device has left the bus (surprise removal); `up` is then false. */
  gone?: true;
}

/** Device statistics (datasheet mnemonics) accumulated since open, plus the driver's own counters. */
export interface E1000eStats {
  device: DeviceStats;
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
/** What every register reads once the device has left the bus. */
const DEVICE_GONE = 0xffffffff;
const { CTRL, STATUS, EERD, CTRL_EXT, RCTL, TCTL, TXDCTL, RAH } = REG;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class E1000e {
  readonly platform: Platform;
  readonly regs: RegisterSpace;
  /** The station address, from the EEPROM (EERD) or RAL0/RAH0. */
  readonly mac: Uint8Array = new Uint8Array(ETH.ADDR);
  readonly interrupts: E1000eInterruptMode;
  rxRing!: RxRing;
  txRing!: TxRing;
  rxPool!: BufferPool;
  txPool!: BufferPool;
  private readonly opts: Required<E1000eOptions>;
  private readonly windows: DmaWindow[] = [];
  private readonly statTotals: StatTotals;
  private readonly irq: InterruptWait;
  private closed = false;
  private readonly sendBatch = new PacketBatch(1);

  private constructor(platform: Platform, opts: Required<E1000eOptions>) {
    this.platform = platform;
    this.opts = opts;
    this.interrupts = opts.interrupts;
    const bar = platform.bar(0);
    if (bar.size < BAR0_SIZE) {
      throw new E1000eError('ERR_E1000E_DEVICE', `${platform.name}: BAR0 is ${bar.size} bytes; the 82574L's BAR0 has ${BAR0_SIZE}`, {
        fix: 'point the driver at the 82574L function itself (its BAR0 is 128 KiB)',
      });
    }
    this.regs = bar;
    this.statTotals = new StatTotals(bar);
    this.irq = new InterruptWait(platform, bar, opts.interrupts);
  }

  /** Open and initialise the NIC behind `platform` (§4.6). */
  static async open(platform: Platform, options: E1000eOptions = {}): Promise<E1000e> {
    if (!LITTLE_ENDIAN) {
      throw new E1000eError('ERR_E1000E_DEVICE', 'e1000e: the rings use host-endian typed arrays; this host is big-endian', {
        fix: 'run the driver on a little-endian host (x86-64, arm64)',
      });
    }
    const opts = checkOptions(options);
    const vendor = platform.config.read16(PCI.VENDOR_ID.offset);
    const device = platform.config.read16(PCI.DEVICE_ID.offset);
    if (vendor !== PCI_ID.VENDOR || device !== PCI_ID.DEVICE_82574L) {
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
    r.write32(REG.IMC.offset, ALL_CAUSES);
    // §4.6.2 global reset: stop bus mastering first so no DMA is in flight, then CTRL.RST.
    await this.quiesceDma();
    await this.reset();
    r.write32(REG.IMC.offset, ALL_CAUSES); // the reset unmasked nothing, but §4.6.1 asks again after it
    r.read32(REG.ICR.offset);

    // §4.6.3 link: MAC/PHY link on, no forced speed, no flow control, no VLAN mode.
    const ctrl =
      (r.read32(CTRL.offset) | CTRL.SLU.mask | CTRL.ASDE.mask) &
      ~(CTRL.PHY_RST.mask | CTRL.VME.mask | CTRL.RFCE.mask | CTRL.TFCE.mask | CTRL.GIO_MASTER_DISABLE.mask);
    r.write32(CTRL.offset, ctrl >>> 0);
    r.write32(CTRL_EXT.offset, (r.read32(CTRL_EXT.offset) | CTRL_EXT.DRV_LOAD.mask) >>> 0);

    await this.readMac();
    // Receive address 0 = our MAC, valid; the other 15 entries invalid (§10.2.5).
    const m = this.mac;
    r.write32(ralOffset(0), (m[0]! | (m[1]! << 8) | (m[2]! << 16) | (m[3]! << 24)) >>> 0);
    r.write32(rahOffset(0), (m[4]! | (m[5]! << 8) | RAH.AV.mask) >>> 0);
    for (let i = 1; i < RAR_ENTRIES; i++) {
      r.write32(ralOffset(i), 0);
      r.write32(rahOffset(i), 0);
    }
    // The MTA is not initialised by hardware: clear it (§4.6.5).
    for (let i = 0; i < MTA_DWORDS; i++) r.write32(mtaOffset(i), 0);

    // §4.6.4: statistics are read-to-clear; read them once so counting starts at zero.
    this.statTotals.collect(false);

    this.setupRings();
    cfg.write16(PCI_COMMAND, cfg.read16(PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    this.irq.enable();

    // §4.6.5 receive: legacy descriptors (RFCTL.EXSTEN = 0), no checksum offload, 2048-byte buffers, strip CRC.
    // No interrupt moderation or delay. (Every register used is written: QEMU 7.2's CTRL.RST
    // reloads only the MAC address and leaves the rest as an earlier driver set it.)
    r.write32(REG.ITR.offset, 0);
    r.write32(REG.RDTR.offset, 0);
    r.write32(REG.TIDV.offset, 0);
    r.write32(REG.RFCTL.offset, 0);
    r.write32(REG.RXCSUM.offset, 0);
    this.rxRing.start();
    r.write32(RCTL.offset, this.rctl());
    // §4.6.6 transmit.
    this.txRing.start();
    r.write32(TXDCTL.offset, (TXDCTL.MUST_BE_ONE.mask | TXDCTL.GRAN.mask) >>> 0);
    r.write32(REG.TIPG.offset, TIPG_COPPER);
    r.write32(TCTL.offset, setField(setField(TCTL.EN.mask | TCTL.PSP.mask, TCTL.CT, 15), TCTL.COLD, 63));

    await this.waitLink();
  }

  /** CTRL.GIO_MASTER_DISABLE, then wait (bounded) for STATUS.GIO_MASTER_ENABLE to clear. */
  private async quiesceDma(): Promise<void> {
    const r = this.regs;
    r.write32(CTRL.offset, (r.read32(CTRL.offset) | CTRL.GIO_MASTER_DISABLE.mask) >>> 0);
    await this.waitReg(
      STATUS.offset,
      STATUS.GIO_MASTER_ENABLE.mask,
      0,
      this.opts.resetTimeoutMs,
      'ERR_E1000E_RESET_TIMEOUT',
      'STATUS.GIO_MASTER_ENABLE to clear after CTRL.GIO_MASTER_DISABLE',
    );
  }

  /** CTRL.RST, then wait (bounded) for it to self-clear (§4.6.2). */
  private async reset(): Promise<void> {
    const r = this.regs;
    r.write32(CTRL.offset, (r.read32(CTRL.offset) | CTRL.RST.mask) >>> 0);
    await this.waitReg(CTRL.offset, CTRL.RST.mask, 0, this.opts.resetTimeoutMs, 'ERR_E1000E_RESET_TIMEOUT', 'CTRL.RST to self-clear');
  }

  private rctl(): number {
    let v = RCTL.EN.mask | RCTL.BAM.mask | RCTL.SECRC.mask; // BSIZE 00b, BSEX 0: 2048 bytes; RDMTS 1/2; MO 0
    if (this.opts.promiscuous) v |= RCTL.UPE.mask | RCTL.MPE.mask;
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

  /** The station address from EEPROM words 0..2 (EERD, §10.2.2.4); RAL0/RAH0 when the EEPROM fails or is blank. */
  private async readMac(): Promise<void> {
    const r = this.regs;
    const words = [NVM.MAC0, NVM.MAC1, NVM.MAC2];
    let failed: unknown = null;
    try {
      for (let i = 0; i < words.length; i++) {
        const w = words[i]!;
        r.write32(EERD.offset, setField(EERD.START.mask, EERD.ADDR, w));
        const v = await this.waitReg(
          EERD.offset,
          EERD.DONE.mask,
          EERD.DONE.mask,
          this.opts.eepromTimeoutMs,
          'ERR_E1000E_EEPROM_TIMEOUT',
          `EERD.DONE for EEPROM word ${w}`,
        );
        // All ones is no EEPROM answer (DONE and the data both read as set): a read that failed
        // on its way, or a device that left the bus. Taking its FFFFh as a word of the address
        // gives a MAC the device does not have (a campaign's injected register-read error did).
        if (v === DEVICE_GONE) throw new E1000eError('ERR_E1000E_GONE', `${this.platform.name}: EERD read all ones for EEPROM word ${w}`);
        const data = getField(v, EERD.DATA);
        this.mac[2 * i] = data & 0xff;
        this.mac[2 * i + 1] = data >>> 8;
      }
      // A station address is unicast (I/G bit 0 of the first byte clear) and not all zeros: an
      // EEPROM that says otherwise is garbage, and RAL0/RAH0 (loaded by the device) is used instead.
      if ((this.mac[0]! & 1) === 0 && !this.mac.every((b) => b === 0)) return;
    } catch (e) {
      failed = e;
    }
    // §10.2.5: after reset RAL0/RAH0 hold the address loaded from the EEPROM; use it if valid.
    const ral = r.read32(ralOffset(0));
    const rah = r.read32(rahOffset(0));
    if (rah === DEVICE_GONE && ral === DEVICE_GONE) {
      if (r.read32(STATUS.offset) === DEVICE_GONE)
        throw new E1000eError('ERR_E1000E_GONE', `${this.platform.name}: no MAC address: every register reads all ones: the device has left the bus`, {
          cause: failed ?? undefined,
          fix: 'reset or re-attach the function and open it again; on real hardware check the slot, the link and dmesg',
        });
      throw new E1000eError('ERR_E1000E_NO_MAC', `${this.platform.name}: no MAC address: the EEPROM gave none and RAL0/RAH0 read all ones`, {
        cause: failed ?? undefined,
        fix: 'reset the device (FLR) and open it again; a device whose address registers read all ones is faulty',
      });
    }
    if (!(rah & RAH.AV.mask)) {
      if (failed !== null) {
        throw new E1000eError('ERR_E1000E_EEPROM_TIMEOUT', `${this.platform.name}: no MAC address: the EEPROM did not answer and RAH0.AV is clear`, {
          cause: failed,
          fix: 'reset the device (FLR) and open it again; a device whose EEPROM never answers is faulty',
        });
      }
      throw new E1000eError('ERR_E1000E_NO_MAC', `${this.platform.name}: no MAC address: EEPROM words 0..2 are blank (all 00 or all ff) and RAH0.AV is clear`, {
        fix: 'program the EEPROM with a station address (or, on QEMU, give -device e1000e a mac=)',
      });
    }
    for (let i = 0; i < 4; i++) this.mac[i] = (ral >>> (8 * i)) & 0xff;
    this.mac[4] = rah & 0xff;
    this.mac[5] = (rah >>> 8) & 0xff;
  }

  private async waitLink(): Promise<void> {
    const deadline = this.platform.clock.now() + this.opts.linkTimeoutMs;
    for (;;) {
      if (this.regs.read32(STATUS.offset) & STATUS.LU.mask) return;
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
  private async waitReg(
    reg: number,
    mask: number,
    want: number,
    timeoutMs: number,
    code: 'ERR_E1000E_RESET_TIMEOUT' | 'ERR_E1000E_EEPROM_TIMEOUT',
    what: string,
  ): Promise<number> {
    const clock = this.platform.clock;
    const deadline = clock.now() + timeoutMs;
    for (;;) {
      const v = this.regs.read32(reg);
      if ((v & mask) === want) return v;
      if (clock.now() >= deadline) {
        throw new E1000eError(
          code,
          `${this.platform.name}: timed out after ${timeoutMs} ms waiting for ${what} (register 0x${reg.toString(16)} = 0x${(v >>> 0).toString(16)})`,
          {
            fix: 'the device is not responding: reset it (FLR) or check that it is an 82574L',
          },
        );
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
    if (b < 0) {
      const bad = this.txRing.counters.badHead;
      if (this.txRing.reclaim() > 0) b = this.txPool.alloc();
      else if (this.txRing.counters.badHead !== bad) this.checkPresent();
    }
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
    const bad = this.txRing.counters.badHead;
    const n = this.txRing.send(batch);
    // TDH outside the ring: all ones from a vanished device, or a device lying about its head.
    if (this.txRing.counters.badHead !== bad) this.checkPresent();
    return n;
  }

  /** Copy one frame into a TX buffer and send it (control path: ARP, ICMP). False when no buffer or ring slot is free. */
  send(frame: Uint8Array): boolean {
    if (frame.length < ETH.HEADER || frame.length > ETH.MAX_FRAME) {
      throw new E1000eError('ERR_E1000E_FRAME', `e1000e send: a frame is ${ETH.HEADER} to ${ETH.MAX_FRAME} bytes without FCS, got ${frame.length}`, {
        fix: 'pass an Ethernet frame from its destination address to the end of its payload, without the FCS (the device appends it)',
      });
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
    if (!this.closed) this.irq.rearm();
    while (!this.rxRing.ready()) {
      const left = deadline - clock.now();
      if (left <= 0) {
        // Nothing came: one register read tells a quiet wire from a device that left the bus.
        if (!this.closed) this.checkPresent();
        return false;
      }
      if (this.interrupts !== 'poll') {
        await this.irq.wait(left);
        if (!this.closed) this.irq.rearm();
      } else {
        await clock.sleep(1);
      }
    }
    return true;
  }

  /**
   * Throw ERR_E1000E_GONE when STATUS reads all ones (the device has left the bus). Called off the
   * per-frame path: when a wait for frames times out and when TDH is not believable, so a removed
   * NIC is reported to whoever runs the driver (the supervisor resets the function and restarts)
   * rather than seen as frames that stopped for no reason.
   */
  private checkPresent(): void {
    if (this.regs.read32(STATUS.offset) !== DEVICE_GONE) return;
    throw new E1000eError('ERR_E1000E_GONE', `${this.platform.name}: every register reads all ones: the device has left the bus`, {
      fix: 'reset or re-attach the function and start the driver again (the supervisor does this); on real hardware check the slot, the link and dmesg',
    });
  }

  // ---- control ----

  link(): LinkStatus {
    const s = this.regs.read32(STATUS.offset);
    // All ones: the device is gone (surprise removal, a failed link to it), not a link that is up.
    if (s === DEVICE_GONE) return { up: false, speedMbps: 10, fullDuplex: false, gone: true };
    return { up: (s & STATUS.LU.mask) !== 0, speedMbps: statusSpeed(s), fullDuplex: (s & STATUS.FD.mask) !== 0 };
  }

  setPromiscuous(on: boolean): void {
    this.opts.promiscuous = on;
    this.regs.write32(RCTL.offset, this.rctl());
  }

  get promiscuous(): boolean {
    return this.opts.promiscuous;
  }

  /** Read (and so clear, §10.2) the device's statistics registers and return the totals since open. */
  stats(): E1000eStats {
    this.statTotals.collect(true);
    return { device: this.statTotals.snapshot(), rx: { ...this.rxRing.counters }, tx: { ...this.txRing.counters }, interrupts: this.irq.count };
  }

  /** Stop the device (receiver, transmitter, interrupts, DMA, reset) and release every window. */
  async close(): Promise<void> {
    if (this.closed) return;
    const r = this.regs;
    r.write32(RCTL.offset, 0);
    r.write32(TCTL.offset, 0);
    r.write32(REG.IMC.offset, ALL_CAUSES);
    try {
      // A device that is gone (every read all ones) has no DMA to stop and no reset to wait for.
      if (r.read32(STATUS.offset) !== DEVICE_GONE) {
        await this.quiesceDma();
        await this.reset();
      }
    } finally {
      this.releaseAll();
    }
  }

  private releaseAll(): void {
    this.closed = true;
    this.irq.disable();
    const cfg = this.platform.config;
    cfg.write16(PCI_COMMAND, cfg.read16(PCI_COMMAND) & ~PCI_COMMAND_MASTER);
    for (const w of this.windows.splice(0)) this.platform.dma.free(w);
  }
}

function hex4(v: number): string {
  return v.toString(16).padStart(4, '0');
}
