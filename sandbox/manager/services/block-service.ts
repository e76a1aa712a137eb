/**
 * The block service, the manager's side: a disk served by a `kind: 'block'` driver.
 *
 * Made once per sandbox: the data areas (reserved at the start of the largest device-write-only
 * and device-read-only windows, so they outlive containers and a replayed write is copied in
 * again), the request client (SandboxBlockClient: Promises for callers, replay across restarts)
 * and, with a poll window, the hybrid poller of the ring (a simulated device's doorbells are polled
 * by its device process).
 * Made fresh for every container: the ring memfd and its request and completion eventfds, so
 * nothing a dead container wrote reaches the next one.
 */
import { EFD_CLOEXEC, EFD_NONBLOCK } from 'linux-sys';
import { PARAM } from '../../abi/boot.js';
import { dataAreaBytes, ringBytes, type RingGeometry } from '../../abi/block.js';
import { createShared, type Shared } from '../../abi/shm.js';
import { HybridPoller, type Pollable } from '../../abi/hybrid-poll.js';
import { SandboxBlockClient } from './block.js';
import type { Handout, ManagerService, ServiceHost, ServiceOptions } from './registry.js';

const DEFAULT_RING: RingGeometry = { entries: 16, slotBytes: 64 * 1024 };

export class BlockService implements ManagerService {
  readonly kind = 'block' as const;
  readonly client: SandboxBlockClient;
  /** Hybrid polling of the ring (hybrid-poll.ts); undefined without a poll window. */
  readonly poller: HybridPoller | undefined;
  private readonly pollIdleMs: number;
  /** Requests finished when progress was last seen, and when (the sandbox's clock). */
  private seenDone = -1;
  private seenAt = 0;
  /** The current container's ring and eventfds (made in prepare, released at detach). */
  private link: { shm: Shared; requestFd: number; completionFd: number } | undefined;

  constructor(
    private readonly host: ServiceHost,
    options: ServiceOptions,
  ) {
    const geometry = options.ring ?? DEFAULT_RING;
    const areas = host.device.reserveBlockData(dataAreaBytes(geometry));
    this.client = new SandboxBlockClient(geometry, { read: areas.read.bytes, write: areas.write.bytes });
    this.client.onViolation = (reason) => host.violation(`block ring: ${reason}`);
    this.pollIdleMs = options.pollIdleMs;
    if (options.pollIdleMs > 0) {
      const client = this.client;
      const one: Pollable[] = [client];
      const sys = host.sys;
      const poller = new HybridPoller({
        idleMs: options.pollIdleMs,
        yield: () => sys.schedYield(),
        queues: () => one,
      });
      this.poller = poller;
      client.onPost = () => poller.wake();
    }
  }

  prepare(out: Handout): void {
    this.release();
    const { sys, device } = this.host;
    const g = this.client.geometry;
    const shm = createShared(sys, `${this.host.name}-block`, ringBytes(g));
    this.client.initRing(shm);
    let requestFd = -1,
      completionFd: number;
    try {
      requestFd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      completionFd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    } catch (e) {
      shm.close();
      if (requestFd >= 0) sys.close(requestFd);
      throw e;
    }
    this.link = { shm, requestFd, completionFd };
    const areas = device.blockData!;
    out.param(PARAM.BLOCK_RING_FD, out.fd(shm.fd));
    out.param(PARAM.BLOCK_RING_BYTES, shm.size);
    out.param(PARAM.BLOCK_REQUEST_FD, out.fd(requestFd));
    out.param(PARAM.BLOCK_COMPLETION_FD, out.fd(completionFd));
    out.param(PARAM.BLOCK_DATA_READ_WINDOW, areas.readGrant);
    out.param(PARAM.BLOCK_DATA_WRITE_WINDOW, areas.writeGrant);
    out.param(PARAM.BLOCK_DATA_BYTES, areas.bytes);
  }

  attach(): string {
    const l = this.link!;
    this.client.attach({ sys: this.host.sys, shm: l.shm, requestFd: l.requestFd, completionFd: l.completionFd });
    this.seenDone = this.client.completed + this.client.errors;
    this.seenAt = this.host.clock.now();
    const c = this.client;
    return `serving ${c.blockCount} blocks of ${c.blockSize} bytes${c.pending > 0 ? `; ${c.pending} request(s) replayed` : ''}`;
  }

  detach(): string {
    const back = this.client.detach();
    this.release();
    return back > 0 ? `; ${back} request(s) in flight kept for replay` : '';
  }

  /** Progress as the sandbox's clock saw it: when the count of finished requests last moved (sampled at each call). */
  progress(): { pending: number; lastProgress: number } {
    const done = this.client.completed + this.client.errors;
    if (done !== this.seenDone) {
      this.seenDone = done;
      this.seenAt = this.host.clock.now();
    }
    return { pending: this.client.pending, lastProgress: this.seenAt };
  }

  fail(error: Error): void {
    this.client.fail(error);
  }

  close(): void {
    this.poller?.close();
    this.release();
  }

  status(): Record<string, unknown> {
    const c = this.client,
      p = this.poller;
    return {
      io: {
        completed: c.completed,
        errors: c.errors,
        bytes: c.bytes,
        pending: c.pending,
        replayed: c.replayed,
        // Eventfd kicks sent and left out (the other side was still taking, or polled).
        requestKicks: { sent: c.kicks, leftOut: c.kicksSaved },
        ...(p ? { poll: { windowMs: this.pollIdleMs, polling: p.polling, periods: p.periods, turns: p.turns } } : {}),
      },
    };
  }

  private release(): void {
    const l = this.link;
    if (!l) return;
    this.link = undefined;
    l.shm.close();
    this.host.sys.close(l.requestFd);
    this.host.sys.close(l.completionFd);
  }
}
