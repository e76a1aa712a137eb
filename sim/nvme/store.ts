/**
 * Backing stores for a simulated NVMe namespace: bytes in memory, or a file (read and written in
 * place with positional I/O, so a disk image survives the process). Both expose byte-granular
 * read/write/zero; the model moves data between a store and host memory through the IOMMU.
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { SimError } from '../errors.js';

export interface BlockStore {
  readonly size: number;
  /** Memory stores expose their bytes so DMA can copy straight from/to them; file stores do not. */
  readonly bytes: Uint8Array | undefined;
  read(pos: number, dst: Uint8Array, off: number, len: number): void;
  write(pos: number, src: Uint8Array, off: number, len: number): void;
  /** Zero a range (Write Zeroes, deallocate). */
  zero(pos: number, len: number): void;
  close(): void;
}

export class MemoryStore implements BlockStore {
  readonly size: number;
  readonly bytes: Uint8Array;
  /** `size` bytes of its own, or over `bytes` someone else holds (a mapped memfd: the device process's namespace). */
  constructor(size: number | Uint8Array) {
    const n = typeof size === 'number' ? size : size.length;
    if (!Number.isSafeInteger(n) || n <= 0 || n > 2 ** 32) {
      throw new SimError('ERR_SIM_ARG', `memory store of ${n} bytes: must be 1 byte to 4 GiB`, { fix: 'use a FileStore for larger namespaces' });
    }
    this.size = n;
    this.bytes = typeof size === 'number' ? new Uint8Array(n) : size;
  }
  read(pos: number, dst: Uint8Array, off: number, len: number): void {
    dst.set(this.bytes.subarray(pos, pos + len), off);
  }
  write(pos: number, src: Uint8Array, off: number, len: number): void {
    this.bytes.set(src.subarray(off, off + len), pos);
  }
  zero(pos: number, len: number): void {
    this.bytes.fill(0, pos, pos + len);
  }
  close(): void {}
}

export class FileStore implements BlockStore {
  readonly size: number;
  readonly bytes = undefined;
  private fd: number;
  private readonly zeros = new Uint8Array(64 * 1024);

  /** Open (or create, sized `size`) a disk image at `path`. */
  constructor(path: string, size: number) {
    this.fd = openSync(path, 'a+');
    closeSync(this.fd);
    this.fd = openSync(path, 'r+');
    const have = fstatSync(this.fd).size;
    if (have < size) ftruncateSync(this.fd, size);
    this.size = size;
  }
  read(pos: number, dst: Uint8Array, off: number, len: number): void {
    let done = 0;
    while (done < len) {
      const n = readSync(this.fd, dst, off + done, len - done, pos + done);
      if (n === 0) {
        dst.fill(0, off + done, off + len);
        return;
      }
      done += n;
    }
  }
  write(pos: number, src: Uint8Array, off: number, len: number): void {
    let done = 0;
    while (done < len) done += writeSync(this.fd, src, off + done, len - done, pos + done);
  }
  zero(pos: number, len: number): void {
    for (let done = 0; done < len;) {
      const n = Math.min(this.zeros.length, len - done);
      this.write(pos + done, this.zeros, 0, n);
      done += n;
    }
  }
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
