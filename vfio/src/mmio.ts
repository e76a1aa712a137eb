/**
 * Mmio: the only code in dmabox that touches a BAR. It has the shape of drivers/contract/platform.ts's
 * `RegisterSpace` (size, read32, write32, read64, write64) without importing it: this package
 * stands alone.
 *
 * Access rules (LAB-NOTES, "MMIO reads"):
 * - A read is exactly one 32-bit load, `Atomics.load` on a Uint32Array: V8 narrows a plain typed
 *   array load to a byte or half-word load when the value is only tested against a small mask, and
 *   a device register must see the access width the spec says. Atomics.load is never narrowed.
 * - A write is one plain 32-bit store (`u32[i] = v`); `Atomics.store` would be a locked xchg.
 * - A 64-bit register is two 32-bit accesses, the low dword (offset) first, then the high dword
 *   (offset + 4): the order NVMe 1.4 §3.1 asks for CAP, ASQ and ACQ. A device that needs another
 *   order gets two read32/write32 calls from its driver.
 * - Every offset is checked: inside the space and 4-byte aligned, else `MmioBoundsError`
 *   (ERR_MMIO_BOUNDS). The check and the access allocate nothing.
 * - koffi.view aborts above 4 GiB, so a space is made of segments of at most `SEGMENT_BYTES`
 *   (1 GiB). The first segment is the fast path; others and holes (sparse mmap) take a slow path.
 */
import { MmioBoundsError, VfioArgError, VfioCode, VfioError } from './errors.js';

/** The largest single view: 1 GiB. */
export const SEGMENT_BYTES = 2 ** 30;

/** A piece of the space backed by memory: `bytes` at `offset` within the space. */
export interface MmioSegment {
  offset: number;
  bytes: ArrayBuffer;
}

/** Accesses to parts of the space that are not mapped (e.g. around a sparse-mmap hole) go here. */
export interface MmioFallback {
  read32(offset: number): number;
  write32(offset: number, value: number): void;
}

interface Seg {
  start: number;
  end: number;
  u32: Uint32Array;
}

export class Mmio {
  readonly size: number;
  /** The first segment's words and its end: the fast path. */
  private w0: Uint32Array;
  private end0: number;
  /** `size - 4`: the last valid offset. */
  private readonly last: number;
  private segs: Seg[];
  private readonly fallback: MmioFallback | undefined;
  private readonly onClose: (() => void) | undefined;
  private closed = false;

  /**
   * @param size the register space size in bytes (a multiple of 4)
   * @param segments the mapped pieces, each at most SEGMENT_BYTES, 4-byte aligned, not overlapping
   * @param options fallback for unmapped offsets; onClose to unmap the memory behind the views
   */
  constructor(size: number, segments: MmioSegment[] | ArrayBuffer, options: { fallback?: MmioFallback; onClose?: () => void } = {}) {
    if (!Number.isSafeInteger(size) || size <= 0 || size % 4 !== 0)
      throw new VfioArgError(`register space size ${size} must be a positive multiple of 4`, 'Mmio');
    const list = segments instanceof ArrayBuffer ? [{ offset: 0, bytes: segments }] : segments;
    this.segs = list
      .map((s) => {
        if (s.offset % 4 !== 0 || s.bytes.byteLength % 4 !== 0 || s.bytes.byteLength > SEGMENT_BYTES) {
          throw new VfioArgError(
            `segment at ${s.offset} of ${s.bytes.byteLength} bytes: offset and length must be multiples of 4, length at most 1 GiB`,
            'Mmio',
          );
        }
        if (s.offset < 0 || s.offset + s.bytes.byteLength > size)
          throw new VfioArgError(`segment at ${s.offset} of ${s.bytes.byteLength} bytes lies outside the ${size}-byte space`, 'Mmio');
        return { start: s.offset, end: s.offset + s.bytes.byteLength, u32: new Uint32Array(s.bytes) };
      })
      .sort((a, b) => a.start - b.start);
    for (let i = 1; i < this.segs.length; i++) {
      if (this.segs[i]!.start < this.segs[i - 1]!.end) throw new VfioArgError('segments overlap', 'Mmio');
    }
    this.size = size;
    this.last = size - 4;
    const first = this.segs[0];
    if (first && first.start === 0) {
      this.w0 = first.u32;
      this.end0 = first.end;
    } else {
      this.w0 = new Uint32Array(0);
      this.end0 = 0;
    }
    this.fallback = options.fallback;
    this.onClose = options.onClose;
  }

  // Fast path test: `(offset & 0x3ffffffc) === offset` holds only for an integer, non-negative,
  // 4-byte-aligned offset below 1 GiB (NaN, fractions and negatives all fail it).

  /** One 32-bit read (Atomics.load: never narrowed). */
  read32(offset: number): number {
    if ((offset & 0x3ffffffc) === offset && offset < this.end0) return Atomics.load(this.w0, offset >>> 2);
    return this.slowRead(offset);
  }

  /** One plain 32-bit store. */
  write32(offset: number, value: number): void {
    if ((offset & 0x3ffffffc) === offset && offset < this.end0) {
      this.w0[offset >>> 2] = value;
      return;
    }
    this.slowWrite(offset, value);
  }

  /** Two 32-bit reads: low dword at `offset` first, then high at `offset + 4`. */
  read64(offset: number): bigint {
    this.check(offset, 8);
    const lo = this.read32(offset);
    const hi = this.read32(offset + 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** Two 32-bit writes: low dword first, then high. */
  write64(offset: number, value: bigint): void {
    this.check(offset, 8);
    this.write32(offset, Number(value & 0xffff_ffffn));
    this.write32(offset + 4, Number((value >> 32n) & 0xffff_ffffn));
  }

  /** Release the mapping behind the views (the device's BAR); later accesses throw ERR_VFIO_CLOSED. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Drop the views before the memory goes: an access after close must not touch unmapped pages.
    this.w0 = new Uint32Array(0);
    this.end0 = 0;
    this.segs = [];
    this.onClose?.();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private check(offset: number, width: number): void {
    // Rejects NaN, fractions, negatives, misalignment and the end of the space.
    if (!(offset >= 0 && offset <= this.size - width && offset % 4 === 0)) throw new MmioBoundsError(offset, this.size, width);
  }

  private find(offset: number): Seg | undefined {
    for (const s of this.segs) if (offset >= s.start && offset < s.end) return s;
    return undefined;
  }

  private slowRead(offset: number): number {
    if (this.closed) throw new VfioError(VfioCode.CLOSED, 'the register space is closed', { op: 'mmio read' });
    if (!(offset >= 0 && offset <= this.last && offset % 4 === 0)) throw new MmioBoundsError(offset, this.size, 4);
    const s = this.find(offset);
    if (s) return Atomics.load(s.u32, (offset - s.start) / 4);
    if (this.fallback && !this.closed) return this.fallback.read32(offset) >>> 0;
    throw new MmioBoundsError(offset, this.size, 4);
  }

  private slowWrite(offset: number, value: number): void {
    if (this.closed) throw new VfioError(VfioCode.CLOSED, 'the register space is closed', { op: 'mmio write' });
    if (!(offset >= 0 && offset <= this.last && offset % 4 === 0)) throw new MmioBoundsError(offset, this.size, 4);
    const s = this.find(offset);
    if (s) {
      s.u32[(offset - s.start) / 4] = value;
      return;
    }
    if (this.fallback) return this.fallback.write32(offset, value >>> 0);
    throw new MmioBoundsError(offset, this.size, 4);
  }
}
