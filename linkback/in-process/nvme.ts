/**
 * An NVMe namespace (drivers/nvme's Promise block API) as a `BlockDevice`, so the NBD server can
 * export it. Thin on purpose: byte offsets become LBAs, capabilities come from Identify
 * Controller, and the driver's errors become errno kinds.
 *
 * - flush: VWC.present (NVMe 1.4 §5.15.2.2, Identify Controller byte 525 bit 0). Without a
 *   volatile write cache a completed write is already durable, so nothing is advertised.
 * - fua: true. Every NVM Write takes the FUA bit (NVMe 1.4 §6.15, CDW12 bit 30): a FUA write is one
 *   command, durable past a volatile cache when it completes.
 * - trim: ONCS bit 2, Dataset Management (§6.7, deallocate); writeZeroes: ONCS bit 3 (§6.16), with
 *   DEAC set unless the client asked for no holes.
 * - multiConn: true. Every connection reaches the same controller, whose cache (if any) is shared
 *   and whose Flush covers the whole namespace.
 *
 * Reads copy from the driver's slot buffers straight into the caller's array (Namespace.readTo); a zero-copy
 * path would need the server's reply buffers to live in a DMA window (Namespace.readInto).
 */
import type { Namespace, NvmeController } from '../../drivers/nvme/index.js';
import { ONCS_DSM, ONCS_WRITE_ZEROES } from '../../spec/nvme/identify.js';
import { CommandSpecificSc, GenericSc, Sct } from '../../spec/nvme/status.js';
import { BlockDeviceError, validateBlockDevice, type BlockCapabilities, type BlockDevice, type BlockErrorKind } from '../block-device.js';

/** The errno kind of an error thrown by drivers/nvme. */
export function nvmeErrorKind(err: unknown): BlockErrorKind {
  const e = err as { code?: unknown; sct?: unknown; sc?: unknown } | null;
  switch (e?.code) {
    case 'ERR_NVME_ARGUMENT':
      return 'EINVAL';
    case 'ERR_NVME_CLOSED':
      return 'ESHUTDOWN';
    case 'ERR_NVME_STATUS':
      if (e.sct === Sct.GENERIC && e.sc === GenericSc.LBA_OUT_OF_RANGE) return 'EINVAL';
      if (e.sct === Sct.GENERIC && e.sc === GenericSc.CAPACITY_EXCEEDED) return 'ENOSPC';
      if (e.sct === Sct.GENERIC && (e.sc === GenericSc.INVALID_COMMAND_OPCODE || e.sc === GenericSc.INVALID_FIELD)) return 'EINVAL';
      if (e.sct === Sct.GENERIC && e.sc === GenericSc.NAMESPACE_WRITE_PROTECTED) return 'EPERM';
      if (e.sct === Sct.COMMAND_SPECIFIC && e.sc === CommandSpecificSc.ATTEMPTED_WRITE_TO_READ_ONLY_RANGE) return 'EPERM';
      return 'EIO';
    default:
      return 'EIO'; // ERR_NVME_TIMEOUT, ERR_NVME_FATAL, a data transfer error, anything else
  }
}

function wrap(what: string, err: unknown): BlockDeviceError {
  const kind = nvmeErrorKind(err);
  return new BlockDeviceError(kind, `nvme ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

export interface NvmeBlockOptions {
  /** Serve the namespace read-only. */
  readOnly?: boolean;
}

export class NvmeBlockDevice implements BlockDevice {
  readonly size: number;
  readonly blockSize: number;
  readonly readOnly: boolean;
  readonly capabilities: BlockCapabilities;
  private readonly ns: Namespace;
  private readonly shift: number;

  constructor(controller: NvmeController, ns: Namespace, options: NvmeBlockOptions = {}) {
    this.ns = ns;
    this.blockSize = ns.blockSize;
    this.shift = ns.blockShift;
    this.size = ns.bytes;
    this.readOnly = options.readOnly ?? false;
    const id = controller.identify;
    this.capabilities = Object.freeze({
      flush: (id.vwc & 1) !== 0,
      fua: true,
      trim: (id.oncs & ONCS_DSM) !== 0,
      writeZeroes: (id.oncs & ONCS_WRITE_ZEROES) !== 0,
      multiConn: true,
    });
    validateBlockDevice(this, `NVMe namespace ${ns.nsid}`);
  }

  async read(offset: number, into: Uint8Array): Promise<void> {
    if (into.length === 0) return;
    const [lba, blocks] = this.lbas('read', offset, into.length);
    try {
      await this.ns.readTo(lba, blocks, into);
    } catch (e) {
      throw wrap(`read of ${into.length} bytes at ${offset}`, e);
    }
  }

  async write(offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    if (this.readOnly) throw new BlockDeviceError('EPERM', `NVMe namespace ${this.ns.nsid} is served read-only`);
    if (data.length === 0) return;
    const [lba] = this.lbas('write', offset, data.length);
    try {
      await this.ns.write(lba, data, { fua });
    } catch (e) {
      throw wrap(`write of ${data.length} bytes at ${offset}`, e);
    }
  }

  async flush(): Promise<void> {
    try {
      await this.ns.flush();
    } catch (e) {
      throw wrap('flush', e);
    }
  }

  async trim(offset: number, length: number, _fua: boolean): Promise<void> {
    if (this.readOnly) throw new BlockDeviceError('EPERM', `NVMe namespace ${this.ns.nsid} is served read-only`);
    if (length === 0) return;
    const [lba, blocks] = this.lbas('trim', offset, length);
    try {
      await this.ns.discard(lba, blocks);
    } catch (e) {
      throw wrap(`trim of ${length} bytes at ${offset}`, e);
    }
  }

  async writeZeroes(offset: number, length: number, _fua: boolean, noHole: boolean): Promise<void> {
    if (this.readOnly) throw new BlockDeviceError('EPERM', `NVMe namespace ${this.ns.nsid} is served read-only`);
    if (length === 0) return;
    const [lba, blocks] = this.lbas('write zeroes', offset, length);
    try {
      await this.ns.writeZeroes(lba, blocks, { deallocate: !noHole });
    } catch (e) {
      throw wrap(`write zeroes of ${length} bytes at ${offset}`, e);
    }
  }

  private lbas(what: string, offset: number, length: number): [number, number] {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % this.blockSize !== 0 || length % this.blockSize !== 0) {
      throw new BlockDeviceError(
        'EINVAL',
        `NVMe namespace ${this.ns.nsid}: ${what} of ${length} bytes at ${offset} is not aligned to its ${this.blockSize}-byte blocks`,
      );
    }
    if (offset + length > this.size) {
      throw new BlockDeviceError(
        what === 'write' || what === 'write zeroes' ? 'ENOSPC' : 'EINVAL',
        `NVMe namespace ${this.ns.nsid}: ${what} of ${length} bytes at ${offset} ends past the namespace (${this.size} bytes)`,
      );
    }
    return [Math.floor(offset / this.blockSize), length >>> this.shift];
  }
}
