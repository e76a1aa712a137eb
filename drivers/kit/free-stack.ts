/**
 * A free stack of indices 0..capacity-1, in the manner of ixy's mempool: what every fixed set of
 * driver resources (pool buffers, PRP list slots, queue tracker slots) is handed out from. Two
 * typed arrays, preallocated: `take()` and `give()` allocate nothing and cost a few array accesses.
 *
 * `take()` on an empty stack returns -1 ("should wait": the caller decides). `give()` of an index
 * that is not out (given twice, or never taken, or not an index of this stack) throws
 * ERR_KIT_POOL_FREE: that is a driver bug that would otherwise hand one resource to two owners.
 * A fresh stack hands out the lowest index first (buffers in address order); after that, the
 * index given back last comes out first (cache-warm).
 */
import { KitError } from './errors.js';

export class FreeIndexStack {
  readonly capacity: number;
  /** What an index names, for error messages: `buffer`, `PRP list slot`, `queue 1 slot`. */
  private readonly what: string;
  private readonly stack: Uint32Array;
  /** 1 while an index is out (taken and not yet given back). */
  private readonly out: Uint8Array;
  private top: number;

  constructor(capacity: number, what: string) {
    if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > 0xffff_ffff) {
      throw new KitError('ERR_KIT_ARG', `free stack of ${what}s: capacity ${capacity} is not an integer from 1 to 2^32 - 1`);
    }
    this.capacity = capacity;
    this.what = what;
    this.stack = new Uint32Array(capacity);
    this.out = new Uint8Array(capacity);
    for (let i = 0; i < capacity; i++) this.stack[i] = capacity - 1 - i;
    this.top = capacity;
  }

  /** Indices that may be taken now. */
  get available(): number {
    return this.top;
  }

  /** A free index, or -1 when none is left. */
  take(): number {
    if (this.top === 0) return -1;
    const i = this.stack[--this.top]!;
    this.out[i] = 1;
    return i;
  }

  /** Give back an index that was taken. */
  give(index: number): void {
    if (this.out[index] !== 1) this.refuse(index);
    this.out[index] = 0;
    this.stack[this.top++] = index;
  }

  /** Whether `index` is out (taken and not given back). */
  isOut(index: number): boolean {
    return this.out[index] === 1;
  }

  private refuse(index: number): never {
    if (index >>> 0 !== index || index >= this.capacity) {
      throw new KitError('ERR_KIT_POOL_FREE', `${this.what} ${index}: not an index of this set (0..${this.capacity - 1})`, {
        fix: 'give back only an index that take() returned',
      });
    }
    throw new KitError('ERR_KIT_POOL_FREE', `${this.what} ${index} given back twice (it is not out)`, {
      fix: 'give each index back once, when the device has finished with it',
    });
  }
}
