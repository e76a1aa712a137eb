/**
 * DMA memory providers: where the bytes behind a DMA window come from.
 *
 * Two implementations share one interface:
 * - `HeapMemoryProvider`: a plain ArrayBuffer, for in-process tests and the simulator. It has no
 *   fd and no virtual address, so it cannot be mapped by VFIO nor shared with another process.
 * - `MemfdMemoryProvider` (dma/memfd.ts): a memfd (MFD_HUGETLB when huge pages are free), mmapped,
 *   so the same pages can be handed to a driver process by fd and mapped by VFIO by address.
 */
import { DmaError } from './errors.js';

/** A block of DMA-able memory. `bytes` is the CPU view of all of it. */
export interface DmaMemory {
  /** Size in bytes (a multiple of `pageSize`). */
  readonly size: number;
  readonly bytes: Uint8Array;
  /** The page size backing the memory (4096, or 2 MiB for huge pages). */
  readonly pageSize: number;
  /** The memfd holding the pages, or -1 when the memory cannot be shared by fd. */
  readonly fd: number;
  /** The process virtual address of byte 0 (for VFIO MAP_DMA), or undefined for heap memory. */
  readonly address: bigint | undefined;
  /** What the memory is for, for fault reports. */
  readonly label: string;
  /** Unmap and close. The memory must no longer be mapped in any IOMMU. */
  release(): void;
}

export interface DmaMemoryOptions {
  /** Alignment of the CPU view, a power of two no larger than the provider's page size. */
  align?: number;
  label?: string;
}

export interface DmaMemoryProvider {
  readonly name: string;
  /** Allocate `size` bytes (rounded up to the provider's page size), zero-filled. */
  allocate(size: number, options?: DmaMemoryOptions): DmaMemory;
}

export const SMALL_PAGE = 4096;

export function checkSize(size: number, what: string): void {
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new DmaError('ERR_DMA_ARG', `${what}: size ${size} is not a positive integer number of bytes`, {
      fix: 'pass a byte count greater than 0',
    });
  }
}

export function roundUp(value: number, to: number): number {
  return Math.ceil(value / to) * to;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/** Plain ArrayBuffers: page-granular, zeroed, released by dropping the reference. */
export class HeapMemoryProvider implements DmaMemoryProvider {
  readonly name = 'heap';
  /** Bytes currently allocated and not released (for leak checks in tests). */
  allocated = 0;

  allocate(size: number, options: DmaMemoryOptions = {}): DmaMemory {
    checkSize(size, 'heap DMA memory');
    const align = options.align ?? SMALL_PAGE;
    if (!isPowerOfTwo(align) || align > SMALL_PAGE) {
      throw new DmaError('ERR_DMA_ARG', `heap DMA memory: alignment ${align} is not a power of two up to ${SMALL_PAGE}`, {
        fix: 'ask for an alignment of at most one page; IOVA alignment is separate (DmaAllocOptions.align)',
      });
    }
    const rounded = roundUp(size, SMALL_PAGE);
    this.allocated += rounded;
    let released = false;
    return {
      size: rounded,
      bytes: new Uint8Array(rounded),
      pageSize: SMALL_PAGE,
      fd: -1,
      address: undefined,
      label: options.label ?? 'heap',
      release: () => {
        if (released) return;
        released = true;
        this.allocated -= rounded;
      },
    };
  }
}
