/**
 * One NBD export: a block device under a name, with the size constraints and transmission flags the
 * server advertises for it, and its counters.
 */
import { NbdError } from './errors.js';
import { AllocationMap, AllocationTracker } from '../allocation-map.js';
import { EXTENT_HOLE, EXTENT_ZERO, ExtentList, validateBlockDevice, type BlockDevice } from '../block-device.js';
import {
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_SEND_CACHE,
  NBD_FLAG_SEND_FAST_ZERO,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_MAX_STRING,
  NBD_PORTABLE_MAX_PAYLOAD,
} from './protocol.js';

export interface NbdExportOptions {
  /** The name clients ask for (UTF-8, no NUL, at most 4096 bytes; "" is allowed). */
  name: string;
  device: BlockDevice;
  /** Shown by `nbdinfo` and in NBD_OPT_LIST. */
  description?: string;
  /** Serve read-only even when the device is writable. */
  readOnly?: boolean;
  /** Largest read or write payload accepted, in bytes (default and cap: 32 MiB, §Size constraints). */
  maxPayload?: number;
  /** Preferred block size advertised (default: the larger of 4096 and the device block size). */
  preferredBlockSize?: number;
  /**
   * Ranges the export remembers as trimmed or zeroed, for block status and sparse reads (default
   * 4096, about 100 KiB; at most 2^20). When full, the smallest are forgotten (reported as data).
   */
  allocationMapRanges?: number;
}

/** Extents one block status reply or one sparse read describes at most. */
export const MAX_EXTENTS = 1024;

/** Where a connection finds the server's exports. */
export interface ExportDirectory {
  /** Find an export by the name a client sent ("" is the default export). */
  lookup(name: string): NbdExport | undefined;
  /** Every export, for NBD_OPT_LIST. */
  list(): Iterable<NbdExport>;
}

/** Counters of one export, for `dmabox status`: plain numbers, updated in place. */
export interface NbdExportStats {
  connectionsActive: number;
  connectionsTotal: number;
  reads: number;
  writes: number;
  flushes: number;
  trims: number;
  writeZeroes: number;
  caches: number;
  blockStatus: number;
  /** Requests of a type the server does not serve (answered EINVAL). */
  otherRequests: number;
  bytesRead: number;
  bytesWritten: number;
  /** Replies that carried an error, by NBD error name (EINVAL, EIO, ...). */
  errors: Record<string, number>;
  /** Requests the device itself failed (a subset of `errors`). */
  deviceErrors: number;
  /** Connections dropped for breaking the protocol in transmission. */
  protocolErrors: number;
}

export function emptyExportStats(): NbdExportStats {
  return {
    connectionsActive: 0,
    connectionsTotal: 0,
    reads: 0,
    writes: 0,
    flushes: 0,
    trims: 0,
    writeZeroes: 0,
    caches: 0,
    blockStatus: 0,
    otherRequests: 0,
    bytesRead: 0,
    bytesWritten: 0,
    errors: {},
    deviceErrors: 0,
    protocolErrors: 0,
  };
}

const utf8 = new TextEncoder();

export class NbdExport {
  readonly name: string;
  readonly nameBytes: Uint8Array;
  readonly description: string;
  /** The device serving new requests (replaceable: see `replaceDevice`). */
  device: BlockDevice;
  readonly size: number;
  readonly readOnly: boolean;
  /** §Size constraints: minimum block size = the device's logical block (alignment of every request). */
  readonly minBlockSize: number;
  readonly preferredBlockSize: number;
  readonly maxPayload: number;
  /** §Transmission flags, as advertised. */
  readonly flags: number;
  /** FUA is advertised but the device has none: the server follows each FUA write with a flush. */
  readonly fuaViaFlush: boolean;
  readonly stats: NbdExportStats = emptyExportStats();
  /** What was trimmed and zeroed through this export (every write to the device goes through it). */
  readonly allocation: AllocationTracker;
  /** Flags a successful trim leaves: a hole, and zeroes when the device says trimmed ranges read so. */
  readonly trimFlags: number;
  // Scratch lists for describe(): it is synchronous, so one set per export serves every connection.
  private readonly fromDevice = new ExtentList(MAX_EXTENTS);
  private readonly fromMap = new ExtentList(MAX_EXTENTS);

  constructor(options: NbdExportOptions) {
    const { name, device } = options;
    this.nameBytes = utf8.encode(name);
    if (this.nameBytes.length > NBD_MAX_STRING || name.includes('\0')) {
      throw new NbdError('ERR_NBD_EXPORT', `NBD export name ${JSON.stringify(name.slice(0, 40))} is longer than 4096 bytes or contains NUL`, {
        fix: 'use a short name of printable characters',
      });
    }
    validateBlockDevice(device, `NBD export ${JSON.stringify(name)}`);
    this.name = name;
    this.description = options.description ?? '';
    if (utf8.encode(this.description).length > NBD_MAX_STRING) {
      throw new NbdError('ERR_NBD_EXPORT', `NBD export ${JSON.stringify(name)}: description longer than 4096 bytes`, {
        fix: 'shorten the description (NBD_OPT_LIST and NBD_INFO_DESCRIPTION carry at most 4096 bytes)',
      });
    }
    this.device = device;
    this.size = device.size;
    this.readOnly = (options.readOnly ?? false) || device.readOnly;
    this.minBlockSize = device.blockSize;
    this.preferredBlockSize = options.preferredBlockSize ?? Math.max(4096, device.blockSize);
    this.maxPayload = options.maxPayload ?? NBD_PORTABLE_MAX_PAYLOAD;
    const p = this.preferredBlockSize;
    if (!Number.isInteger(p) || (p & (p - 1)) !== 0 || p < Math.max(512, this.minBlockSize) || p > 1 << 30) {
      throw new NbdError(
        'ERR_NBD_EXPORT',
        `NBD export ${JSON.stringify(name)}: preferred block size ${p} must be a power of two, at least 512 and at least the device block size (${this.minBlockSize})`,
        { fix: 'leave preferredBlockSize unset (4096)' },
      );
    }
    const m = this.maxPayload;
    if (!Number.isInteger(m) || m < p || m > NBD_PORTABLE_MAX_PAYLOAD || m % this.minBlockSize !== 0) {
      throw new NbdError(
        'ERR_NBD_EXPORT',
        `NBD export ${JSON.stringify(name)}: maximum payload ${m} must be a multiple of the block size between the preferred block size (${p}) and 32 MiB`,
        { fix: 'leave maxPayload unset (32 MiB)' },
      );
    }
    const r = options.allocationMapRanges ?? 4096;
    if (!Number.isInteger(r) || r < 1 || r > 1 << 20) {
      throw new NbdError('ERR_NBD_EXPORT', `NBD export ${JSON.stringify(name)}: allocationMapRanges ${r} must be an integer from 1 to 1048576`, {
        fix: 'leave allocationMapRanges unset (4096)',
      });
    }
    this.allocation = new AllocationTracker(new AllocationMap(r));
    const caps = device.capabilities;
    this.trimFlags = caps.trimReadsZeroes === true ? EXTENT_HOLE | EXTENT_ZERO : EXTENT_HOLE;
    let flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_CACHE;
    if (this.readOnly) flags |= NBD_FLAG_READ_ONLY;
    if (caps.flush) flags |= NBD_FLAG_SEND_FLUSH;
    if (caps.fua || caps.flush) flags |= NBD_FLAG_SEND_FUA;
    if (caps.trim && !this.readOnly) flags |= NBD_FLAG_SEND_TRIM;
    // Fast zero: the device zeroes without a data transfer, so a zeroing request is never slower
    // than the write it replaces.
    if (caps.writeZeroes && !this.readOnly) flags |= NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
    if (caps.multiConn) flags |= NBD_FLAG_CAN_MULTI_CONN;
    this.flags = flags;
    this.fuaViaFlush = !caps.fua && caps.flush;
  }

  /**
   * Serve later requests from another device, e.g. the same namespace through a restarted driver.
   * Connected clients were told the size, block sizes and flags, so the new device must match them
   * exactly. Requests already in flight complete on the old device.
   */
  replaceDevice(device: BlockDevice): void {
    validateBlockDevice(device, `NBD export ${JSON.stringify(this.name)}`);
    const old = this.device;
    const a = old.capabilities;
    const b = device.capabilities;
    const same =
      device.size === old.size &&
      device.blockSize === old.blockSize &&
      device.readOnly === old.readOnly &&
      a.flush === b.flush &&
      a.fua === b.fua &&
      a.trim === b.trim &&
      a.writeZeroes === b.writeZeroes &&
      a.multiConn === b.multiConn &&
      (a.trimReadsZeroes === true) === (b.trimReadsZeroes === true);
    if (!same) {
      throw new NbdError(
        'ERR_NBD_EXPORT',
        `NBD export ${JSON.stringify(this.name)}: the replacement device differs from the one clients were told about (size, block size, read-only or capabilities)`,
        { fix: 'serve a different device under a new export name, or reconnect the clients' },
      );
    }
    this.device = device;
  }

  /**
   * Describe [offset, offset + length) into `out` (emptied first): what the device knows
   * (`blockStatus`) and what this export saw trimmed and zeroed, together: a flag holds where
   * either source says so (each is only ever true). May describe less than the range, never
   * nothing when `length` > 0. Allocates nothing.
   */
  describe(offset: number, length: number, out: ExtentList): void {
    out.count = 0;
    const device = this.device;
    if (length <= 0) return;
    const m = this.fromMap;
    m.count = 0;
    this.allocation.map.describe(offset, length, m);
    if (device.blockStatus === undefined) {
      for (let i = 0; i < m.count; i++) if (!out.push(m.lengths[i]!, m.flags[i]!)) return;
      return;
    }
    const d = this.fromDevice;
    d.count = 0;
    device.blockStatus(offset, length, d);
    // Walk both lists at once; each output piece ends where either source's extent ends.
    let i = 0;
    let j = 0;
    let leftI = d.count > 0 ? d.lengths[0]! : 0;
    let leftJ = m.count > 0 ? m.lengths[0]! : 0;
    while (i < d.count && j < m.count) {
      const n = Math.min(leftI, leftJ);
      if (!out.push(n, (d.flags[i]! | m.flags[j]!) & (EXTENT_HOLE | EXTENT_ZERO))) return;
      leftI -= n;
      leftJ -= n;
      if (leftI === 0 && ++i < d.count) leftI = d.lengths[i]!;
      if (leftJ === 0 && ++j < m.count) leftJ = m.lengths[j]!;
    }
  }

  /** A copy of the counters. */
  snapshot(): NbdExportStats {
    return { ...this.stats, errors: { ...this.stats.errors } };
  }
}
