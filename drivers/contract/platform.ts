/**
 * The platform interface: everything a driver may touch, and nothing more.
 *
 * Like rump's PCI host calls (map, confread/confwrite, irq_establish, dmalloc, virt_to_mach), this
 * is the one seam between driver code and whatever provides the device. Two implementations exist:
 * the simulator (`sim/`) and real VFIO (`vfio-bindings` plus `dma/`). A driver imports only from
 * this file and its own folder; it cannot tell the two apart, which is the point: the lab tests on
 * QEMU's devices keep the simulator honest.
 *
 * Nothing here can widen the driver's DMA reach: a driver asks for windows by size and device
 * permission, and gets IOVAs it did not choose.
 */

/** A device register space (a BAR). The only way drivers touch device registers. */
export interface RegisterSpace {
  /** Size of the space in bytes. Every access is bounds-checked against it. */
  readonly size: number;
  /** One 32-bit read at a 4-byte-aligned offset (never narrowed, never split). */
  read32(offset: number): number;
  /** One 32-bit write at a 4-byte-aligned offset. */
  write32(offset: number, value: number): void;
  /** A 64-bit register as two 32-bit reads: low dword first, then high (NVMe 1.4 §3.1: CAP, ASQ, ACQ). */
  read64(offset: number): bigint;
  /** A 64-bit register as two 32-bit writes: low dword first, then high. */
  write64(offset: number, value: bigint): void;
}

/** What the device may do to a DMA window. Least privilege: ask for exactly what the transfer needs. */
export interface DmaPerm {
  /** The device may read (the host writes, the device reads: NVMe SQs, TX buffers, write data). */
  readonly read: boolean;
  /** The device may write (NVMe CQs, RX buffers, read data). */
  readonly write: boolean;
}

export const DEVICE_READS: DmaPerm = Object.freeze({ read: true, write: false });
export const DEVICE_WRITES: DmaPerm = Object.freeze({ read: false, write: true });
export const DEVICE_READS_WRITES: DmaPerm = Object.freeze({ read: true, write: true });

/** A window of DMA memory: a CPU view and the IOVA at which the device sees it. */
export interface DmaWindow {
  /** The device-side address of byte 0 of the window. */
  readonly iova: bigint;
  /** Size in bytes (a multiple of the IOMMU page size). */
  readonly size: number;
  /** What the device may do to it. */
  readonly perm: DmaPerm;
  /** The CPU's view of the window: writes here are what the device reads. */
  readonly bytes: Uint8Array;
  /** A DataView over `bytes`, for little-endian fields. */
  readonly view: DataView;
}

export interface DmaAllocOptions {
  /** Alignment of the IOVA and of the CPU view, in bytes (a power of two; default: IOMMU page size). */
  align?: number;
  /** For debugging and fault reports: what the window is for (`"nvme admin sq"`). */
  label?: string;
}

/** The DMA memory the platform grants. */
export interface DmaAllocator {
  /** The smallest IOMMU page size: windows are sized and aligned to it. */
  readonly pageSize: number;
  /** Allocate and map a window. Throws a `DmaboxError` when the grant (policy, memlock, IOVA space) is exhausted. */
  alloc(size: number, perm: DmaPerm, options?: DmaAllocOptions): DmaWindow;
  /** Unmap and release a window. The device must no longer use it. */
  free(window: DmaWindow): void;
  /**
   * Bytes still to be had with exactly this permission, where the grant is fixed (a sandbox's
   * windows), so a driver can size its pools to it; absent where allocation is open-ended.
   */
  available?(perm: DmaPerm): number;
}

/** One interrupt vector routed to the driver. */
export interface IrqVector {
  readonly index: number;
  /** Called each time the vector fires (coalesced: one call may stand for several interrupts). */
  onFire(handler: () => void): void;
}

export type IrqKind = 'msix' | 'msi' | 'intx';

export interface Interrupts {
  /** How many vectors of each kind the device offers. */
  count(kind: IrqKind): number;
  /** Route vectors 0..n-1 of a kind to the driver. Replaces any earlier routing. */
  enable(kind: IrqKind, n: number): IrqVector[];
  /** Stop delivering interrupts. */
  disable(): void;
}

/** PCI configuration space access (offsets per PCI Local Bus 3.0 §6.1). */
export interface ConfigSpace {
  read8(offset: number): number;
  read16(offset: number): number;
  read32(offset: number): number;
  write16(offset: number, value: number): void;
  write32(offset: number, value: number): void;
}

/** The clock and the waits a driver may use; every hardware wait is bounded by the caller. */
export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Resolve after `ms` milliseconds (lets a simulated device make progress). */
  sleep(ms: number): Promise<void>;
  /**
   * A poll found nothing: let other threads have this CPU (sched_yield). Optional; given where the
   * driver shares its cores with whoever completes its work (a container beside its manager).
   */
  idle?(): void;
}

export interface Platform {
  /** `"sim:nvme0"`, `"vfio:0000:00:01.0"`: for logs and errors. */
  readonly name: string;
  readonly config: ConfigSpace;
  /** Map BAR `index` (memory BARs only). */
  bar(index: number): RegisterSpace;
  readonly dma: DmaAllocator;
  readonly irq: Interrupts;
  readonly clock: Clock;
  /** Function-level reset (VFIO_DEVICE_RESET; the simulator's FLR). */
  reset(): void;
  /** Release everything the platform gave the driver. */
  close(): void;
}
