/**
 * IOVA allocation inside the ranges the IOMMU reports.
 *
 * VFIO reports usable IOVA ranges (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) with holes such as the
 * x86 MSI window (0xfee00000..0xfeefffff) already cut out, and the top of the last range follows the
 * IOMMU's address width (39 bits on QEMU's VT-d and many real ones: IOVA = virtual address does not
 * work there). This allocator hands out page-aligned IOVAs only inside those ranges, optionally
 * clamped to an address width, never the page at IOVA 0 (a zeroed descriptor must not point at
 * valid memory), first fit from the bottom, and merges freed neighbours back into one free range
 * so long-running drivers do not fragment the space.
 *
 * Not a hot path (windows are set up once): bigint throughout.
 */
import type { IovaRange } from './backend.js';
import { DmaError } from './errors.js';

interface Span {
  start: bigint;
  /** Exclusive. */
  end: bigint;
}

export interface IovaAllocatorOptions {
  /** The IOMMU page size: IOVAs and sizes are multiples of it. */
  pageSize: number;
  /** Clamp to IOVAs below 2^addressWidth (e.g. 39 for VT-d with 3-level tables). */
  addressWidth?: number;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

export class IovaAllocator {
  readonly pageSize: number;
  /** The usable spans after clamping (exclusive ends), sorted. */
  readonly spans: readonly Span[];
  private free: Span[];
  /** Bytes handed out and not released. */
  allocated = 0n;

  constructor(ranges: readonly IovaRange[], options: IovaAllocatorOptions) {
    const page = options.pageSize;
    if (!Number.isSafeInteger(page) || page < 4096 || 2 ** Math.round(Math.log2(page)) !== page) {
      throw new DmaError('ERR_DMA_ARG', `IOVA allocator: page size ${page} is not a power of two >= 4096`);
    }
    this.pageSize = page;
    const P = BigInt(page);
    const top = options.addressWidth !== undefined ? 1n << BigInt(options.addressWidth) : undefined;
    const spans: Span[] = [];
    for (const r of ranges) {
      if (r.end < r.start) throw new DmaError('ERR_DMA_ARG', `IOVA range ${hex(r.start)}..${hex(r.end)} ends before it starts`);
      let start = r.start < P ? P : r.start;
      let end = r.end + 1n;
      if (top !== undefined && end > top) end = top;
      start = ((start + P - 1n) / P) * P;
      end = (end / P) * P;
      if (end > start) spans.push({ start, end });
    }
    spans.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (let i = 1; i < spans.length; i++) {
      if (spans[i]!.start < spans[i - 1]!.end) throw new DmaError('ERR_DMA_ARG', `IOVA ranges overlap at ${hex(spans[i]!.start)}`);
    }
    if (spans.length === 0) {
      throw new DmaError('ERR_DMA_ARG', 'IOVA allocator: no usable IOVA range (after removing page 0 and clamping to the address width)', {
        fix: 'check the ranges the IOMMU reports (VFIO_IOMMU_GET_INFO) and the address width',
      });
    }
    this.spans = spans.map((s) => ({ ...s }));
    this.free = spans.map((s) => ({ ...s }));
  }

  /** Total free bytes. */
  get freeBytes(): bigint {
    let n = 0n;
    for (const s of this.free) n += s.end - s.start;
    return n;
  }

  /** The largest free run, in bytes. */
  get largestFree(): bigint {
    let n = 0n;
    for (const s of this.free) if (s.end - s.start > n) n = s.end - s.start;
    return n;
  }

  /** Number of separate free runs (1 after everything is released: freed neighbours merge). */
  get freeRuns(): number {
    return this.free.length;
  }

  /** Allocate `size` bytes (rounded up to the page size) at an IOVA aligned to `align` (default: page size). */
  alloc(size: number, align = this.pageSize): bigint {
    if (!Number.isSafeInteger(size) || size <= 0) throw new DmaError('ERR_DMA_ARG', `IOVA allocation: size ${size} is not a positive integer`);
    if (!Number.isSafeInteger(align) || align <= 0 || 2 ** Math.round(Math.log2(align)) !== align) {
      throw new DmaError('ERR_DMA_ARG', `IOVA allocation: alignment ${align} is not a power of two`);
    }
    const P = BigInt(this.pageSize);
    const len = ((BigInt(size) + P - 1n) / P) * P;
    const A = BigInt(Math.max(align, this.pageSize));
    for (let i = 0; i < this.free.length; i++) {
      const s = this.free[i]!;
      const at = ((s.start + A - 1n) / A) * A;
      if (at + len > s.end) continue;
      const pieces: Span[] = [];
      if (at > s.start) pieces.push({ start: s.start, end: at });
      if (at + len < s.end) pieces.push({ start: at + len, end: s.end });
      this.free.splice(i, 1, ...pieces);
      this.allocated += len;
      return at;
    }
    throw new DmaError(
      'ERR_DMA_IOVA_EXHAUSTED',
      `no free IOVA run of ${len} bytes aligned to ${A} (free: ${this.freeBytes} bytes, largest run ${this.largestFree})`,
      {
        fix: 'free windows no longer in use, ask for smaller windows, or use a buffer pool inside one window',
      },
    );
  }

  /** Give back a range `alloc` returned (same size). Freed neighbours merge. */
  release(iova: bigint, size: number): void {
    const P = BigInt(this.pageSize);
    const len = ((BigInt(size) + P - 1n) / P) * P;
    const end = iova + len;
    if (iova % P !== 0n || !this.spans.some((s) => iova >= s.start && end <= s.end)) {
      throw new DmaError('ERR_DMA_ARG', `IOVA release ${hex(iova)} +${len}: not a page-aligned range this allocator owns`);
    }
    let i = 0;
    while (i < this.free.length && this.free[i]!.start < iova) i++;
    const prev = this.free[i - 1],
      next = this.free[i];
    if ((prev !== undefined && prev.end > iova) || (next !== undefined && next.start < end)) {
      throw new DmaError('ERR_DMA_ARG', `IOVA release ${hex(iova)} +${len}: part of it is already free (released twice?)`);
    }
    const mergePrev = prev !== undefined && prev.end === iova;
    const mergeNext = next !== undefined && next.start === end;
    if (mergePrev && mergeNext) {
      prev.end = next.end;
      this.free.splice(i, 1);
    } else if (mergePrev) {
      prev.end = end;
    } else if (mergeNext) {
      next.start = iova;
    } else {
      this.free.splice(i, 0, { start: iova, end });
    }
    this.allocated -= len;
  }
}
