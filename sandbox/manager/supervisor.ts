/**
 * The supervisor of one sandbox: one policy, one device, a succession of containers.
 *
 * - Crash: the container exits or is killed (any code, any signal).
 * - Hang: block requests are pending and neither a completion nor a heartbeat counter has moved
 *   for `hangMs`; or no READY within `readyTimeoutMs`; or heartbeats stop (the HostEndpoint's
 *   watchdog, a hypercall kill). A hung container is killed with SIGKILL, then handled as a crash.
 * - Quarantine, after every container's end and before anything else: bus mastering off, FLR
 *   (SimDevice.quarantine). Only then may the windows be reused by the next container.
 * - Restart with exponential backoff from the policy (`restart.backoff.initial` doubling up to
 *   `max`); more than `restart.maxRestarts` restarts within `restart.window` marks the device
 *   failed: every pending and later request rejects with ERR_SANDBOX_FAILED.
 * - Requests in flight when a container dies are posted again on the next one (the block client
 *   keeps them), so callers see latency, not errors.
 */
import { EventEmitter } from 'node:events';
import { defaultSys, type Sys } from 'linux-sys';
import { DmaboxError } from '../../common/errors.js';
import type { Policy } from '../../policies/types.js';
import { SandboxBlockClient } from './services/block.js';
import { HybridPoller, type Pollable } from './hybrid-poll.js';
import { dataAreaBytes } from '../abi/block.js';
import { LogLevel, ShutdownReason, type FaultReport, type Heartbeat } from '../abi/hypercall/index.js';
import { Incarnation } from './incarnation.js';
import { SimDevice } from './sim-device.js';
import { VfioDevice } from './vfio-device.js';
import type { SandboxDevice } from './device.js';
import { describeFault, type FaultEvent, type FaultSink } from './faults.js';
import { SandboxNicPort } from './services/net.js';

export type SandboxState = 'starting' | 'running' | 'quarantined' | 'backoff' | 'failed' | 'stopping' | 'stopped';

export interface SandboxEvent {
  /** Date.now() */
  time: number;
  sandbox: string;
  kind: 'spawn' | 'ready' | 'log' | 'exit' | 'hang' | 'violation' | 'quarantine' | 'restart' | 'failed' | 'fault' | 'stop' | 'driver-fault';
  text: string;
  level?: 'error' | 'warn' | 'info' | 'debug';
}

export interface SupervisorOptions {
  sys?: Sys;
  /** Program run as the container (hostile-container tests). */
  entry?: string;
  heartbeatMs?: number;
  helloTimeoutMs?: number;
  readyTimeoutMs?: number;
  hangMs?: number;
  registerTimeoutMs?: number;
  /** Block ring geometry. */
  ring?: { entries: number; slotBytes: number };
  /** Hybrid polling window in milliseconds (default: the policy's linkback.nbd.poll; 0 never polls). */
  pollIdleMs?: number;
  /** Real devices: bind to vfio-pci at start, give back to the previous driver at stop. */
  bind?: boolean;
}

const LEVEL: Record<number, SandboxEvent['level']> = { [LogLevel.ERROR]: 'error', [LogLevel.WARN]: 'warn', [LogLevel.INFO]: 'info', [LogLevel.DEBUG]: 'debug' };

export class Supervisor extends EventEmitter implements FaultSink {
  readonly policy: Policy;
  readonly device: SandboxDevice;
  /** The simulated device, when the policy's device is simulated (tests reach the model through it). */
  readonly sim: SimDevice | undefined;
  readonly block: SandboxBlockClient;
  /** A NIC driver's packet rings (sandbox/net), made before the first container and handed to each. */
  readonly nic: SandboxNicPort | undefined;
  state: SandboxState = 'starting';
  /** Restarts done (not counting the first start). */
  restarts = 0;
  /** Container deaths (crashes and kills). */
  crashes = 0;
  /** Violations seen (hypercall, mailbox, block ring). */
  violations = 0;
  readonly events: SandboxEvent[] = [];
  /** uid/gid containers run as, and whether that is the policy's (root) or the invoking user's. */
  readonly credentials: { uid: number; gid: number; asPolicy: boolean };
  private current: Incarnation | undefined;
  /** Hybrid polling of the block ring (nvme with a poll window), else undefined. */
  readonly poller: HybridPoller | undefined;
  private readonly pollIdleMs: number;
  private readonly restartTimes: number[] = [];
  private backoffTimer: NodeJS.Timeout | undefined;
  private hangTimer: NodeJS.Timeout | undefined;
  private readyTimer: NodeJS.Timeout | undefined;
  private lastProgress = 0;
  private lastBeat: Heartbeat | undefined;
  private readonly o: Required<Omit<SupervisorOptions, 'entry' | 'ring' | 'bind' | 'pollIdleMs'>> & Pick<SupervisorOptions, 'entry'>;
  private stopRequested = false;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  lastHeartbeat: Heartbeat | undefined;
  readonly createdAt = Date.now();
  startedAt = 0;

  constructor(policy: Policy, options: SupervisorOptions = {}) {
    super();
    this.policy = policy;
    this.o = {
      sys: options.sys ?? defaultSys(),
      entry: options.entry,
      heartbeatMs: options.heartbeatMs ?? 500,
      helloTimeoutMs: options.helloTimeoutMs ?? 20_000,
      readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
      hangMs: options.hangMs ?? 5_000,
      registerTimeoutMs: options.registerTimeoutMs ?? 2_000,
    };
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    this.credentials = root
      ? { uid: policy.container.uid, gid: policy.container.gid, asPolicy: true }
      : { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1, asPolicy: false };
    this.device = 'sim' in policy.device ? new SimDevice(policy, this.o.sys) : new VfioDevice(policy, this.o.sys, { bind: options.bind === true || ('bind' in policy.device && policy.device.bind) });
    this.sim = this.device instanceof SimDevice ? this.device : undefined;
    if (this.device instanceof VfioDevice) for (const w of this.device.warnings) this.event('log', w, 'warn');
    try {
      // A NIC's container serves no block ring: the smallest geometry keeps its windows for the driver.
      const geometry = options.ring ?? (policy.driver.name === 'nvme' ? { entries: 16, slotBytes: 64 * 1024 } : { entries: 1, slotBytes: 4096 });
      const areas = this.device.reserveBlockData(dataAreaBytes(geometry));
      this.block = new SandboxBlockClient(geometry, { read: areas.read.bytes, write: areas.write.bytes });
      this.nic = policy.driver.name === 'e1000e' ? new SandboxNicPort(this, { sys: this.o.sys }) : undefined;
    } catch (e) {
      this.device.release();
      throw e;
    }
    this.block.onViolation = (reason) => this.violation(`block ring: ${reason}`, true);
    // Hybrid polling of the block ring and, for a simulated device, of its doorbells (hybrid-poll.ts).
    const lb = policy.linkback;
    const pollIdleMs = options.pollIdleMs ?? (lb && 'nbd' in lb ? lb.nbd.poll : 0);
    this.pollIdleMs = pollIdleMs;
    if (policy.driver.name === 'nvme' && pollIdleMs > 0) {
      const block = this.block;
      const both: Pollable[] = [block, block];
      const one: Pollable[] = [block];
      const sys = this.o.sys;
      this.poller = new HybridPoller({
        idleMs: pollIdleMs,
        yield: () => sys.schedYield(),
        queues: () => {
          const mb = this.current?.mailbox;
          if (!mb) return one;
          both[1] = mb;
          return both;
        },
      });
      block.onPost = () => this.poller!.wake();
    }
    // The simulator's IOMMU reports its refusals directly; on VFIO a KmsgFaultMonitor calls onFault.
    this.sim?.machine.iommu.on('fault', (f: { device: string; iova: number; access: 'read' | 'write'; reason: string; vtdReason: number | null }) => {
      if (f.device !== this.device.address) return;
      this.onFault({
        device: f.device,
        iova: BigInt(f.iova),
        access: f.access,
        reason: f.vtdReason === null ? f.reason : `${f.reason} (VT-d reason 0x${f.vtdReason.toString(16).padStart(2, '0')})`,
        source: 'sim',
        iommu: f.vtdReason !== null,
      });
    });
  }

  /** Faults seen (IOMMU refusals and others), the last 100 kept. */
  faultCount = 0;
  readonly faults: FaultEvent[] = [];

  /** PCI address of the device (for fault attribution). */
  get address(): string {
    return this.device.address;
  }

  get action(): 'log' | 'restart' | 'stop' {
    return this.policy.onIommuFault;
  }

  /** A fault attributed to this sandbox's device: recorded, and the policy's action applied to IOMMU refusals. */
  onFault(f: FaultEvent): void {
    this.faultCount++;
    this.faults.push(f);
    if (this.faults.length > 100) this.faults.shift();
    if (!f.iommu) {
      this.event('fault', `${describeFault(f)}: not an IOMMU refusal, logged`, 'warn');
      return;
    }
    this.faultAction(this.policy.onIommuFault, describeFault(f));
  }

  get name(): string {
    return this.policy.name;
  }
  get pid(): number | undefined {
    return this.current?.exited === false ? this.current.pid : undefined;
  }

  private event(kind: SandboxEvent['kind'], text: string, level: SandboxEvent['level'] = 'info'): void {
    const e: SandboxEvent = { time: Date.now(), sandbox: this.policy.name, kind, text, level };
    this.events.push(e);
    if (this.events.length > 1000) this.events.shift();
    this.emit('event', e);
  }

  /** Start the first container. Resolves when it is ready; rejects if the sandbox fails first. */
  start(): Promise<void> {
    this.spawn();
    return this.ready();
  }

  /** Resolves the next time the sandbox is serving (now, if it is). */
  ready(): Promise<void> {
    if (this.state === 'running') return Promise.resolve();
    if (this.state === 'failed' || this.state === 'stopped') return Promise.reject(this.failure());
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  private failure(): DmaboxError {
    return new DmaboxError('ERR_SANDBOX_FAILED', `sandbox ${this.policy.name}: the device is ${this.state} after ${this.restarts} restart(s)`, {
      fix: 'see the sandbox events (dmabox status) for why its containers died',
    });
  }

  private spawn(): void {
    this.state = 'starting';
    this.lastBeat = undefined;
    const inc: Incarnation = new Incarnation({
      policy: this.policy,
      device: this.device,
      block: this.block,
      sys: this.o.sys,
      entry: this.o.entry,
      credentials: this.credentials.asPolicy ? { uid: this.credentials.uid, gid: this.credentials.gid } : undefined,
      heartbeatMs: this.o.heartbeatMs,
      helloTimeoutMs: this.o.helloTimeoutMs,
      registerTimeoutMs: this.o.registerTimeoutMs,
      hooks: {
        log: (level, text) => this.event('log', text, LEVEL[level]),
        heartbeat: (h) => this.heartbeat(h),
        fault: (f) => this.driverFault(f),
        ready: () => this.onReady(inc),
        violation: (reason, kill) => { if (this.current === inc && !inc.exited && !this.stopRequested) this.violation(reason, kill); },
        exit: (code, signal) => this.onExit(inc, code, signal),
      },
    });
    this.current = inc;
    this.startedAt = Date.now();
    this.event('spawn', `container pid ${inc.pid} as uid ${this.credentials.uid} gid ${this.credentials.gid}${this.credentials.asPolicy ? '' : ' (the invoking user: the manager is not root)'}${this.policy.unconfined ? ' UNCONFINED' : ''}`);
    this.readyTimer = setTimeout(() => {
      if (this.current === inc && this.state === 'starting') this.kill(`no READY within ${this.o.readyTimeoutMs} ms`);
    }, this.o.readyTimeoutMs);
  }

  private onReady(inc: Incarnation): void {
    if (this.current !== inc || this.state !== 'starting') return;
    clearTimeout(this.readyTimer);
    if (this.policy.driver.name === 'nvme') {
      try {
        this.block.attach(inc.blockLink());
      } catch (e) {
        this.kill(`ready with a bad block ring: ${(e as Error).message}`);
        return;
      }
    }
    this.state = 'running';
    this.lastProgress = performance.now();
    if (this.nic) this.event('ready', 'serving the packet rings');
    else this.event('ready', `serving ${this.block.blockCount} blocks of ${this.block.blockSize} bytes${this.block.pending > 0 ? `; ${this.block.pending} request(s) replayed` : ''}`);
    this.hangTimer = setInterval(() => this.checkHang(), Math.max(50, Math.floor(this.o.hangMs / 4)));
    this.hangTimer.unref();
    const w = this.readyWaiters;
    this.readyWaiters = [];
    for (const r of w) r.resolve();
  }

  private heartbeat(h: Heartbeat): void {
    const b = this.lastBeat;
    if (!b || h.completed !== b.completed || h.errors !== b.errors || h.bytes !== b.bytes) this.lastProgress = performance.now();
    this.lastBeat = h;
    this.lastHeartbeat = h;
  }

  private checkHang(): void {
    if (this.state !== 'running' || this.block.pending === 0) return;
    const since = performance.now() - Math.max(this.lastProgress, this.block.lastCompletion);
    if (since > this.o.hangMs) {
      this.event('hang', `${this.block.pending} request(s) pending and no progress for ${Math.round(since)} ms`, 'warn');
      this.kill('hung');
    }
  }

  private driverFault(f: FaultReport): void {
    this.event('driver-fault', `the driver reports fault kind ${f.kind} code ${f.code} iova 0x${f.iova.toString(16)}`, 'warn');
  }

  private violation(reason: string, kill: boolean): void {
    this.violations++;
    this.event('violation', reason, kill ? 'error' : 'warn');
    if (kill) this.kill(`violation: ${reason}`);
  }

  /** Kill the current container (SIGKILL); the exit handler quarantines and restarts. */
  kill(why: string): void {
    const inc = this.current;
    if (!inc || inc.exited || inc.killed) return;
    this.event('stop', `killing container pid ${inc.pid}: ${why}`, 'warn');
    inc.kill('SIGKILL');
  }

  private onExit(inc: Incarnation, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.current !== inc) return;
    clearTimeout(this.readyTimer);
    clearInterval(this.hangTimer);
    const back = this.block.detach();
    inc.dispose();
    this.event('exit', `container pid ${inc.pid} ${signal ? `killed by ${signal}` : `exited with ${code}`}${back > 0 ? `; ${back} request(s) in flight kept for replay` : ''}`, this.stopRequested ? 'info' : 'warn');
    // Quarantine before anything else touches the windows.
    this.device.quarantine();
    this.state = 'quarantined';
    this.event('quarantine', 'bus mastering off, function-level reset done');
    this.current = undefined;
    if (this.stopRequested) return this.finishStop();
    this.crashes++;
    const now = Date.now();
    while (this.restartTimes.length > 0 && now - this.restartTimes[0]! > this.policy.restart.window) this.restartTimes.shift();
    if (this.restartTimes.length >= this.policy.restart.maxRestarts) {
      this.markFailed(`${this.restartTimes.length} restart(s) within ${this.policy.restart.window} ms, the policy allows ${this.policy.restart.maxRestarts}`);
      return;
    }
    const { initial, max } = this.policy.restart.backoff;
    const delay = Math.min(max, initial * 2 ** this.restartTimes.length);
    this.restartTimes.push(now);
    this.state = 'backoff';
    this.event('restart', `restart ${this.restarts + 1} in ${delay} ms`);
    this.backoffTimer = setTimeout(() => {
      this.restarts++;
      this.spawn();
    }, delay);
  }

  private markFailed(why: string): void {
    this.state = 'failed';
    this.event('failed', `device marked failed: ${why}`, 'error');
    const err = new DmaboxError('ERR_SANDBOX_FAILED', `sandbox ${this.policy.name}: device marked failed: ${why}`, { fix: 'see the sandbox events for why its containers died; fix the cause and start the sandbox again' });
    this.block.fail(err);
    const w = this.readyWaiters;
    this.readyWaiters = [];
    for (const r of w) r.reject(err);
    this.emit('failed', err);
  }

  /** Policy action on an IOMMU fault: 'restart' kills the container, 'stop' fails the device. */
  faultAction(action: 'log' | 'restart' | 'stop', text: string): void {
    this.event('fault', `${text}: action ${action}`, action === 'log' ? 'warn' : 'error');
    if (action === 'restart') this.kill('IOMMU fault (policy: restart)');
    else if (action === 'stop') {
      this.restartTimes.length = this.policy.restart.maxRestarts; // no restart
      this.restartTimes.fill(Date.now());
      if (this.current && !this.current.exited) this.kill('IOMMU fault (policy: stop)');
      else if (this.state !== 'failed' && this.state !== 'stopped') {
        clearTimeout(this.backoffTimer);
        this.markFailed('IOMMU fault (policy: stop)');
      }
    }
  }

  private stopResolve: (() => void) | undefined;

  /**
   * Orderly stop: SHUTDOWN to the container (bounded), SIGKILL if it does not exit, quarantine,
   * then windows unmapped and the device closed. Pending requests reject.
   */
  async stop(deadlineMs = 3000): Promise<void> {
    if (this.state === 'stopped') return;
    this.stopRequested = true;
    clearTimeout(this.backoffTimer);
    clearTimeout(this.readyTimer);
    clearInterval(this.hangTimer);
    const inc = this.current;
    this.state = 'stopping';
    if (inc && !inc.exited) {
      const done = new Promise<void>((r) => { this.stopResolve = r; });
      inc.host.shutdown(deadlineMs, ShutdownReason.STOP).catch(() => undefined);
      const t = setTimeout(() => inc.kill('SIGKILL'), deadlineMs + 500);
      await done;
      clearTimeout(t);
    } else {
      this.finishStop();
    }
  }

  private finishStop(): void {
    if (this.state === 'stopped') return;
    this.device.release();
    this.nic?.close();
    this.state = 'stopped';
    this.poller?.close();
    this.block.fail(new DmaboxError('ERR_SANDBOX_STOPPED', `sandbox ${this.policy.name} was stopped`));
    this.event('stop', 'stopped: container gone, device quarantined, windows unmapped');
    const w = this.readyWaiters;
    this.readyWaiters = [];
    for (const r of w) r.reject(this.failure());
    this.stopResolve?.();
  }

  status(): Record<string, unknown> {
    const inc = this.current;
    return {
      name: this.policy.name,
      state: this.state,
      device: this.device.description,
      driver: this.policy.driver.name,
      pid: this.pid ?? null,
      uid: this.credentials.uid,
      gid: this.credentials.gid,
      uidFromPolicy: this.credentials.asPolicy,
      unconfined: this.policy.unconfined,
      uptimeMs: inc && !inc.exited ? Date.now() - inc.startedAt : 0,
      restarts: this.restarts,
      crashes: this.crashes,
      violations: this.violations,
      faults: this.faultCount,
      lastFault: this.faults.length > 0 ? describeFault(this.faults[this.faults.length - 1]!) : null,
      windows: this.device.grants.map((g) => ({ label: g.label, iova: `0x${g.window.iova.toString(16)}`, size: g.window.size, access: g.perm.read && g.perm.write ? 'read-write' : g.perm.read ? 'read' : 'write' })),
      io: {
        completed: this.block.completed,
        errors: this.block.errors,
        bytes: this.block.bytes,
        pending: this.block.pending,
        replayed: this.block.replayed,
        // Eventfd kicks sent and left out (the other side was still taking, or polled).
        requestKicks: { sent: this.block.kicks, leftOut: this.block.kicksSaved },
        ...(this.poller ? { poll: { windowMs: this.pollIdleMs, polling: this.poller.polling, periods: this.poller.periods, turns: this.poller.turns } } : {}),
      },
      heartbeat: this.lastHeartbeat ? { completed: Number(this.lastHeartbeat.completed), inflight: this.lastHeartbeat.inflight } : null,
      ...(this.nic ? { net: { attached: this.nic.isAttached, link: this.nic.linkUp(), ...this.nic.counters } } : {}),
    };
  }
}
