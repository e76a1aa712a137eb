/**
 * A block device in memory, sparse: the export is cut into fixed chunks that are allocated on the
 * first write that touches them, so a 1 GiB export costs nothing until written. Unallocated chunks
 * read as zeroes; trim and write-zeroes release whole chunks. For tests and the demo.
 *
 * It has no cache, so flush and FUA are trivially honoured (they are still advertised, so clients
 * exercise those paths) and any number of connections may share it (multiConn).
 */
import { BlockDeviceError, BlockGeometryError, validateBlockDevice, type BlockCapabilities, type BlockDevice } from './block-device.js';

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

export class MemoryBlockDevice implements BlockDevice {
  readonly size: number;
  readonly blockSize: number;
  readonly readOnly: boolean;
  readonly capabilities: BlockCapabilities = Object.freeze({ flush: true, fua: true, trim: true, writeZeroes: true, multiConn: true });
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
      throw new BlockGeometryError(`memory block device: chunk size ${c} is not a power of two between the block size (${this.blockSize}) and 1 GiB`,
        { fix: 'use the default chunk size (65536) or another power of two' });
    }
  }

  /** Bytes of memory the written chunks hold. */
  get allocatedBytes(): number {
    return this.chunks.size * this.chunkSize;
  }

  read(offset: number, into: Uint8Array): Promise<void> {
    const bad = this.check(offset, into.length, false);
    if (bad) return bad;
    const cs = this.chunkSize;
    let pos = 0;
    while (pos < into.length) {
      const at = offset + pos;
      const index = Math.floor(at / cs);
      const within = at - index * cs;
      const n = Math.min(cs - within, into.length - pos);
      const chunk = this.chunks.get(index);
      if (chunk) into.set(chunk.subarray(within, within + n), pos);
      else into.fill(0, pos, pos + n);
      pos += n;
    }
    return RESOLVED;
  }

  write(offset: number, data: Uint8Array, _fua: boolean): Promise<void> {
    const bad = this.check(offset, data.length, true);
    if (bad) return bad;
    const cs = this.chunkSize;
    // Allocate first, so a thin device out of space fails before changing anything.
    const first = Math.floor(offset / cs);
    const last = data.length === 0 ? first - 1 : Math.floor((offset + data.length - 1) / cs);
    let missing = 0;
    for (let i = first; i <= last; i++) if (!this.chunks.has(i)) missing++;
    if ((this.chunks.size + missing) * cs > this.maxAllocated) {
      return Promise.reject(new BlockDeviceError('ENOSPC', `memory block device: writing ${data.length} bytes at ${offset} needs ${missing} more ${cs}-byte chunks, past the ${this.maxAllocated}-byte allocation limit`));
    }
    let pos = 0;
    while (pos < data.length) {
      const at = offset + pos;
      const index = Math.floor(at / cs);
      const within = at - index * cs;
      const n = Math.min(cs - within, data.length - pos);
      let chunk = this.chunks.get(index);
      if (!chunk) {
        chunk = new Uint8Array(cs);
        this.chunks.set(index, chunk);
      }
      chunk.set(data.subarray(pos, pos + n), within);
      pos += n;
    }
    return RESOLVED;
  }

  flush(): Promise<void> {
    return RESOLVED;
  }

  trim(offset: number, length: number, _fua: boolean): Promise<void> {
    const bad = this.check(offset, length, true);
    if (bad) return bad;
    this.zero(offset, length, true);
    return RESOLVED;
  }

  writeZeroes(offset: number, length: number, _fua: boolean, noHole: boolean): Promise<void> {
    const bad = this.check(offset, length, true);
    if (bad) return bad;
    if (noHole) {
      // Keep the range provisioned: allocate what is missing, like a write of zeroes would.
      const cs = this.chunkSize;
      const first = Math.floor(offset / cs);
      const last = length === 0 ? first - 1 : Math.floor((offset + length - 1) / cs);
      let missing = 0;
      for (let i = first; i <= last; i++) if (!this.chunks.has(i)) missing++;
      if ((this.chunks.size + missing) * cs > this.maxAllocated) {
        return Promise.reject(new BlockDeviceError('ENOSPC', `memory block device: zeroing ${length} bytes at ${offset} without holes needs ${missing} more chunks, past the allocation limit`));
      }
      for (let i = first; i <= last; i++) if (!this.chunks.has(i)) this.chunks.set(i, new Uint8Array(cs));
    }
    this.zero(offset, length, !noHole);
    return RESOLVED;
  }

  /** Zero a range; whole chunks are released when `release`, partial ones are zero-filled. */
  private zero(offset: number, length: number, release: boolean): void {
    const cs = this.chunkSize;
    let pos = 0;
    while (pos < length) {
      const at = offset + pos;
      const index = Math.floor(at / cs);
      const within = at - index * cs;
      const n = Math.min(cs - within, length - pos);
      const chunk = this.chunks.get(index);
      if (chunk) {
        if (n === cs && release) this.chunks.delete(index);
        else chunk.fill(0, within, within + n);
      }
      pos += n;
    }
  }

  private check(offset: number, length: number, writing: boolean): Promise<void> | undefined {
    if (writing && this.readOnly) {
      return Promise.reject(new BlockDeviceError('EPERM', 'memory block device: the device is read-only'));
    }
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      return Promise.reject(new BlockDeviceError(writing ? 'ENOSPC' : 'EINVAL', `memory block device: ${length} bytes at ${offset} is outside the ${this.size}-byte device`));
    }
    if (offset % this.blockSize !== 0 || length % this.blockSize !== 0) {
      return Promise.reject(new BlockDeviceError('EINVAL', `memory block device: ${length} bytes at ${offset} is not aligned to the ${this.blockSize}-byte block size`));
    }
    return undefined;
  }
}
