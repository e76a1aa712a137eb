/**
 * The VFIO type1 IOMMU as a dma/ IommuBackend, over vfio-bindings' Container (after SET_IOMMU).
 *
 * info() is the kernel's VFIO_IOMMU_GET_INFO: page-size bitmap, IOVA ranges (CAP_IOVA_RANGE) and
 * DMA_AVAIL. A kernel that reports no ranges (before 5.4) gets a conservative default: below the
 * x86 MSI window and above it up to 39 bits, which every VT-d and AMD-Vi accepts.
 * map() needs memory with a process address (memfd memory, not heap memory).
 */
import type { Container } from 'vfio-bindings';
import type { DmaPerm } from '../drivers/contract/platform.js';
import type { IommuBackend, IommuInfo, IovaRange } from './backend.js';
import { DmaError } from './errors.js';
import type { DmaMemory } from './memory.js';

export const DEFAULT_IOVA_RANGES: readonly IovaRange[] = Object.freeze([
  { start: 0n, end: 0xfedfffffn },
  { start: 0xfef00000n, end: (1n << 39n) - 1n },
]);

export class VfioType1Backend implements IommuBackend {
  readonly name = 'vfio-type1';
  private readonly container: Container;

  constructor(container: Container) {
    this.container = container;
  }

  info(): IommuInfo {
    const i = this.container.info();
    return {
      pageSizes: i.pageSizeMask,
      ranges: i.iovaRanges && i.iovaRanges.length > 0 ? i.iovaRanges.map((r) => ({ start: r.start, end: r.end })) : DEFAULT_IOVA_RANGES,
      mappingsAvailable: i.dmaAvailable,
    };
  }

  map(memory: DmaMemory, offset: number, iova: bigint, size: number, perm: DmaPerm): void {
    if (memory.address === undefined) {
      throw new DmaError('ERR_DMA_MAP', `VFIO cannot map memory "${memory.label}": it has no process address (heap memory)`, {
        fix: 'allocate DMA memory for VFIO with the memfd provider (dma/memfd.ts)',
      });
    }
    this.container.map(memory.address + BigInt(offset), iova, size, { read: perm.read, write: perm.write });
  }

  unmap(iova: bigint, size: number): void {
    this.container.unmap(iova, size);
  }
}
