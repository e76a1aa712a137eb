/**
 * One NBD export: a block device under a name, with the size constraints and transmission flags the
 * server advertises for it, and its counters.
 */
import { NbdError } from './errors.js';
import { validateBlockDevice, type BlockDevice } from '../block-device.js';
import {
  NBD_FLAG_CAN_MULTI_CONN,
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
}

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
    const caps = device.capabilities;
    let flags = NBD_FLAG_HAS_FLAGS;
    if (this.readOnly) flags |= NBD_FLAG_READ_ONLY;
    if (caps.flush) flags |= NBD_FLAG_SEND_FLUSH;
    if (caps.fua || caps.flush) flags |= NBD_FLAG_SEND_FUA;
    if (caps.trim && !this.readOnly) flags |= NBD_FLAG_SEND_TRIM;
    if (caps.writeZeroes && !this.readOnly) flags |= NBD_FLAG_SEND_WRITE_ZEROES;
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
      a.multiConn === b.multiConn;
    if (!same) {
      throw new NbdError(
        'ERR_NBD_EXPORT',
        `NBD export ${JSON.stringify(this.name)}: the replacement device differs from the one clients were told about (size, block size, read-only or capabilities)`,
        { fix: 'serve a different device under a new export name, or reconnect the clients' },
      );
    }
    this.device = device;
  }

  /** A copy of the counters. */
  snapshot(): NbdExportStats {
    return { ...this.stats, errors: { ...this.stats.errors } };
  }
}
