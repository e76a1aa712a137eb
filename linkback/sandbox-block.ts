/**
 * A sandboxed NVMe driver as a `BlockDevice`: the NBD server's requests go to the supervisor's
 * `SandboxBlockClient` (sandbox/manager/services/block.ts), which posts them on the block ring of whichever
 * container is alive. The client keeps every request until it completes and replays those in flight
 * on the next container after a crash, so a restart is latency here, never an error: the export
 * keeps its device object across restarts (no `replaceDevice`).
 *
 * What the ring can carry decides the capabilities (sandbox/abi/block.ts: READ, WRITE, FLUSH):
 * - flush: true. The ring does not publish the controller's VWC bit, so a flush is always offered;
 *   it reaches the driver as an NVMe Flush, which is valid (and cheap) without a volatile cache.
 * - fua: what the container published in CAPS (NVMe: always; the FUA bit of Write, §6.15), so a
 *   FUA write is one command. Without it the NBD server follows a FUA write with a flush.
 * - trim, writeZeroes: what the container published in the ring's CAPS at its first READY (for
 *   NVMe, ONCS bits 2 and 3: Dataset Management, Write Zeroes); a restarted container must offer
 *   the same (client.ts). Write zeroes deallocates unless the client asked for no holes.
 * - multiConn: true. Every connection reaches one controller through one ring.
 *
 * Errors become errno kinds: the driver's I/O error `EIO`, a range or malformed request `EINVAL`
 * (`ENOSPC` for a write past the end), a failed sandbox `EIO` with the supervisor's reason, a
 * stopped one `ESHUTDOWN`.
 *
 * Reads: `SandboxBlockClient.readInto` copies the data from the ring's data area straight into
 * the server's buffer (one copy, no allocation per read).
 */
import type { SandboxBlockClient } from '../sandbox/manager/services/block.js';
import { BlockDeviceError, validateBlockDevice, type BlockCapabilities, type BlockDevice, type BlockErrorKind } from './block-device.js';

/** sandbox/abi/block.ts BlockStatus (a const enum there; the values are the ring's ABI). */
const STATUS_BAD_REQUEST = 1;
const STATUS_RANGE = 2;

/** The errno kind of an error from the sandbox's block client. */
export function sandboxErrorKind(err: unknown, write: boolean): BlockErrorKind {
  const e = err as { code?: unknown; status?: unknown } | null;
  switch (e?.code) {
    case 'ERR_SANDBOX_IO':
      if (e.status === STATUS_RANGE) return write ? 'ENOSPC' : 'EINVAL';
      if (e.status === STATUS_BAD_REQUEST) return 'EINVAL';
      return 'EIO';
    case 'ERR_SANDBOX_ARG':
      return 'EINVAL';
    case 'ERR_SANDBOX_UNSUPPORTED':
      return 'ENOTSUP';
    case 'ERR_SANDBOX_STOPPED':
      return 'ESHUTDOWN';
    default:
      return 'EIO'; // ERR_SANDBOX_FAILED (restart limit, IOMMU fault policy 'stop'), anything else
  }
}

export interface SandboxBlockOptions {
  /** Serve the device read-only. */
  readOnly?: boolean;
  /** Names the device in messages (the sandbox's policy name). */
  label?: string;
}

export class SandboxBlockDevice implements BlockDevice {
  readonly size: number;
  readonly blockSize: number;
  readonly readOnly: boolean;
  readonly capabilities: BlockCapabilities;
  private readonly label: string;
  private readonly shift: number;

  /**
   * `client` must have served once (a container said READY), so its geometry is known: build this
   * after `supervisor.start()` or `supervisor.ready()` resolved.
   */
  constructor(
    private readonly client: SandboxBlockClient,
    options: SandboxBlockOptions = {},
  ) {
    this.label = options.label ?? 'sandboxed device';
    if (client.blockSize === 0) {
      throw new BlockDeviceError('EINVAL', `${this.label}: the sandbox has not published its geometry yet`, {
        fix: 'export it after the sandbox is ready (await supervisor.ready())',
      });
    }
    this.blockSize = client.blockSize;
    this.shift = Math.log2(client.blockSize);
    this.size = client.blockCount * client.blockSize;
    this.readOnly = options.readOnly ?? false;
    this.capabilities = Object.freeze({ flush: true, fua: client.canFua, trim: client.canDiscard, writeZeroes: client.canWriteZeroes, multiConn: true });
    validateBlockDevice(this, this.label);
  }

  async read(offset: number, into: Uint8Array): Promise<void> {
    if (into.length === 0) return;
    const [lba, blocks] = this.lbas('read', offset, into.length);
    try {
      await this.client.readInto(lba, blocks, into);
    } catch (e) {
      throw this.wrap(`read of ${into.length} bytes at ${offset}`, e, false);
    }
  }

  async write(offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    if (this.readOnly) throw new BlockDeviceError('EPERM', `${this.label} is served read-only`);
    if (data.length === 0) return;
    const [lba] = this.lbas('write', offset, data.length);
    try {
      await this.client.write(lba, data, fua && this.capabilities.fua);
    } catch (e) {
      throw this.wrap(`write of ${data.length} bytes at ${offset}`, e, true);
    }
  }

  async flush(): Promise<void> {
    try {
      await this.client.flush();
    } catch (e) {
      throw this.wrap('flush', e, false);
    }
  }

  async trim(offset: number, length: number, _fua: boolean): Promise<void> {
    if (this.readOnly) throw new BlockDeviceError('EPERM', `${this.label} is served read-only`);
    if (!this.capabilities.trim) throw new BlockDeviceError('ENOTSUP', `${this.label}: the device does not deallocate (no trim)`);
    if (length === 0) return;
    const [lba, blocks] = this.lbas('trim', offset, length);
    try {
      await this.client.discard(lba, blocks);
    } catch (e) {
      throw this.wrap(`trim of ${length} bytes at ${offset}`, e, false);
    }
  }

  async writeZeroes(offset: number, length: number, _fua: boolean, noHole: boolean): Promise<void> {
    if (this.readOnly) throw new BlockDeviceError('EPERM', `${this.label} is served read-only`);
    if (!this.capabilities.writeZeroes) throw new BlockDeviceError('ENOTSUP', `${this.label}: the device cannot write zeroes`);
    if (length === 0) return;
    const [lba, blocks] = this.lbas('write zeroes', offset, length);
    try {
      await this.client.writeZeroes(lba, blocks, noHole);
    } catch (e) {
      throw this.wrap(`write zeroes of ${length} bytes at ${offset}`, e, true);
    }
  }

  private wrap(what: string, err: unknown, write: boolean): BlockDeviceError {
    return new BlockDeviceError(sandboxErrorKind(err, write), `${this.label}: ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }

  private lbas(what: string, offset: number, length: number): [number, number] {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % this.blockSize !== 0 || length % this.blockSize !== 0) {
      throw new BlockDeviceError('EINVAL', `${this.label}: ${what} of ${length} bytes at ${offset} is not aligned to its ${this.blockSize}-byte blocks`);
    }
    if (offset + length > this.size) {
      throw new BlockDeviceError(
        what === 'write' || what === 'write zeroes' ? 'ENOSPC' : 'EINVAL',
        `${this.label}: ${what} of ${length} bytes at ${offset} ends past the device (${this.size} bytes)`,
      );
    }
    return [Math.floor(offset / this.blockSize), length >>> this.shift];
  }
}
