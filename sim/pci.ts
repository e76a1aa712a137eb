/**
 * A simulated PCI Express function: config space, memory BARs dispatched to a model's register
 * handlers, MSI-X, INTx, bus mastering, function-level reset.
 *
 * Config space (PCI Local Bus 3.0 §6.1, type 0 header) is 4 KiB of bytes with a per-byte writable
 * mask; writes that matter (Command, MSI-X Message Control, PCIe Device Control) have side
 * effects here. Capabilities, in list order: PCI Power Management (0x40), MSI-X (0x50, when the
 * model declares it), PCI Express (0x60, Device Capabilities with Function Level Reset Capability).
 */
import { EventEmitter } from 'node:events';
import type { IrqKind } from '../drivers/contract/platform.js';
import { DeviceDma } from './dma.js';
import { SimError } from './errors.js';
import type { IommuDomain, SimIommu } from './iommu.js';
import type { PhysicalMemory } from './memory.js';
import type { BarDecl, DeviceModel } from './model.js';
import { Msi } from './msi.js';
import { Msix } from './msix.js';
import { barOffset, CAP_ID, CONFIG_SPACE_BYTES, PCI } from '../spec/pci/config.js';
import { MSI, MSIX, MSIX_MAX_VECTORS, PCIE } from '../spec/pci/capabilities.js';
import { DeviceWork, type WorkMode, type WorkOwner } from './sched.js';

export const CONFIG_SIZE = CONFIG_SPACE_BYTES;

/** Where this simulator places its capabilities (its choice: any offset in the list would do). */
export const CAP_PM_OFFSET = 0x40;
export const CAP_MSIX_OFFSET = 0x50;
export const CAP_PCIE_OFFSET = 0x60;
/** After the PCIe capability (0x60..0x9b, v2 is 0x3c bytes). */
export const CAP_MSI_OFFSET = 0xa0;

const COMMAND = PCI.COMMAND.offset;
const BUS_MASTER = PCI.COMMAND.BUS_MASTER.mask;
const MEMORY_SPACE = PCI.COMMAND.MEMORY_SPACE.mask;
const INTX_DISABLE = PCI.COMMAND.INTX_DISABLE.mask;
const STATUS = PCI.STATUS.offset;
const MSIX_MC = CAP_MSIX_OFFSET + MSIX.MC.offset;
const DEVCTL = CAP_PCIE_OFFSET + PCIE.DEVCTL.offset;
const DEVSTA = CAP_PCIE_OFFSET + PCIE.DEVSTA.offset;
const DEVSTA_FED = PCIE.DEVSTA.FED.mask;
const DEVSTA_RW1C = PCIE.DEVSTA.CED.mask | PCIE.DEVSTA.NFED.mask | PCIE.DEVSTA.FED.mask | PCIE.DEVSTA.URD.mask;
/** Device faults kept per function (the count goes on). */
const FAULTS_KEPT = 16;

/**
 * An exception caught inside a device model (a bug the driver's input reached): where it came
 * from, its message, and the exception itself. The function is in its fatal state afterwards.
 */
export interface DeviceFault {
  readonly address: string;
  readonly model: string;
  /** 'work': a deferred or sync work routine; 'register': a BAR access; 'config': a config-space write's side effects; 'wire': a frame delivered to the model. */
  readonly source: 'work' | 'register' | 'config' | 'wire';
  readonly message: string;
  readonly error: unknown;
}

const ALL_ONES = 0xffffffff;

export class PciFunction extends EventEmitter implements WorkOwner {
  readonly address: string;
  readonly model: DeviceModel;
  readonly iommu: SimIommu;
  readonly domain: IommuDomain;
  /** The device-side DMA engine: what the model calls to touch host memory. */
  readonly dma: DeviceDma;
  readonly msix: Msix | undefined;
  readonly msi: Msi | undefined;
  readonly intx: boolean;
  /** Raw config space. Drivers go through the platform's ConfigSpace. */
  readonly config = new Uint8Array(CONFIG_SIZE);
  private readonly cfg = new DataView(this.config.buffer);
  private readonly writable = new Uint8Array(CONFIG_SIZE);
  private readonly bars: (BarDecl | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
  private readonly works: DeviceWork[] = [];
  /** The hang switch: while true the model's work does not run. */
  hung = false;
  /** Where interrupts go: set by the platform. */
  irqSink: ((kind: IrqKind, vector: number) => void) | undefined;
  /**
   * Where the function's error signal goes (PCIe AER: an uncorrectable error reported to the root
   * port, which the host kernel recovers and vfio-pci turns into its error interrupt): set by the
   * device process, which tells the manager.
   */
  errorSink: ((cause: string) => void) | undefined;
  /** Errors signalled while nothing listened. */
  errorsLost = 0;
  /** Function-level resets done. */
  resets = 0;
  /** Interrupts raised while INTx was the mode and Interrupt Disable was set, or nothing was routed. */
  intxSuppressed = 0;
  /** Exceptions caught inside the model (see `deviceFault`), and the last few of them. */
  faultCount = 0;
  readonly deviceFaults: DeviceFault[] = [];
  /** The function was hung by a device fault (not by the test switch): a function-level reset releases it. */
  private faultHung = false;

  constructor(address: string, model: DeviceModel, iommu: SimIommu, mem: PhysicalMemory) {
    super();
    this.address = address;
    this.model = model;
    this.iommu = iommu;
    this.domain = iommu.domain(address);
    this.dma = new DeviceDma(this, iommu, this.domain, mem);
    this.intx = model.intx === true;
    this.msix = model.msix ? new Msix(model.msix.vectors) : undefined;
    if (this.msix !== undefined) {
      const msix = this.msix;
      msix.sink = (v) => {
        if (this.irqSink === undefined) msix.lost++;
        else this.irqSink('msix', v);
      };
    }
    this.msi = model.msi ? new Msi(this.cfg, CAP_MSI_OFFSET, model.msi.vectors) : undefined;
    if (this.msi !== undefined) {
      const msi = this.msi;
      msi.sink = (v) => {
        if (this.irqSink === undefined) msi.lost++;
        else this.irqSink('msi', v);
      };
    }
    this.build();
  }

  /** Signal an uncorrectable error (the simulator's AER): to the error sink, or counted as lost. */
  raiseError(cause: string): void {
    if (this.errorSink === undefined) this.errorsLost++;
    else this.errorSink(cause);
  }

  get busMasterEnabled(): boolean {
    return (this.cfg.getUint16(COMMAND, true) & BUS_MASTER) !== 0;
  }

  get memoryEnabled(): boolean {
    return (this.cfg.getUint16(COMMAND, true) & MEMORY_SPACE) !== 0;
  }

  /** Wrap a model routine so doorbells can kick it (see sim/sched.ts). */
  work(routine: () => void, mode: WorkMode = 'deferred'): DeviceWork {
    const w = new DeviceWork(this, routine, mode);
    this.works.push(w);
    return w;
  }

  /** Switch every work routine of this function to 'sync' or 'deferred'. */
  setWorkMode(mode: WorkMode): void {
    for (const w of this.works) w.mode = mode;
  }

  /** The hang switch for fault tests: the device stops processing (registers still answer). */
  hang(): void {
    this.hung = true;
  }

  resume(): void {
    this.hung = false;
    for (const w of this.works) w.resumed();
  }

  /** WorkOwner: a work routine threw. */
  workFailed(error: unknown): void {
    this.deviceFault('work', error);
  }

  /** True once a device fault happened and no function-level reset has cleared it (PCIe DEVSTA.FED). */
  get fatal(): boolean {
    return (this.cfg.getUint16(DEVSTA, true) & DEVSTA_FED) !== 0;
  }

  /**
   * An exception escaped the model (its work, a register handler, a config write's side effect, a
   * frame from the wire): never let it reach whoever drove the access or scheduled the work.
   * The function records it, sets Fatal Error Detected in the PCIe Device Status register
   * (PCIe 4.0 §7.5.3.5, what a driver or AER sees), asks the model to enter its own fatal state
   * (NVMe CSTS.CFS, the 82574L stops; a model without `fail` is hung: it processes nothing more
   * until a function-level reset) and emits 'fault' with the DeviceFault for the owner.
   */
  deviceFault(source: DeviceFault['source'], error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    const f: DeviceFault = { address: this.address, model: this.model.name, source, message, error };
    this.faultCount++;
    this.deviceFaults.push(f);
    if (this.deviceFaults.length > FAULTS_KEPT) this.deviceFaults.shift();
    this.cfg.setUint16(DEVSTA, this.cfg.getUint16(DEVSTA, true) | DEVSTA_FED, true);
    try {
      if (this.model.fail !== undefined) this.model.fail(`${source}: ${message}`);
      else this.faultHung = this.hung = true;
    } catch {
      this.faultHung = this.hung = true;
    }
    try {
      this.emit('fault', f);
    } catch {
      // A listener's own failure is the owner's; the device is already stopped.
    }
  }

  /**
   * Signal interrupt `vector`: through MSI-X when it is enabled, else MSI when it is enabled, else
   * INTx when the function has a pin and Interrupt Disable is clear. Returns what happened.
   */
  interrupt(vector: number): 'delivered' | 'pending' | 'disabled' | 'dropped' | 'intx' | 'suppressed' {
    if (this.msix !== undefined && this.msix.enabled) return this.msix.raise(vector);
    if (this.msi !== undefined && this.msi.enabled) return this.msi.raise(vector);
    if (this.intx) {
      this.cfg.setUint16(STATUS, this.cfg.getUint16(STATUS, true) | PCI.STATUS.INTX.mask, true);
      if ((this.cfg.getUint16(COMMAND, true) & INTX_DISABLE) !== 0 || this.irqSink === undefined) {
        this.intxSuppressed++;
        return 'suppressed';
      }
      this.irqSink('intx', 0);
      return 'intx';
    }
    return 'disabled';
  }

  /** The model deasserts INTx (its interrupt cause register was read or cleared). */
  lowerIntx(): void {
    this.cfg.setUint16(STATUS, this.cfg.getUint16(STATUS, true) & ~PCI.STATUS.INTX.mask, true);
  }

  // ---- config space ----

  cfgRead(offset: number, size: 1 | 2 | 4): number {
    if (size === 1) return this.cfg.getUint8(offset);
    if (size === 2) return this.cfg.getUint16(offset, true);
    return this.cfg.getUint32(offset, true);
  }

  cfgWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size; i++) {
      const m = this.writable[offset + i]!;
      const b = (value >>> (8 * i)) & 0xff;
      this.config[offset + i] = (this.config[offset + i]! & ~m) | (b & m);
    }
    const end = offset + size;
    const touches = (at: number, len: number): boolean => offset < at + len && at < end;
    // Device Status error bits are RW1C (§7.5.3.5), all in its low byte: written 1s clear them.
    if (offset <= DEVSTA && DEVSTA < end) this.config[DEVSTA] = this.config[DEVSTA]! & ~((value >>> (8 * (DEVSTA - offset))) & DEVSTA_RW1C);
    try {
      this.configEffects(touches);
    } catch (e) {
      this.deviceFault('config', e);
    }
  }

  /** The side effects of a config write: MSI-X and MSI control, Initiate FLR. */
  private configEffects(touches: (at: number, len: number) => boolean): void {
    if (this.msix !== undefined && touches(MSIX_MC, 2)) {
      this.msix.setControl(this.cfg.getUint16(MSIX_MC, true));
    }
    if (this.msi !== undefined && touches(CAP_MSI_OFFSET, MSI.SIZE)) this.msi.configWritten();
    if (touches(DEVCTL, 2)) {
      const ctl = this.cfg.getUint16(DEVCTL, true);
      if ((ctl & PCIE.DEVCTL.INITIATE_FLR.mask) !== 0) {
        this.cfg.setUint16(DEVCTL, ctl & ~PCIE.DEVCTL.INITIATE_FLR.mask, true);
        this.flr();
      }
    }
  }

  // ---- BARs ----

  /** Size of a memory BAR, or 0 when the function has none at `index` (or it is a 64-bit BAR's upper half). */
  barSize(index: number): number {
    return this.bars[index]?.size ?? 0;
  }

  /** A 32-bit read inside a BAR (the caller checked bounds and alignment). Memory space disabled: all ones. */
  barRead32(index: number, offset: number): number {
    if (!this.memoryEnabled) return ALL_ONES;
    const m = this.msix,
      d = this.model.msix;
    if (m !== undefined && d !== undefined && d.bar === index) {
      if (offset >= d.tableOffset && offset < d.tableOffset + m.tableSize) return m.tableRead32(offset - d.tableOffset);
      if (offset >= d.pbaOffset && offset < d.pbaOffset + m.pbaSize) return m.pbaRead32(offset - d.pbaOffset);
    }
    try {
      return this.bars[index]!.handler.read32(offset) >>> 0;
    } catch (e) {
      this.deviceFault('register', e);
      return ALL_ONES;
    }
  }

  barWrite32(index: number, offset: number, value: number): void {
    if (!this.memoryEnabled) return;
    const m = this.msix,
      d = this.model.msix;
    try {
      if (m !== undefined && d !== undefined && d.bar === index) {
        // An unmasking write delivers pending messages: to the platform's handlers, inside this write.
        if (offset >= d.tableOffset && offset < d.tableOffset + m.tableSize) return m.tableWrite32(offset - d.tableOffset, value);
        if (offset >= d.pbaOffset && offset < d.pbaOffset + m.pbaSize) return m.pbaWrite32(offset - d.pbaOffset, value);
      }
      this.bars[index]!.handler.write32(offset, value >>> 0);
    } catch (e) {
      this.deviceFault('register', e);
    }
  }

  // ---- reset ----

  /**
   * Function-level reset (PCIe Base 4.0 §6.6.2): the model's registers return to power-on values,
   * scheduled work is dropped, MSI-X returns to disabled with every vector masked, and Bus Master
   * Enable is cleared. BARs and Memory Space Enable stay, as VFIO restores them after its reset.
   */
  flr(): void {
    this.resets++;
    for (const w of this.works) w.cancel();
    const cmd = this.cfg.getUint16(COMMAND, true);
    this.cfg.setUint16(COMMAND, cmd & ~(BUS_MASTER | INTX_DISABLE), true);
    this.lowerIntx();
    if (this.msix !== undefined) {
      this.msix.reset();
      this.cfg.setUint16(MSIX_MC, this.cfg.getUint16(MSIX_MC, true) & ~(MSIX.MC.ENABLE.mask | MSIX.MC.FMASK.mask), true);
    }
    this.msi?.reset();
    this.cfg.setUint16(DEVSTA, 0, true);
    if (this.faultHung) this.faultHung = this.hung = false;
    try {
      this.model.reset();
    } catch (e) {
      this.deviceFault('config', e);
    }
    this.emit('reset');
  }

  // ---- construction ----

  private build(): void {
    const { ids } = this.model;
    const c = this.cfg;
    const w16 = (off: number, mask: number): void => {
      this.writable[off] = mask & 0xff;
      this.writable[off + 1] = (mask >>> 8) & 0xff;
    };
    const w32 = (off: number, mask: number): void => {
      w16(off, mask & 0xffff);
      w16(off + 2, mask >>> 16);
    };
    c.setUint16(PCI.VENDOR_ID.offset, ids.vendor, true);
    c.setUint16(PCI.DEVICE_ID.offset, ids.device, true);
    c.setUint8(PCI.REVISION_ID.offset, ids.revision);
    c.setUint8(PCI.CLASS_CODE.offset, ids.classCode & 0xff);
    c.setUint8(PCI.CLASS_CODE.offset + 1, (ids.classCode >>> 8) & 0xff);
    c.setUint8(PCI.CLASS_CODE.offset + 2, (ids.classCode >>> 16) & 0xff);
    c.setUint8(PCI.HEADER_TYPE.offset, 0);
    c.setUint16(PCI.SUBSYSTEM_VENDOR_ID.offset, ids.subsystemVendor ?? ids.vendor, true);
    c.setUint16(PCI.SUBSYSTEM_ID.offset, ids.subsystemDevice ?? ids.device, true);
    c.setUint16(STATUS, PCI.STATUS.CAP_LIST.mask, true);
    w16(COMMAND, MEMORY_SPACE | BUS_MASTER | INTX_DISABLE);
    this.writable[PCI.INTERRUPT_LINE.offset] = 0xff;
    c.setUint8(PCI.INTERRUPT_PIN.offset, this.intx ? 1 : 0);

    // Memory BARs (§6.2.5.1): bit 0 = 0 memory, bits 2:1 = 10b for 64-bit; the low bits below the
    // size read as zero, so writing all ones and reading back gives the size.
    for (const bar of this.model.bars) {
      const is64 = bar.is64 !== false;
      if (
        !Number.isInteger(bar.index) ||
        bar.index < 0 ||
        bar.index > (is64 ? 4 : 5) ||
        this.bars[bar.index] !== undefined ||
        (is64 && this.bars[bar.index + 1] !== undefined)
      ) {
        throw new SimError('ERR_SIM_ARG', `${this.model.name}: BAR ${bar.index} is out of range or overlaps another BAR`);
      }
      if (!Number.isInteger(bar.size) || bar.size < 4096 || (bar.size & (bar.size - 1)) !== 0) {
        throw new SimError('ERR_SIM_ARG', `${this.model.name}: BAR ${bar.index} size ${bar.size} is not a power of two >= 4096`);
      }
      this.bars[bar.index] = bar;
      const off = barOffset(bar.index);
      c.setUint32(off, is64 ? 0b100 : 0, true);
      w32(off, ~(bar.size - 1) & ~0xf);
      if (is64) w32(off + 4, ALL_ONES);
    }

    // Capability list.
    const caps: number[] = [CAP_PM_OFFSET];
    if (this.msix !== undefined) caps.push(CAP_MSIX_OFFSET);
    caps.push(CAP_PCIE_OFFSET);
    if (this.msi !== undefined) caps.push(CAP_MSI_OFFSET);
    c.setUint8(PCI.CAPABILITIES_POINTER.offset, caps[0]!);
    const next = (at: number): number => caps[caps.indexOf(at) + 1] ?? 0;

    // PCI Power Management (PCI PM 1.2 §3.2): PMC version 3, PMCSR PowerState (bits 1:0) writable.
    c.setUint8(CAP_PM_OFFSET, CAP_ID.PM);
    c.setUint8(CAP_PM_OFFSET + 1, next(CAP_PM_OFFSET));
    c.setUint16(CAP_PM_OFFSET + 2, 0x0003, true);
    w16(CAP_PM_OFFSET + 4, 0x0003);

    const d = this.model.msix;
    if (this.msix !== undefined && d !== undefined) {
      const bar = this.bars[d.bar];
      if (
        bar === undefined ||
        d.vectors < 1 ||
        d.vectors > MSIX_MAX_VECTORS ||
        d.tableOffset % 8 !== 0 ||
        d.pbaOffset % 8 !== 0 ||
        d.tableOffset + this.msix.tableSize > bar.size ||
        d.pbaOffset + this.msix.pbaSize > bar.size ||
        (d.tableOffset < d.pbaOffset + this.msix.pbaSize && d.pbaOffset < d.tableOffset + this.msix.tableSize)
      ) {
        throw new SimError(
          'ERR_SIM_ARG',
          `${this.model.name}: MSI-X table/PBA (BAR ${d.bar}, table 0x${d.tableOffset.toString(16)}, PBA 0x${d.pbaOffset.toString(16)}, ${d.vectors} vectors) do not fit the BAR or overlap`,
        );
      }
      // MSI-X capability (§6.8.2): Message Control (Table Size N-1, Function Mask, Enable),
      // Table Offset/BIR, PBA Offset/BIR.
      c.setUint8(CAP_MSIX_OFFSET, CAP_ID.MSIX);
      c.setUint8(CAP_MSIX_OFFSET + 1, next(CAP_MSIX_OFFSET));
      c.setUint16(MSIX_MC, d.vectors - 1, true);
      w16(MSIX_MC, MSIX.MC.ENABLE.mask | MSIX.MC.FMASK.mask);
      c.setUint32(CAP_MSIX_OFFSET + 4, d.tableOffset | d.bar, true);
      c.setUint32(CAP_MSIX_OFFSET + 8, d.pbaOffset | d.bar, true);
    }

    // PCI Express capability v2, endpoint (§7.5.3): FLR capable; Initiate FLR writable.
    c.setUint8(CAP_PCIE_OFFSET, CAP_ID.PCIE);
    c.setUint8(CAP_PCIE_OFFSET + 1, next(CAP_PCIE_OFFSET));
    c.setUint16(CAP_PCIE_OFFSET + 2, 0x0002, true);
    c.setUint32(CAP_PCIE_OFFSET + PCIE.DEVCAP.offset, PCIE.DEVCAP.FLR.mask, true);
    w16(DEVCTL, 0xffff);

    // MSI (§6.8.1), 64-bit with per-vector masking.
    if (this.msi !== undefined) {
      c.setUint8(CAP_MSI_OFFSET, CAP_ID.MSI);
      c.setUint8(CAP_MSI_OFFSET + 1, next(CAP_MSI_OFFSET));
      this.msi.reset();
      for (const [off, size, mask] of Msi.WRITABLE) (size === 2 ? w16 : w32)(CAP_MSI_OFFSET + off, mask);
      w32(CAP_MSI_OFFSET + MSI.MASK.offset, this.msi.vectors === 32 ? 0xffffffff : (1 << this.msi.vectors) - 1);
    }
  }

  /** BAR base addresses are not meaningful in the simulator; give each a distinct one for tools that read them. */
  assignBarAddresses(base: number): void {
    for (const bar of this.bars) {
      if (bar === undefined) continue;
      const off = barOffset(bar.index);
      const lo = this.cfg.getUint32(off, true) & 0xf;
      this.cfg.setUint32(off, (lo | (base & ~0xf)) >>> 0, true);
      if (bar.is64 !== false) this.cfg.setUint32(off + 4, Math.floor(base / 0x1_0000_0000), true);
      base += bar.size;
    }
  }
}
