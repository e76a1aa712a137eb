/**
 * What the rings need from a packet buffer pool: fixed-size buffers in one DMA window, handed
 * out and taken back by index, with each buffer's IOVA computed rather than stored in objects.
 * `WindowPool` below implements it over one DmaWindow; the rings depend only on this shape.
 */
import type { DmaWindow } from '../platform.js';

export interface PacketPool {
  /** Number of buffers. */
  readonly count: number;
  /** Bytes per buffer. */
  readonly bufferSize: number;
  /** Buffers currently free. */
  readonly available: number;
  /** The CPU view of the whole window: buffer i starts at `offset(i)`. */
  readonly bytes: Uint8Array;
  /** Take a free buffer; -1 when none is left. */
  alloc(): number;
  /** Give buffer i back. */
  free(index: number): void;
  /** Byte offset of buffer i in `bytes`. */
  offset(index: number): number;
  /** Device address of buffer i as a number (exact: IOVAs are below 2^53). */
  iova(index: number): number;
}

/**
 * A PacketPool over one DMA window: `count` buffers of `bufferSize` bytes, a free stack of
 * indices (Uint32Array), IOVAs computed from the window's base. Double frees and foreign indices
 * throw: a driver bug must not hand the device one buffer twice.
 */
export class WindowPool implements PacketPool {
  readonly count: number;
  readonly bufferSize: number;
  readonly bytes: Uint8Array;
  readonly window: DmaWindow;
  private readonly base: number;
  private readonly stack: Uint32Array;
  /** 1 while buffer i is free: catches double frees without a Set. */
  private readonly isFree: Uint8Array;
  private top: number;

  constructor(window: DmaWindow, bufferSize: number) {
    if (!Number.isInteger(bufferSize) || bufferSize <= 0 || bufferSize % 16 !== 0) {
      throw new RangeError(`packet pool: buffer size ${bufferSize} must be a positive multiple of 16`);
    }
    const base = Number(window.iova);
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(base + window.size)) {
      throw new RangeError(`packet pool: window IOVA 0x${window.iova.toString(16)} is beyond 2^53`);
    }
    this.window = window;
    this.bytes = window.bytes;
    this.bufferSize = bufferSize;
    this.count = Math.floor(window.size / bufferSize);
    if (this.count === 0) throw new RangeError(`packet pool: a ${window.size}-byte window holds no ${bufferSize}-byte buffer`);
    this.base = base;
    this.stack = new Uint32Array(this.count);
    this.isFree = new Uint8Array(this.count).fill(1);
    for (let i = 0; i < this.count; i++) this.stack[i] = this.count - 1 - i;
    this.top = this.count;
  }

  get available(): number {
    return this.top;
  }

  alloc(): number {
    if (this.top === 0) return -1;
    const i = this.stack[--this.top]!;
    this.isFree[i] = 0;
    return i;
  }

  free(index: number): void {
    if (!(index >= 0 && index < this.count) || this.isFree[index] === 1) {
      throw new RangeError(`packet pool: free of buffer ${index}, which is ${index >= 0 && index < this.count ? 'already free' : 'not in this pool'}`);
    }
    this.isFree[index] = 1;
    this.stack[this.top++] = index;
  }

  offset(index: number): number {
    return index * this.bufferSize;
  }

  iova(index: number): number {
    return this.base + index * this.bufferSize;
  }
}
