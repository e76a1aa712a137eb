/**
 * What the rings need from a packet buffer pool: fixed-size buffers in one DMA window, handed
 * out and taken back by index, each buffer's IOVA computed rather than stored in objects.
 * drivers/kit/pool.ts's BufferPool (a free stack of indices) has this shape; the rings depend only on it,
 * so a test can hand them a pool of its own.
 */
import type { DmaWindow } from '../contract/platform.js';

export interface PacketPool {
  /** The window holding every buffer: buffer i starts at `window.bytes[offset(i)]`. */
  readonly window: DmaWindow;
  /** Number of buffers. */
  readonly count: number;
  /** Bytes per buffer. */
  readonly bufferSize: number;
  /** Buffers currently free. */
  readonly available: number;
  /** Take a free buffer; -1 when none is left. */
  alloc(): number;
  /** Give buffer i back (a double free throws). */
  free(index: number): void;
  /** Byte offset of buffer i in the window. */
  offset(index: number): number;
  /** Device address of buffer i as a number (exact: IOVAs are below 2^53). */
  iova(index: number): number;
}
