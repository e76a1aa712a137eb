/**
 * The net service, the manager's side: a NIC served by a `kind: 'net'` driver. Its packet rings
 * and their kick and notify eventfds are made once (the NIC port, SandboxNicPort in net.ts) and
 * handed to every container: the port resets them at each container's exit, and a joined TAP
 * bridge carries on with the next container. No block ring, no block data areas.
 */
import { PARAM } from '../../abi/boot.js';
import { SandboxNicPort } from './net.js';
import type { Handout, ManagerService, ServiceHost, ServiceOptions } from './registry.js';

export class NetService implements ManagerService {
  readonly kind = 'net' as const;
  readonly port: SandboxNicPort;

  constructor(host: ServiceHost, options: ServiceOptions) {
    this.port = new SandboxNicPort(host, { sys: host.sys, ...(options.net ? { geometry: options.net } : {}) });
  }

  prepare(out: Handout): void {
    const f = this.port.containerFds();
    out.param(PARAM.NET_RING_FD, out.fd(f.ring));
    out.param(PARAM.NET_RING_BYTES, f.bytes);
    out.param(PARAM.NET_KICK_FD, out.fd(f.kick));
    out.param(PARAM.NET_NOTIFY_FD, out.fd(f.notify));
  }

  attach(): string {
    this.port.onReady();
    return 'serving the packet rings';
  }

  detach(): string {
    this.port.onExit();
    return '';
  }

  progress(): { pending: number; lastProgress: number } {
    return { pending: 0, lastProgress: 0 };
  }

  fail(): void {
    // Frames are best effort: nothing waits on the port.
  }

  close(): void {
    this.port.close();
  }

  status(): Record<string, unknown> {
    const p = this.port;
    return { net: { attached: p.isAttached, link: p.linkUp(), ...p.counters } };
  }
}
