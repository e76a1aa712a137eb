/**
 * A block device in memory, sparse: the export is cut into fixed chunks that are allocated on the
 * first write that touches them, so a 1 GiB export costs nothing until written. Unallocated chunks
 * read as zeroes; trim and write-zeroes release whole chunks. For tests and the demo.
 *
 * It knows its holes: `blockStatus` reports chunks never written as holes that read as zeroes.
 *
 * It has no cache, so flush and FUA are trivially honoured (they are still advertised, so clients
 * exercise those paths) and any number of connections may share it (multiConn).
 */
import {
  BlockDeviceError,
  BlockGeometryError,
  EXTENT_HOLE,
  EXTENT_ZERO,
  validateBlockDevice,
  type BlockCapabilities,
  type BlockCompletion,
  type BlockDevice,
  type ExtentList,
} from './block-device.js';

export interface MemoryBlockDeviceOptions {
  /** Size in bytes, a multiple of blockSize. */
  size: number;
  /** Logical block size (default 512). */
  blockSize?: number;
  readOnly?: boolean;
  /** Allocation granule in bytes, a power of two and a multiple of blockSize (default 64 KiB). */
  chunkSize?: number;
  /** Thin provisioning: writes that would allocate past this many bytes fail with ENOSPC (default: no limit). */
  maxAllocatedBytes?: number;
}

const RESOLVED: Promise<void> = Promise.resolve();
/** Chunks `blockStatus` looks at per call (4 GiB of 64 KiB chunks). */
const MAX_STATUS_CHUNKS = 65536;

/** What `walk` does to each piece of a range. */
const READ = 0,
  WRITE = 1,
  ZERO = 2,
  RELEASE = 3;
type Op = typeof READ | typeof WRITE | typeof ZERO | typeof RELEASE;

export class MemoryBlockDevice implements BlockDevice {
  readonly size: number;
  readonly blockSize: number;
  readonly readOnly: boolean;
  readonly capabilities: BlockCapabilities = Object.freeze({ flush: true, fua: true, trim: true, writeZeroes: true, multiConn: true, trimReadsZeroes: true });
  readonly chunkSize: number;
  private readonly maxAllocated: number;
  private readonly chunks = new Map<number, Uint8Array>();

  constructor(options: MemoryBlockDeviceOptions) {
    this.size = options.size;
    this.blockSize = options.blockSize ?? 512;
    this.readOnly = options.readOnly ?? false;
    this.chunkSize = options.chunkSize ?? 65536;
    this.maxAllocated = options.maxAllocatedBytes ?? Infinity;
    validateBlockDevice(this, 'memory block device');
    const c = this.chunkSize;
    if (!Number.isInteger(c) || c < this.blockSize || (c & (c - 1)) !== 0 || c > 1 << 30) {
      throw new BlockGeometryError(`memory block device: chunk size ${c} is not a power of two between the block size (${this.blockSize}) and 1 GiB`, {
        fix: 'use the default chunk size (65536) or another power of two',
      });
    }
  }

  /** Bytes of memory the written chunks hold. */
  get allocatedBytes(): number {
    return this.chunks.size * this.chunkSize;
  }

  read(offset: number, into: Uint8Array): Promise<void> {
    const bad = this.check(offset, into.length, false);
    if (bad) return bad;
    this.walk(READ, offset, into.length, into, 0);
    return RESOLVED;
  }

  write(offset: number, data: Uint8Array, _fua: boolean): Promise<void> {
    const bad = this.check(offset, data.length, true) ?? this.provision(offset, data.length, 'writing');
    if (bad) return bad;
    this.walk(WRITE, offset, data.length, data, 0);
    return RESOLVED;
  }

  /** `read` without a Promise: done at once, through `done`. */
  readTo(offset: number, into: Uint8Array, at: number, length: number, done: BlockCompletion): void {
    const bad = this.problem(offset, length, false) ?? this.arrayProblem(into, at, length);
    if (bad) return done.fail(bad);
    this.walk(READ, offset, length, into, at);
    done.complete();
  }

  /** `write` without a Promise: done at once, through `done`. */
  writeFrom(offset: number, data: Uint8Array, at: number, length: number, _fua: boolean, done: BlockCompletion): void {
    const bad = this.problem(offset, length, true) ?? this.arrayProblem(data, at, length) ?? this.provisionProblem(offset, length, 'writing');
    if (bad) return done.fail(bad);
    this.walk(WRITE, offset, length, data, at);
    done.complete();
  }

  flush(): Promise<void> {
    return RESOLVED;
  }

  trim(offset: number, length: number, _fua: boolean): Promise<void> {
    const bad = this.check(offset, length, true);
    if (bad) return bad;
    this.walk(RELEASE, offset, length, null, 0);
    return RESOLVED;
  }

  writeZeroes(offset: number, length: number, _fua: boolean, noHole: boolean): Promise<void> {
    // NO_HOLE keeps the range provisioned, as a write of zeroes would.
    const bad = this.check(offset, length, true) ?? (noHole ? this.provision(offset, length, 'zeroing without holes') : undefined);
    if (bad) return bad;
    this.walk(noHole ? ZERO : RELEASE, offset, length, null, 0);
    return RESOLVED;
  }

  /**
   * Chunks never written (or released whole) are holes that read as zeroes; written chunks are
   * data, even where they hold zeroes (the server's own map knows the ranges zeroed inside them).
   * Walks at most MAX_STATUS_CHUNKS chunks per call, so a huge query costs a bounded amount and
   * describes a prefix.
   */
  blockStatus(offset: number, length: number, out: ExtentList): void {
    const cs = this.chunkSize;
    const end = Math.min(offset + length, this.size);
    let pos = offset;
    for (let walked = 0; pos < end && walked < MAX_STATUS_CHUNKS; walked++) {
      const index = Math.floor(pos / cs);
      const to = Math.min((index + 1) * cs, end);
      if (!out.push(to - pos, this.chunks.has(index) ? 0 : EXTENT_HOLE | EXTENT_ZERO)) return;
      pos = to;
    }
  }

  /**
   * Allocate every chunk [offset, offset + length) touches, or, when that would pass the allocation
   * limit, change nothing and return the ENOSPC rejection (a thin device out of space fails before
   * writing anything).
   */
  private provision(offset: number, length: number, what: string): Promise<void> | undefined {
    const bad = this.provisionProblem(offset, length, what);
    return bad ? Promise.reject(bad) : undefined;
  }

  private provisionProblem(offset: number, length: number, what: string): BlockDeviceError | undefined {
    if (length === 0) return undefined;
    const cs = this.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    let missing = 0;
    for (let i = first; i <= last; i++) if (!this.chunks.has(i)) missing++;
    if ((this.chunks.size + missing) * cs > this.maxAllocated) {
      return new BlockDeviceError(
        'ENOSPC',
        `memory block device: ${what} ${length} bytes at ${offset} needs ${missing} more ${cs}-byte chunks, past the ${this.maxAllocated}-byte allocation limit`,
      );
    }
    for (let i = first; i <= last; i++) if (!this.chunks.has(i)) this.chunks.set(i, new Uint8Array(cs));
    return undefined;
  }

  /**
   * Do `op` on [offset, offset + length), chunk by chunk: READ into `buf` from `bufAt` on (zeroes
   * where nothing was written), WRITE from `buf` at `bufAt` (its chunks provisioned first), ZERO, or
   * RELEASE (whole chunks let go, partial ones zeroed).
   */
  private walk(op: Op, offset: number, length: number, buf: Uint8Array | null, bufAt: number): void {
    const cs = this.chunkSize;
    let pos = 0;
    while (pos < length) {
      const at = offset + pos;
      const index = Math.floor(at / cs);
      const within = at - index * cs;
      const n = Math.min(cs - within, length - pos);
      const chunk = this.chunks.get(index);
      if (op === READ) {
        if (chunk) buf!.set(chunk.subarray(within, within + n), bufAt + pos);
        else buf!.fill(0, bufAt + pos, bufAt + pos + n);
      } else if (op === WRITE) {
        chunk!.set(buf!.subarray(bufAt + pos, bufAt + pos + n), within);
      } else if (chunk) {
        if (n === cs && op === RELEASE) this.chunks.delete(index);
        else chunk.fill(0, within, within + n);
      }
      pos += n;
    }
  }

  private check(offset: number, length: number, writing: boolean): Promise<void> | undefined {
    const bad = this.problem(offset, length, writing);
    return bad ? Promise.reject(bad) : undefined;
  }

  private problem(offset: number, length: number, writing: boolean): BlockDeviceError | undefined {
    if (writing && this.readOnly) return new BlockDeviceError('EPERM', 'memory block device: the device is read-only');
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      return new BlockDeviceError(writing ? 'ENOSPC' : 'EINVAL', `memory block device: ${length} bytes at ${offset} is outside the ${this.size}-byte device`);
    }
    if (offset % this.blockSize !== 0 || length % this.blockSize !== 0) {
      return new BlockDeviceError('EINVAL', `memory block device: ${length} bytes at ${offset} is not aligned to the ${this.blockSize}-byte block size`);
    }
    return undefined;
  }

  /** `[at, at + length)` must lie inside `buf`. */
  private arrayProblem(buf: Uint8Array, at: number, length: number): BlockDeviceError | undefined {
    if (Number.isSafeInteger(at) && at >= 0 && at + length <= buf.length) return undefined;
    return new BlockDeviceError('EINVAL', `memory block device: ${length} bytes at index ${at} do not fit the caller's ${buf.length}-byte array`);
  }
}
