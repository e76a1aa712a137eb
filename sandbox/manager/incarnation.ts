/**
 * One container process of a sandbox, from spawn to exit: the shared memory and eventfds made for
 * it, the child itself (its own uid and gid when the manager is root), its hypercall endpoint and
 * register mailbox. The supervisor makes a fresh incarnation for every (re)start; the device and
 * its windows outlive incarnations.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import { EFD_CLOEXEC, EFD_NONBLOCK, type Sys } from 'linux-sys';
import { HcStatus, LogLevel, type FaultReport, type Heartbeat, type HypercallError } from '../abi/hypercall/index.js';
import { HostEndpoint } from './hypercall/host.js';
import { createShared, type Shared } from '../abi/shm.js';
import { HostMailbox } from './mailbox.js';
import { MAILBOX_BYTES, initMailbox } from '../abi/mailbox.js';
import { ringBytes } from '../abi/block.js';
import type { SandboxBlockClient } from './services/block.js';
import { BOOT_FDS, FIRST_DYNAMIC_FD, type ContainerBoot } from '../abi/boot.js';
import type { SandboxDevice } from './device.js';
import { SimDevice } from './sim-device.js';
import type { Policy } from '../../policies/types.js';

/** The container entrypoint next to this module (main.ts under tsx, main.js when built). */
export function defaultEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`../container/main${extname(here)}`, import.meta.url));
}

export interface IncarnationHooks {
  log(level: LogLevel, text: string): void;
  heartbeat(h: Heartbeat): void;
  fault(f: FaultReport): void;
  ready(): void;
  /** A hypercall or ring violation; `kill` when the container must go. */
  violation(reason: string, kill: boolean): void;
  exit(code: number | null, signal: NodeJS.Signals | null): void;
}

/**
 * Shared memory and eventfds a service hands to every container of a device, e.g. a NIC's packet
 * rings (sandbox/net): appended after the interrupt eventfds; the container finds them in
 * `boot.attachments[name]` (first fd slot, fd count, bytes of the first fd's memory).
 */
export interface ContainerAttachment {
  name: string;
  fds: number[];
  bytes: number;
}
const attachments = new WeakMap<SandboxDevice, ContainerAttachment[]>();

/** Hand `a` to every container spawned for `device` from now on. */
export function attachToContainers(device: SandboxDevice, a: ContainerAttachment): void {
  const list = attachments.get(device) ?? [];
  if (list.some((x) => x.name === a.name)) throw new Error(`container attachment '${a.name}' is already registered for ${device.description}`);
  list.push(a);
  attachments.set(device, list);
}

export interface IncarnationOptions {
  policy: Policy;
  device: SandboxDevice;
  block: SandboxBlockClient;
  sys: Sys;
  hooks: IncarnationHooks;
  /** Program to run instead of the real container (hostile-container tests). */
  entry?: string;
  /** Run as this uid/gid (only when the manager is root). */
  credentials?: { uid: number; gid: number };
  heartbeatMs: number;
  helloTimeoutMs: number;
  registerTimeoutMs: number;
}

export class Incarnation {
  readonly child: ChildProcess;
  readonly host: HostEndpoint;
  /** The register mailbox (simulated devices only). */
  readonly mailbox: HostMailbox | undefined;
  readonly ring: Shared;
  readonly startedAt = Date.now();
  exited = false;
  private readonly mailboxShm: Shared | undefined;
  private readonly eventfds: number[] = [];
  private readonly sys: Sys;

  constructor(private readonly o: IncarnationOptions) {
    const sys = (this.sys = o.sys);
    const { policy, device, block } = o;
    this.mailboxShm = device instanceof SimDevice ? createShared(sys, `${policy.name}-registers`, MAILBOX_BYTES) : undefined;
    if (this.mailboxShm) initMailbox(this.mailboxShm.u32);
    this.ring = createShared(sys, `${policy.name}-block`, ringBytes(block.geometry));
    block.initRing(this.ring);
    const efd = (): number => { const fd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); this.eventfds.push(fd); return fd; };
    const mailboxKick = this.mailboxShm ? efd() : -1, blockRequest = efd(), blockCompletion = efd();
    const irqCount = policy.driver.interrupts === 'msix' ? Math.min(device.irqCounts.msix, policy.driver.queues + 1) : 0;
    const irqFds = device.newIrqFds(irqCount);
    const boot: ContainerBoot = {
      name: policy.name,
      device: device.kind,
      driver: { ...policy.driver },
      fds: { ...BOOT_FDS },
      mailboxBytes: MAILBOX_BYTES,
      blockBytes: this.ring.size,
      blockData: device.blockData!,
      bars: device.barSizes(),
      irq: device.irqCounts,
      seccomp: policy.unconfined ? 'none' : policy.container.seccomp,
      registerTimeoutMs: o.registerTimeoutMs,
    };
    // fd 3: hypercalls; 4..8: fixed (boot.ts); then one memfd per granted window; then irq eventfds.
    const slot4 = this.mailboxShm ? this.mailboxShm.fd : device.deviceFd()!;
    const stdio: (string | number)[] = ['ignore', 'pipe', 'pipe', 'pipe', slot4, this.mailboxShm ? mailboxKick : 'ignore', this.ring.fd, blockRequest, blockCompletion];
    for (const g of device.grants) stdio.push(g.window.memory.fd);
    const firstIrqSlot = stdio.length;
    stdio.push(...irqFds);
    const attached: Record<string, { fdSlot: number; fds: number; bytes: number }> = {};
    for (const a of attachments.get(device) ?? []) {
      attached[a.name] = { fdSlot: stdio.length, fds: a.fds.length, bytes: a.bytes };
      stdio.push(...a.fds);
    }
    const entry = o.entry ?? defaultEntry();
    // The policy's memory limit, as far as Node can apply it: the JS heap gets what the windows
    // leave (a cgroup would bound the whole process; not done yet).
    const windowBytes = policy.windows.reduce((n, w) => n + w.size, 0);
    const heapMiB = Math.max(64, Math.floor((policy.container.memory - windowBytes) / 2 ** 20));
    const heapArg = process.execArgv.some((a) => a.startsWith('--max-old-space-size')) ? [] : [`--max-old-space-size=${heapMiB}`];
    this.child = spawn(process.execPath, [...process.execArgv, ...heapArg, entry, JSON.stringify({ ...boot, attachments: attached })], {
      stdio: stdio as never,
      // Its own process group: a terminal's Ctrl-C goes to the manager, which stops containers in order.
      detached: true,
      ...(o.credentials ? { uid: o.credentials.uid, gid: o.credentials.gid } : {}),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '' },
    });
    // The container's own stdout/stderr: at most 50 lines a second reach the log (a container
    // printing in a loop must not flood the manager), cut to 512 characters, control characters replaced.
    let windowStart = 0, lines = 0, dropped = 0;
    const text = (level: LogLevel) => (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        const now = performance.now();
        if (now - windowStart >= 1000) {
          if (dropped > 0) o.hooks.log(LogLevel.WARN, `[stdio] ${dropped} line(s) dropped (more than 50 a second)`);
          windowStart = now;
          lines = 0;
          dropped = 0;
        }
        if (++lines > 50) { dropped++; continue; }
        o.hooks.log(level, `[stdio] ${line.slice(0, 512).replace(/[\x00-\x1f\x7f]/g, '?')}`);
      }
    };
    this.child.stdout?.on('data', text(LogLevel.INFO));
    this.child.stderr?.on('data', text(LogLevel.WARN));
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      o.hooks.exit(code, signal);
    });
    this.child.on('error', (e) => {
      o.hooks.log(LogLevel.ERROR, `container process error: ${e.message}`);
      // A spawn that failed has no process and no 'exit': report it as one, so the supervisor goes on.
      if (this.child.pid === undefined && !this.exited) {
        this.exited = true;
        o.hooks.exit(null, null);
      }
    });
    const stream = this.child.stdio[3] as Duplex;
    const grants = device.grants;
    this.host = new HostEndpoint(stream, {
      windowCount: grants.length,
      heartbeatMs: o.heartbeatMs,
      helloTimeoutMs: o.helloTimeoutMs,
      handler: {
        mapWindow: (id) => {
          const g = grants[id]!;
          return {
            iova: g.window.iova,
            length: BigInt(g.window.size),
            offset: BigInt(g.window.offset),
            fdSlot: FIRST_DYNAMIC_FD + id,
            deviceRead: g.perm.read,
            deviceWrite: g.perm.write,
            hugePages: g.hugePages,
          };
        },
        irqSetup: (r) => {
          if (r.kind !== 'msix' || irqFds.length === 0) return HcStatus.DENIED;
          return { granted: Math.min(r.vectors, irqFds.length), firstFdSlot: firstIrqSlot };
        },
        log: (r) => o.hooks.log(r.level, r.text),
        heartbeat: (h) => o.hooks.heartbeat(h),
        fault: (f) => o.hooks.fault(f),
        ready: () => o.hooks.ready(),
      },
      onViolation: (e: HypercallError) => o.hooks.violation(`${e.code}: ${e.message}`, e.decision === 'kill'),
    });
    if (this.mailboxShm && device instanceof SimDevice) {
      this.mailbox = new HostMailbox(sys, this.mailboxShm, mailboxKick, device, (reason) => o.hooks.violation(`register mailbox: ${reason}`, true));
      this.mailbox.start();
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The block client's link to this container's ring. */
  blockLink(): { sys: Sys; shm: Shared; requestFd: number; completionFd: number } {
    const n = this.eventfds.length;
    return { sys: this.sys, shm: this.ring, requestFd: this.eventfds[n - 2]!, completionFd: this.eventfds[n - 1]! };
  }

  /** True once a SIGKILL was sent. */
  killed = false;

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (signal === 'SIGKILL') this.killed = true;
    if (!this.exited) this.child.kill(signal);
  }

  /** After exit: stop serving and release what was made for this container. */
  dispose(): void {
    this.mailbox?.close();
    (this.child.stdio[3] as Duplex | null)?.destroy();
    this.mailboxShm?.close();
    this.ring.close();
    for (const fd of this.eventfds) this.sys.close(fd);
    this.eventfds.length = 0;
  }
}
