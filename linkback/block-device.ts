/**
 * The block device a linkback server exports: the one interface between a disk driver (the NVMe
 * driver in its sandbox, a memory disk in tests) and the servers that plug it back into the host.
 *
 * Offsets and lengths are byte counts held in `number`: a block device of this project is far below
 * 2^53 bytes (8 PiB), so no bigint is needed and none is allocated on the I/O path. Every offset and
 * length a server passes is already checked against `size` and aligned to `blockSize`; an
 * implementation may still check again and must then fail with `BlockDeviceError('EINVAL')`.
 *
 * Completion means done: a write's promise resolves once the device has the data (readable by any
 * later read from any client), and, with `fua`, once it is durable. `flush()` makes every write
 * completed before the call durable. A device without a volatile write cache says so by leaving
 * `capabilities.flush` false: its completed writes are already durable.
 */
import { DmaboxError } from '../common/errors.js';

/**
 * The failure kinds a block device reports, named after the errno each stands for. The NBD server
 * maps them onto NBD's error values (proto.md §"Error values"): every kind here has an NBD twin
 * except EDQUOT and EFBIG, which NBD folds into ENOSPC, and ENOTSUP, which it reports as EINVAL
 * outside fast zeroing.
 */
export type BlockErrorKind =
  | 'EPERM' // not permitted (a write to a read-only device)
  | 'EIO' // the device failed the transfer (media error, controller timeout, DMA blocked)
  | 'ENOMEM' // the device (or its host) ran out of memory for this request
  | 'EINVAL' // the request itself is wrong (out of range, misaligned)
  | 'ENOSPC' // no space (a thin device out of backing, or past the end on a write)
  | 'EDQUOT' // a quota was exceeded (NBD: ENOSPC)
  | 'EFBIG' // the request would make the device too big (NBD: ENOSPC)
  | 'EOVERFLOW' // a length too large to handle in one request
  | 'ENOTSUP' // the operation is not supported by this device
  | 'ESHUTDOWN'; // the device is going away (driver stopping or restarting)

/** The code of each kind, spelled out so every code is a literal the documentation is checked against. */
const BLOCK_CODES = {
  EPERM: 'ERR_BLOCK_EPERM',
  EIO: 'ERR_BLOCK_EIO',
  ENOMEM: 'ERR_BLOCK_ENOMEM',
  EINVAL: 'ERR_BLOCK_EINVAL',
  ENOSPC: 'ERR_BLOCK_ENOSPC',
  EDQUOT: 'ERR_BLOCK_EDQUOT',
  EFBIG: 'ERR_BLOCK_EFBIG',
  EOVERFLOW: 'ERR_BLOCK_EOVERFLOW',
  ENOTSUP: 'ERR_BLOCK_ENOTSUP',
  ESHUTDOWN: 'ERR_BLOCK_ESHUTDOWN',
} as const satisfies Record<BlockErrorKind, string>;

/** The codes of failed block operations: `ERR_BLOCK_<KIND>`. */
export type BlockIoCode = (typeof BLOCK_CODES)[BlockErrorKind];

const KINDS: ReadonlySet<string> = new Set(Object.keys(BLOCK_CODES));

/** A failed block operation. `code` is `ERR_BLOCK_<KIND>`; `kind` is what a server maps to its protocol. */
export class BlockDeviceError extends DmaboxError<BlockIoCode> {
  readonly kind: BlockErrorKind;

  constructor(kind: BlockErrorKind, message: string, options: { cause?: unknown; fix?: string } = {}) {
    super(BLOCK_CODES[kind], message, options);
    this.kind = kind;
  }
}

/** A device whose shape cannot be served (block size, size, a memory device's chunk size): a start-up error, not an I/O one. */
export class BlockGeometryError extends DmaboxError<'ERR_BLOCK_GEOMETRY'> {
  constructor(message: string, options: { fix?: string } = {}) {
    super('ERR_BLOCK_GEOMETRY', message, options);
  }
}

/** The failure kind of anything a device threw: its own kind, or EIO for anything else. */
export function blockErrorKind(err: unknown): BlockErrorKind {
  if (err instanceof BlockDeviceError) return err.kind;
  const kind = (err as { kind?: unknown } | null)?.kind;
  return typeof kind === 'string' && KINDS.has(kind) ? (kind as BlockErrorKind) : 'EIO';
}

/** What a device can do beyond read and write. A server advertises exactly these, never more. */
export interface BlockCapabilities {
  /** The device has a volatile write cache and `flush()` empties it (NVMe: VWC present, Flush). */
  readonly flush: boolean;
  /** `write(..., fua = true)` completes only once the data is durable (NVMe: the FUA bit). */
  readonly fua: boolean;
  /** `trim()` may discard data (NVMe: Dataset Management, deallocate). */
  readonly trim: boolean;
  /** `writeZeroes()` zeroes a range without a data transfer (NVMe: Write Zeroes). */
  readonly writeZeroes: boolean;
  /**
   * Several users of this device see one another's completed writes, and a flush or FUA from any
   * of them covers writes completed through all of them: true for a device with one shared cache
   * or none (NBD: NBD_FLAG_CAN_MULTI_CONN).
   */
  readonly multiConn: boolean;
  /**
   * A trimmed range reads back as zeroes until written again (a memory disk that frees or zeroes
   * what is trimmed). Absent or false: a trimmed range reads as zeroes or as the old data, and is
   * only known to be a hole.
   */
  readonly trimReadsZeroes?: boolean;
}

// Status flags of an extent (the same bits as NBD's `base:allocation` context).
/** Not allocated: a write there may need new space (a thin device may fail it with ENOSPC). */
export const EXTENT_HOLE = 1;
/** Reads as all zeroes. */
export const EXTENT_ZERO = 2;

/**
 * A list of consecutive extents, filled by `describe`-style calls: `count` entries of `lengths[i]`
 * bytes with `flags[i]` (EXTENT_HOLE | EXTENT_ZERO, or 0 for data / not known), starting at the
 * offset asked about. Preallocated with a fixed capacity so that describing a range allocates
 * nothing; a filler stops at `max` extents (the rest of the range is then simply not described).
 */
export class ExtentList {
  count = 0;
  readonly max: number;
  readonly lengths: Float64Array;
  readonly flags: Uint8Array;

  constructor(max: number) {
    this.max = max;
    this.lengths = new Float64Array(max);
    this.flags = new Uint8Array(max);
  }

  /** Bytes the extents cover. */
  covered(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) n += this.lengths[i]!;
    return n;
  }

  /** Append `length` bytes of `flags`, merged into the last extent when its flags are the same. False when full. */
  push(length: number, flags: number): boolean {
    const c = this.count;
    if (c > 0 && this.flags[c - 1] === flags) {
      this.lengths[c - 1]! += length;
      return true;
    }
    if (c === this.max) return false;
    this.lengths[c] = length;
    this.flags[c] = flags;
    this.count = c + 1;
    return true;
  }
}

/**
 * How a device ends a `readTo` or `writeFrom`: exactly one call, `complete()` or `fail(err)`,
 * possibly before `readTo`/`writeFrom` returns (a device in memory). A server keeps one per request
 * slot and reuses it, so a request allocates neither a Promise nor a closure.
 */
export interface BlockCompletion {
  complete(): void;
  fail(err: unknown): void;
}

export interface BlockDevice {
  /** Size in bytes, a multiple of `blockSize`. */
  readonly size: number;
  /** The logical block size in bytes (a power of two, 1 to 65536): the alignment of every offset and length. */
  readonly blockSize: number;
  /** No write, trim or writeZeroes will succeed (they fail with EPERM). */
  readonly readOnly: boolean;
  readonly capabilities: BlockCapabilities;
  /** Fill `into` with `into.length` bytes starting at byte `offset`. */
  read(offset: number, into: Uint8Array): Promise<void>;
  /**
   * Optional, the allocation-free `read`: fill `into[at, at + length)` with the bytes at `offset`,
   * then end through `done` (a failure there too, never a throw). A server uses it when present.
   */
  readTo?(offset: number, into: Uint8Array, at: number, length: number, done: BlockCompletion): void;
  /** Optional, the allocation-free `write`: `data[at, at + length)` at `offset`, ended through `done`; `data` is not kept after. */
  writeFrom?(offset: number, data: Uint8Array, at: number, length: number, fua: boolean, done: BlockCompletion): void;
  /** Write `data` at byte `offset`; with `fua`, resolve only once it is durable. `data` is not kept after. */
  write(offset: number, data: Uint8Array, fua: boolean): Promise<void>;
  /** Make every write completed before this call durable. */
  flush(): Promise<void>;
  /** The range's contents are no longer needed; later reads return zeroes or the old data. */
  trim(offset: number, length: number, fua: boolean): Promise<void>;
  /** Zero the range. With `noHole`, keep it provisioned (a later write there cannot fail with ENOSPC). */
  writeZeroes(offset: number, length: number, fua: boolean, noHole: boolean): Promise<void>;
  /**
   * Optional: what the device itself knows of [offset, offset + length): fill `out` (reset to
   * empty by the caller) with extents from `offset` on, marking ranges known to be holes or to
   * read as zeroes, 0 elsewhere. It may describe less than the range (at least one extent when
   * `length` > 0). Synchronous and cheap: a server calls it on every block status query and on
   * reads. A device without it is described by what the server saw trimmed and zeroed.
   */
  blockStatus?(offset: number, length: number, out: ExtentList): void;
}

/**
 * Check the static shape of a device before serving it: a server calls this once per export so a
 * wrong driver fails at start-up with a clear message instead of corrupting offsets later.
 */
export function validateBlockDevice(dev: BlockDevice, label: string): void {
  const bs = dev.blockSize;
  if (!Number.isInteger(bs) || bs < 1 || bs > 65536 || (bs & (bs - 1)) !== 0) {
    throw new BlockGeometryError(`${label}: block size ${bs} is not a power of two between 1 and 65536`, {
      fix: "report the device's logical block size (NVMe: 2^LBADS of the formatted LBA format)",
    });
  }
  if (!Number.isSafeInteger(dev.size) || dev.size < 0 || dev.size % bs !== 0) {
    throw new BlockGeometryError(`${label}: size ${dev.size} is not a whole number of ${bs}-byte blocks below 2^53`, {
      fix: 'report the size as blocks * blockSize',
    });
  }
}
