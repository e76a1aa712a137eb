/**
 * The IOMMU behind a DMA allocator, as one small interface with two implementations:
 * VFIO type1 (dma/vfio-backend.ts, over vfio-bindings' Container) and the simulator
 * (sim/backend.ts, over one device's domain in the simulated IOMMU).
 */
import type { DmaPerm } from '../drivers/contract/platform.js';
import type { DmaMemory } from './memory.js';

/** An inclusive IOVA range, as VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE reports it. */
export interface IovaRange {
  readonly start: bigint;
  readonly end: bigint;
}

export interface IommuInfo {
  /** Bitmap of supported IOMMU page sizes (VFIO iova_pgsizes): bit n set = 2^n bytes. */
  readonly pageSizes: bigint;
  /** Usable IOVA ranges (holes such as the MSI window already removed). */
  readonly ranges: readonly IovaRange[];
  /** How many more mappings the container accepts (VFIO DMA_AVAIL cap), or undefined if not reported. */
  readonly mappingsAvailable: number | undefined;
}

export interface IommuBackend {
  /** `"vfio-type1"`, `"sim"`: for messages. */
  readonly name: string;
  info(): IommuInfo;
  /** Map `size` bytes of `memory` from `offset` at `iova` with the device permission `perm`. */
  map(memory: DmaMemory, offset: number, iova: bigint, size: number, perm: DmaPerm): void;
  /** Unmap exactly a range that `map` mapped. */
  unmap(iova: bigint, size: number): void;
  /**
   * Set only by an IOMMU in passthrough (identity) mode, where the device address IS the physical
   * address: the allocator then takes a window's IOVA from here instead of allocating one.
   */
  identityAddress?(memory: DmaMemory, offset: number): bigint;
}

/** The smallest page size in a VFIO page-size bitmap. */
export function minPageSize(pageSizes: bigint): number {
  if (pageSizes <= 0n) return 4096;
  let bit = 0n;
  while (((pageSizes >> bit) & 1n) === 0n) bit++;
  return Number(1n << bit);
}
