/**
 * The simulated IOMMU: one translation domain per device, 4 KiB IOVA pages with read and write
 * permission, and a fault log in the style of Intel VT-d's fault recording registers.
 *
 * Page tables are a Map from IOVA page number to an entry `physPage * 4 + perm` (bit 0 read,
 * bit 1 write), with the last translation cached per domain: consecutive DMA to the same page (an
 * NVMe queue, a descriptor ring) costs one comparison. IOVAs are `number`s inside the simulator
 * (exact below 2^53; VT-d widths are 39 or 48 bits), bigint only at the Platform boundary.
 *
 * Fault reasons (VT-d 3.x §7.1.3, Table 26 "non-recoverable fault reasons"): a request to a page
 * that is not present or lacks the permission reports 0x05 for a write ("PTE Write access is not
 * set") and 0x06 for a read ("PTE Read access is not set"); Linux prints exactly these for
 * unmapped IOVAs too (see LAB-NOTES). We name them 'not-present', 'no-write', 'no-read' and keep
 * the VT-d code. Two reasons are not the IOMMU's but are logged in the same place because a test
 * asks the same question ("did the device touch memory it should not?"): 'no-bus-master' (the
 * function's command register has BME clear, so the request never leaves the device) and
 * 'unbacked' (translated to a physical address where no memory is: a master abort).
 *
 * Passthrough mode (IOMMU off: IOVA = physical) exists for experiments. It says loudly that nothing
 * is confined: `confined` is false, `status()` says so, a 'warning' event is emitted and a
 * process warning (code DMABOX_IOMMU_PASSTHROUGH) is printed.
 */
import { EventEmitter } from 'node:events';
import { SimError } from './errors.js';

export const IOMMU_PAGE_SHIFT = 12;
export const IOMMU_PAGE = 1 << IOMMU_PAGE_SHIFT;
export const PERM_READ = 1;
export const PERM_WRITE = 2;

export type DmaAccess = 'read' | 'write';
export type FaultReason = 'not-present' | 'no-read' | 'no-write' | 'no-bus-master' | 'unbacked';

/** VT-d fault reason codes (VT-d 3.x §7.1.3): 0x05 write without permission, 0x06 read without. */
export const VTD_WRITE_FAULT = 0x05;
export const VTD_READ_FAULT = 0x06;

export interface DmaFault {
  /** Sequence number, from 1, over the IOMMU's whole life. */
  readonly seq: number;
  /** PCI address of the requesting function, `0000:00:01.0`. */
  readonly device: string;
  readonly iova: number;
  /** Length of the whole refused transfer. */
  readonly length: number;
  readonly access: DmaAccess;
  readonly reason: FaultReason;
  /** VT-d fault reason code, or null for reasons that are not IOMMU faults. */
  readonly vtdReason: number | null;
}

const LOG_CAPACITY = 4096;

export interface IommuStatus {
  readonly passthrough: boolean;
  readonly confined: boolean;
  readonly warning: string | undefined;
  readonly domains: number;
  readonly faults: number;
}

export const PASSTHROUGH_WARNING = 'IOMMU passthrough: IOVA = physical address, device DMA is NOT confined';

export class SimIommu extends EventEmitter {
  readonly passthrough: boolean;
  private readonly domains = new Map<string, IommuDomain>();
  private readonly log: DmaFault[] = [];
  /** Faults ever recorded (the log keeps the last 4096). */
  faultCount = 0;
  /** Faults ever recorded, per reason. */
  readonly faultsByReason: Record<FaultReason, number> = { 'not-present': 0, 'no-read': 0, 'no-write': 0, 'no-bus-master': 0, unbacked: 0 };

  constructor(options: { passthrough?: boolean } = {}) {
    super();
    this.passthrough = options.passthrough === true;
    if (this.passthrough) {
      process.emitWarning(PASSTHROUGH_WARNING, { code: 'DMABOX_IOMMU_PASSTHROUGH' });
      // Listeners attached right after construction still hear it.
      queueMicrotask(() => this.emit('warning', PASSTHROUGH_WARNING));
    }
  }

  /** False in passthrough: nothing the device does is checked. */
  get confined(): boolean {
    return !this.passthrough;
  }

  status(): IommuStatus {
    return {
      passthrough: this.passthrough,
      confined: this.confined,
      warning: this.passthrough ? PASSTHROUGH_WARNING : undefined,
      domains: this.domains.size,
      faults: this.faultCount,
    };
  }

  /** The domain of a device, created on first use. */
  domain(device: string): IommuDomain {
    let d = this.domains.get(device);
    if (!d) {
      d = new IommuDomain(this, device);
      this.domains.set(device, d);
    }
    return d;
  }

  /** Record a refused transfer. Also emitted as a 'fault' event. */
  recordFault(device: string, iova: number, length: number, access: DmaAccess, reason: FaultReason): void {
    let vtdReason: number | null = null;
    if (reason === 'not-present') vtdReason = access === 'write' ? VTD_WRITE_FAULT : VTD_READ_FAULT;
    else if (reason === 'no-write') vtdReason = VTD_WRITE_FAULT;
    else if (reason === 'no-read') vtdReason = VTD_READ_FAULT;
    const fault: DmaFault = { seq: ++this.faultCount, device, iova, length, access, reason, vtdReason };
    this.faultsByReason[reason]++;
    if (this.log.length === LOG_CAPACITY) this.log.shift();
    this.log.push(fault);
    if (this.listenerCount('fault') > 0) this.emit('fault', fault);
  }

  /** The recorded faults (the last 4096), oldest first; optionally only one device's. */
  faults(device?: string): DmaFault[] {
    return device === undefined ? this.log.slice() : this.log.filter((f) => f.device === device);
  }

  clearFaults(): void {
    this.log.length = 0;
  }
}

/** One device's IOVA page table. */
export class IommuDomain {
  readonly iommu: SimIommu;
  readonly device: string;
  private readonly pages = new Map<number, number>();
  private cachedPage = -1;
  private cachedEntry = -1;
  /** Mappings made by `map` and not yet unmapped (VFIO counts these against DMA_AVAIL). */
  mappings = 0;

  constructor(iommu: SimIommu, device: string) {
    this.iommu = iommu;
    this.device = device;
  }

  /** Pages currently mapped. */
  get mappedPages(): number {
    return this.pages.size;
  }

  /** Map [iova, iova + size) to [phys, phys + size). All pages must be unmapped (VFIO: EEXIST). */
  map(iova: number, phys: number, size: number, perm: number): void {
    if (
      !Number.isSafeInteger(iova) ||
      !Number.isSafeInteger(phys) ||
      iova % IOMMU_PAGE !== 0 ||
      phys % IOMMU_PAGE !== 0 ||
      !Number.isSafeInteger(size) ||
      size <= 0 ||
      size % IOMMU_PAGE !== 0
    ) {
      throw new SimError(
        'ERR_SIM_IOMMU',
        `${this.device}: map iova 0x${iova.toString(16)} phys 0x${phys.toString(16)} size 0x${size.toString(16)}: each must be a multiple of ${IOMMU_PAGE}, size > 0`,
      );
    }
    if ((perm & (PERM_READ | PERM_WRITE)) === 0) {
      throw new SimError('ERR_SIM_IOMMU', `${this.device}: map with neither read nor write permission`, {
        fix: 'a mapping must allow the device to read, write, or both',
      });
    }
    const first = iova / IOMMU_PAGE,
      n = size / IOMMU_PAGE,
      physPage = phys / IOMMU_PAGE;
    for (let i = 0; i < n; i++) {
      if (this.pages.has(first + i)) {
        throw new SimError('ERR_SIM_IOMMU', `${this.device}: IOVA 0x${((first + i) * IOMMU_PAGE).toString(16)} is already mapped`, { fix: 'unmap it first' });
      }
    }
    for (let i = 0; i < n; i++) this.pages.set(first + i, (physPage + i) * 4 + perm);
    this.cachedPage = -1;
    this.mappings++;
  }

  /** Unmap [iova, iova + size); every page must be mapped. */
  unmap(iova: number, size: number): void {
    if (iova % IOMMU_PAGE !== 0 || size % IOMMU_PAGE !== 0 || size <= 0) {
      throw new SimError('ERR_SIM_IOMMU', `${this.device}: unmap 0x${iova.toString(16)} size 0x${size.toString(16)}: not page-aligned`);
    }
    const first = iova / IOMMU_PAGE,
      n = size / IOMMU_PAGE;
    for (let i = 0; i < n; i++) {
      if (!this.pages.has(first + i)) {
        throw new SimError('ERR_SIM_IOMMU', `${this.device}: unmap of IOVA 0x${((first + i) * IOMMU_PAGE).toString(16)}, which is not mapped`);
      }
    }
    for (let i = 0; i < n; i++) this.pages.delete(first + i);
    this.cachedPage = -1;
    this.mappings--;
  }

  /** Drop every mapping (device detached). */
  clear(): void {
    this.pages.clear();
    this.cachedPage = -1;
    this.mappings = 0;
  }

  /** The page-table entry for an IOVA page number (`physPage * 4 + perm`), or -1 when not present. */
  lookup(page: number): number {
    if (page === this.cachedPage) return this.cachedEntry;
    const e = this.pages.get(page);
    if (e === undefined) return -1;
    this.cachedPage = page;
    this.cachedEntry = e;
    return e;
  }
}
