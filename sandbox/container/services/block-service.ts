/**
 * The block service, the container's side: maps the ring the manager made for this container,
 * checks that the data areas lie in a device-write-only (read data) and a device-read-only
 * (write data) window, gives the driver their IOVAs, and serves the driver's BlockDevice with the
 * ring server (block.ts). A polling driver turns the event loop while I/O is in flight anyway, so
 * the ring is polled on the same turns and the manager's request kicks are left out.
 */
import type { Sys } from 'linux-sys';
import type { BlockDevice, BlockServiceParams } from '../../../drivers/contract/block.js';
import { PARAM, type BootParams } from '../../abi/boot.js';
import { FaultKind, type Heartbeat } from '../../abi/hypercall/index.js';
import { mapShared } from '../../abi/shm.js';
import type { GuestEndpoint } from '../hypercall/guest.js';
import type { Grant } from '../dma.js';
import { ContainerError } from '../errors.js';
import { BlockServer } from './block.js';
import type { ContainerService } from './registry.js';

const FAULT_KINDS = { dma: FaultKind.DMA, device: FaultKind.DEVICE, timeout: FaultKind.TIMEOUT, driver: FaultKind.DRIVER } as const;

export class BlockContainerService implements ContainerService {
  readonly kind = 'block' as const;
  readonly reserved: readonly { grant: number; bytes: number }[];
  readonly server: BlockServer;
  private readonly areas: BlockServiceParams['areas'];
  private device: BlockDevice | undefined;

  constructor(sys: Sys, params: BootParams, grants: readonly Grant[]) {
    const readGrant = params.int(PARAM.BLOCK_DATA_READ_WINDOW, 0, grants.length - 1);
    const writeGrant = params.int(PARAM.BLOCK_DATA_WRITE_WINDOW, 0, grants.length - 1);
    const bytes = params.int(PARAM.BLOCK_DATA_BYTES, 4096, 2 ** 40);
    const r = grants[readGrant]!,
      w = grants[writeGrant]!;
    if (!r.perm.write || r.perm.read || !w.perm.read || w.perm.write || r.size < bytes || w.size < bytes) {
      throw new ContainerError(
        'ERR_CONTAINER_WINDOWS',
        `the block data areas (windows ${readGrant} and ${writeGrant}, ${bytes} bytes each) are not in a device-write-only and a device-read-only window large enough`,
        {
          fix: 'the container and the manager must come from the same build',
        },
      );
    }
    this.reserved = [
      { grant: readGrant, bytes },
      { grant: writeGrant, bytes },
    ];
    const ring = mapShared(sys, params.fd(PARAM.BLOCK_RING_FD), params.int(PARAM.BLOCK_RING_BYTES, 4096, 2 ** 30));
    this.server = new BlockServer(sys, ring, params.fd(PARAM.BLOCK_REQUEST_FD), params.fd(PARAM.BLOCK_COMPLETION_FD), {
      pollWhileBusy: params.text(PARAM.DRIVER_INTERRUPTS) !== 'msix',
    });
    const g = this.server.geometry;
    if (g.entries * g.slotBytes > bytes) {
      throw new ContainerError('ERR_CONTAINER_WINDOWS', `the block ring's ${g.entries} slots of ${g.slotBytes} bytes do not fit data areas of ${bytes} bytes`, {
        fix: 'the container and the manager must come from the same build',
      });
    }
    this.areas = { entries: g.entries, slotBytes: g.slotBytes, read: r.iova, write: w.iova };
  }

  driverParams(): BlockServiceParams {
    return { areas: this.areas };
  }

  serve(device: unknown, guest: GuestEndpoint): void {
    const d = device as BlockDevice | null;
    const n = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) > 0;
    if (
      !d ||
      typeof d !== 'object' ||
      !n(d.blockSize) ||
      !n(d.blockCount) ||
      typeof d.read !== 'function' ||
      typeof d.write !== 'function' ||
      typeof d.flush !== 'function' ||
      typeof d.close !== 'function' ||
      typeof d.describe !== 'function'
    ) {
      throw new ContainerError(
        'ERR_CONTAINER_DRIVER',
        "the block driver's start() returned no BlockDevice (blockSize, blockCount, read, write, flush, describe, close)",
        { fix: 'return a device implementing drivers/contract/block.ts BlockDevice' },
      );
    }
    this.device = d;
    // What the driver says a failed request stands for goes to the manager as FAULT, next to its IOMMU log.
    this.server.onError = (e) => {
      const f = d.faultOf?.(e);
      if (f && f.kind in FAULT_KINDS) guest.fault({ kind: FAULT_KINDS[f.kind], code: f.code >>> 0, iova: BigInt.asUintN(64, BigInt(f.iova)) });
    };
    this.server.start(d);
  }

  describe(): string {
    return '';
  }

  heartbeat(): Heartbeat {
    const s = this.server;
    return { completed: s.completed, errors: s.errors, bytes: s.bytesMoved, inflight: s.inflight };
  }

  async quiesce(): Promise<number> {
    await this.server.quiesce();
    return this.server.inflight;
  }

  async shutdown(): Promise<void> {
    await this.server.quiesce();
    await this.device?.close();
  }
}
