/**
 * A buffer pool: fixed-size buffers inside one DMA window, handed out by index from a free stack
 * (free-stack.ts), in the manner of ixy's mempool. Nothing is allocated on the hot path: a buffer
 * is its index, and its offset and IOVA are computed (`offset(i) = base + i * size`), never stored
 * in objects. One window means one IOMMU mapping for thousands of buffers.
 *
 * Empty pool: `alloc()` returns -1 ("should wait", the caller decides), it does not throw.
 * Freeing a buffer twice, or an index the pool never had, throws ERR_KIT_POOL_FREE: that is a
 * driver bug that would otherwise hand one buffer to two owners.
 */
import type { DmaWindow } from '../contract/platform.js';
import { KitError } from './errors.js';
import { FreeIndexStack } from './free-stack.js';

export interface BufferPoolOptions {
  /** Bytes of the window before the first buffer (default 0). */
  offset?: number;
  /** Number of buffers (default: as many as fit). */
  count?: number;
}

export class BufferPool {
  readonly window: DmaWindow;
  readonly bufferSize: number;
  readonly count: number;
  readonly base: number;
  /** The window's IOVA as a number (exact below 2^53), so per-buffer IOVAs need no bigint. */
  private readonly iovaBase: number;
  private readonly freeBuffers: FreeIndexStack;

  constructor(window: DmaWindow, bufferSize: number, options: BufferPoolOptions = {}) {
    const base = options.offset ?? 0;
    if (!Number.isSafeInteger(bufferSize) || bufferSize <= 0) {
      throw new KitError('ERR_KIT_ARG', `buffer pool: buffer size ${bufferSize} is not a positive integer`);
    }
    if (!Number.isSafeInteger(base) || base < 0 || base >= window.size) {
      throw new KitError('ERR_KIT_ARG', `buffer pool: offset ${base} is outside the ${window.size}-byte window`);
    }
    const fit = Math.floor((window.size - base) / bufferSize);
    const count = options.count ?? fit;
    if (!Number.isSafeInteger(count) || count < 1 || count > fit) {
      throw new KitError('ERR_KIT_ARG', `buffer pool: ${count} buffers of ${bufferSize} bytes do not fit (room for ${fit})`, {
        fix: 'allocate a larger window or ask for fewer buffers',
      });
    }
    if (window.iova + BigInt(window.size) > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new KitError('ERR_KIT_ARG', `buffer pool: window IOVA 0x${window.iova.toString(16)} is above 2^53`);
    }
    this.window = window;
    this.bufferSize = bufferSize;
    this.count = count;
    this.base = base;
    this.iovaBase = Number(window.iova) + base;
    // A fresh stack hands out the lowest index first: buffers come out in address order.
    this.freeBuffers = new FreeIndexStack(count, 'buffer');
  }

  /** Free buffers. */
  get available(): number {
    return this.freeBuffers.available;
  }

  /** A free buffer's index, or -1 when none is free. */
  alloc(): number {
    return this.freeBuffers.take();
  }

  /** Like alloc, but an empty pool is an error (setup code, not hot paths). */
  allocOrThrow(): number {
    const i = this.alloc();
    if (i < 0) {
      throw new KitError('ERR_KIT_POOL_EXHAUSTED', `buffer pool of ${this.count} x ${this.bufferSize} bytes is empty`, {
        fix: 'free buffers when the device is done with them, or make the pool larger',
      });
    }
    return i;
  }

  /** Give buffer `index` back; freeing it twice, or an index the pool does not have, throws ERR_KIT_POOL_FREE. */
  free(index: number): void {
    this.freeBuffers.give(index);
  }

  /** Whether a buffer is handed out. */
  isAllocated(index: number): boolean {
    return this.freeBuffers.isOut(index);
  }

  /** Byte offset of buffer `index` in the window. */
  offset(index: number): number {
    return this.base + index * this.bufferSize;
  }

  /** Device address of buffer `index` as a number (exact below 2^53, checked at construction). */
  iova(index: number): number {
    return this.iovaBase + index * this.bufferSize;
  }

  /** Device address of buffer `index` as a bigint (allocates: not for hot paths). */
  iovaBig(index: number): bigint {
    return BigInt(this.iova(index));
  }

  /** Write buffer `index`'s IOVA as a little-endian 64-bit field (a descriptor's buffer address) without a bigint. */
  writeIova(view: DataView, at: number, index: number): void {
    const a = this.iovaBase + index * this.bufferSize;
    view.setUint32(at, a % 0x1_0000_0000, true);
    view.setUint32(at + 4, Math.floor(a / 0x1_0000_0000), true);
  }

  /** The CPU view of buffer `index` (allocates a subarray: for setup and tests). */
  bytes(index: number): Uint8Array {
    const o = this.offset(index);
    return this.window.bytes.subarray(o, o + this.bufferSize);
  }
}
