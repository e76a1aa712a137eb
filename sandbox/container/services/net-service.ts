/**
 * The net service, the container's side: maps the packet rings and their kick and notify
 * eventfds, and serves the driver's NetDevice with the ring server (net.ts): one copy per frame,
 * between a ring slot and the driver's own buffer.
 */
import type { Sys } from 'linux-sys';
import type { NetDevice, NetServiceParams } from '../../../drivers/contract/net.js';
import { PARAM, type BootParams } from '../../abi/boot.js';
import type { Heartbeat } from '../../abi/hypercall/index.js';
import { mapShared, type Shared } from '../../abi/shm.js';
import { ContainerError } from '../errors.js';
import { NicServer } from './net.js';
import type { ContainerService } from './registry.js';

export class NetContainerService implements ContainerService {
  readonly kind = 'net' as const;
  readonly reserved: readonly { grant: number; bytes: number }[] = [];
  /** The packet rings as mapped here (a hostile test fixture writes into them). */
  readonly ring: Shared;
  readonly kickFd: number;
  readonly notifyFd: number;
  server: NicServer | undefined;
  private device: NetDevice | undefined;

  constructor(
    private readonly sys: Sys,
    params: BootParams,
  ) {
    this.ring = mapShared(sys, params.fd(PARAM.NET_RING_FD), params.int(PARAM.NET_RING_BYTES, 4096, 2 ** 30));
    this.kickFd = params.fd(PARAM.NET_KICK_FD);
    this.notifyFd = params.fd(PARAM.NET_NOTIFY_FD);
  }

  driverParams(): NetServiceParams {
    return {};
  }

  serve(device: unknown): void {
    const d = device as NetDevice | null;
    const ok =
      d &&
      typeof d === 'object' &&
      d.mac instanceof Uint8Array &&
      d.mac.length === 6 &&
      typeof d.link === 'function' &&
      typeof d.tx === 'function' &&
      typeof d.rx === 'function' &&
      typeof d.txAlloc === 'function' &&
      typeof d.waitRx === 'function' &&
      typeof d.close === 'function' &&
      typeof d.describe === 'function' &&
      d.txPool?.window?.bytes instanceof Uint8Array &&
      d.rxPool?.window?.bytes instanceof Uint8Array;
    if (!ok) {
      throw new ContainerError(
        'ERR_CONTAINER_DRIVER',
        "the net driver's start() returned no NetDevice (mac, link, txPool, rxPool, txAlloc, tx, rx, waitRx, describe, close)",
        { fix: 'return a device implementing drivers/contract/net.ts NetDevice' },
      );
    }
    this.device = d;
    this.server = new NicServer(this.sys, this.ring, this.kickFd, this.notifyFd, d);
    this.server.start();
  }

  describe(): string {
    const L = this.server!.layout;
    return `, packet rings ${L.txSlots}+${L.rxSlots} slots, one copy per frame in the container`;
  }

  heartbeat(): Heartbeat {
    const s = this.server!;
    return { completed: BigInt(s.frames), errors: BigInt(s.counters.badEntries), bytes: BigInt(s.counters.bytes), inflight: 0 };
  }

  async quiesce(): Promise<number> {
    await this.server?.stop();
    return 0;
  }

  async shutdown(): Promise<void> {
    await this.server?.stop();
    await this.device?.close();
  }
}
