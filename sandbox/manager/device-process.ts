/**
 * The manager's end of one device process (sandbox/device/): the process that runs a simulated
 * sandbox's device model, launched for each incarnation (through the manager's Launcher: the
 * sandbox's own `device` identity, its own cgroup and namespaces) with only its device's memory
 * (the window memfds, the register mailbox and its kick eventfd, the interrupt eventfds, the NVMe
 * namespace's store), and the protocol of sandbox/abi/device.ts over its fd 3.
 *
 * Everything it sends is hostile: frames are bounded (MAX_FROM_DEVICE) and checked field by field;
 * more than `maxFramesPerSecond` frames in a second is a flood; no frame for `heartbeatMs *
 * missedHeartbeats` (confirmed one event-loop turn later, as the supervisor confirms its verdicts),
 * or no READY within `readyTimeoutMs`, is a hang. Each of these, a malformed frame, and the process
 * dying are `failed(reason)`: the process is killed (SIGKILL) and the sandbox's device has failed.
 * Quarantine is a request with a deadline; past it the process is killed, which is the reset.
 */
import { Socket } from 'node:net';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AF_UNIX, O_CLOEXEC, SOCK_CLOEXEC, SOCK_STREAM, type Sys } from 'linux-sys';
import {
  DeviceMsg,
  decodeFault,
  decodeHeartbeat,
  decodeLog,
  decodeQuarantined,
  decodeDeviceError,
  decodeViolation,
  encodeQuarantine,
  encodeStart,
  frame,
  FrameReader,
  MAX_FROM_DEVICE,
  type CounterName,
  type DeviceFault,
  protocolError,
  type DeviceStart,
} from '../abi/device.js';
import { LogLevel } from '../abi/hypercall/index.js';
import type { Timer, Timers } from '../../common/timers.js';
import type { Launched, LaunchExit, LaunchSpec } from '../spawner/launch.js';
import { follow, type Launcher } from './launcher.js';
import { StdioLines } from './stdio-lines.js';
import { followTaken, handOver, type SpareSpec, type TakenSpare } from './spare.js';

export interface DeviceProcessHooks {
  ready(): void;
  /** The process runs: its pid, identity, cgroup and the confinement it lacks. */
  launched(l: Launched): void;
  fault(f: DeviceFault): void;
  log(level: LogLevel, text: string): void;
  /** The container broke its register mailbox (the device process stopped serving it). */
  violation(reason: string): void;
  /** The function signalled an uncorrectable error (the simulator's AER): a device error. */
  deviceError(cause: string): void;
  /** The device failed: the process died, hung, flooded or spoke out of protocol (it is killed). Called once. */
  failed(reason: string): void;
}

export interface DeviceProcessOptions {
  /** START, its fd slots counted from FIRST_DEVICE_FD over `fds`. */
  start: DeviceStart;
  /** The fds handed over, in slot order from 4. */
  fds: readonly number[];
  hooks: DeviceProcessHooks;
  clock: Timers;
  sys: Sys;
  /** Who starts it: as the sandbox's `device` identity, in its own cgroup and namespaces (sandbox/spawner/launch.ts). */
  launcher: Launcher;
  /** The sandbox (its policy's name) and what the launch gives the process. */
  sandbox: string;
  limits: LaunchSpec['limits'];
  confined: boolean;
  /** Program to run instead of the real device process (tests), and its arguments. */
  entry?: string;
  entryArgs?: readonly string[];
  /** A spare device process taken for this one (spare.ts): it is handed the fds instead of a launch. */
  spare?: TakenSpare;
  readyTimeoutMs: number;
  /** Heartbeats missed before the process counts as hung (default 4). */
  missedHeartbeats?: number;
  /** Frames a second beyond which the process is flooding (default 1000). */
  maxFramesPerSecond?: number;
  /** Log lines a second that reach the log (default 50); the rest are counted. */
  maxLogPerSecond?: number;
}

/** The device process entrypoint next to this module's tree (main.ts under tsx, main.js when built). */
export function defaultDeviceEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`../device/main${extname(here)}`, import.meta.url));
}

/** How a device process of `sandbox` is launched, without its fds and pipes: the same cold and for a spare (spare.ts). */
export function deviceSpec(sandbox: string, limits: LaunchSpec['limits'], confined: boolean, entry?: string, entryArgs?: readonly string[]): SpareSpec {
  return {
    sandbox,
    role: 'device',
    argv: [
      process.execPath,
      ...process.execArgv.filter((a) => !a.startsWith('--experimental-vm-modules')),
      entry ?? defaultDeviceEntry(),
      ...(entryArgs ?? []),
    ],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '' },
    limits,
    confined,
  };
}

export class DeviceProcess {
  /** The process, once launched (its identity, cgroup and missing confinement too). */
  launched: Launched | undefined;
  readonly startedAt: number;
  /** The last counters the device process reported. */
  counters: Partial<Record<CounterName, number>> = {};
  isReady = false;
  exited = false;
  /** Frames taken, log lines dropped by the rate limit. */
  frames = 0;
  logsDropped = 0;
  private failedReason: string | undefined;
  private readonly reader = new FrameReader(MAX_FROM_DEVICE);
  private readonly channel: Socket;
  private readonly sockets: Socket[] = [];
  /** The child's ends, closed once it is launched. */
  private readonly theirs: number[] = [];
  private killed = false;
  private lastFrame: number;
  private rateStart: number;
  private rateFrames = 0;
  private rateLogs = 0;
  private watchdog: Timer | undefined;
  private readyTimer: Timer | undefined;
  private quarantineSeq = 0;
  private pendingQuarantine: { seq: number; resolve: (r: QuarantineResult) => void; timer: Timer } | undefined;
  private readonly readyWaiters: ((ok: boolean) => void)[] = [];
  private readonly exitWaiters: (() => void)[] = [];

  constructor(private readonly o: DeviceProcessOptions) {
    const clock = o.clock;
    this.startedAt = clock.wall();
    this.lastFrame = this.rateStart = clock.now();
    const sys = o.sys;
    // fd 3: the protocol's stream socket; stdout and stderr: pipes read at a bounded rate (stdio-lines.ts).
    // A spare already holds its ends: it is handed the fds first, before START on the same socket.
    const spare = o.spare;
    if (spare) handOver(sys, spare, o.fds);
    const [mine, theirs] = spare ? [spare.channel, -1] : sys.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!spare) this.theirs.push(theirs);
    this.channel = this.socket(mine, true);
    const [outR, outW] = spare ? [spare.stdout, -1] : sys.pipe2(O_CLOEXEC);
    const [errR, errW] = spare ? [spare.stderr, -1] : sys.pipe2(O_CLOEXEC);
    if (!spare) this.theirs.push(outW, errW);
    const output = new StdioLines(
      (level, text) => o.hooks.log(level, `[device] ${text}`),
      () => clock.now(),
    );
    output.attach(this.socket(outR, false), LogLevel.INFO);
    output.attach(this.socket(errR, false), LogLevel.WARN);
    this.channel.on('data', (chunk: Buffer) => this.take(chunk));
    this.channel.on('error', () => undefined);
    this.channel.write(encodeStart(o.start));
    const followed = {
      launched: (l: Launched) => {
        this.closeTheirs();
        this.launched = l;
        o.hooks.launched(l);
        if (this.killed) l.kill('SIGKILL');
      },
      exited: (x: LaunchExit, why?: string) => this.onExit(x.code, x.signal, why ?? (x.oom ? 'its cgroup ran out of memory (OOM kill)' : undefined)),
      failed: (e: Error) => {
        this.closeTheirs();
        this.onExit(null, null, `could not be started: ${e.message.split('\n')[0]}`);
      },
    };
    if (spare) followTaken(spare, followed);
    else
      follow(
        o.launcher,
        { ...deviceSpec(o.sandbox, o.limits, o.confined, o.entry, o.entryArgs), stdout: outW, stderr: errW, fds: [theirs, ...o.fds] },
        followed,
      );
    this.readyTimer = clock.setTimeout(() => this.confirm(() => !this.isReady, `no READY within ${o.readyTimeoutMs} ms`), o.readyTimeoutMs);
    const period = o.start.heartbeatMs;
    const bound = period * (o.missedHeartbeats ?? 4);
    // Heartbeats are owed from READY on (before it, the READY bound applies: Node's start-up is slower than a heartbeat).
    const late = (): boolean => this.isReady && clock.now() - this.lastFrame > bound;
    this.watchdog = clock.setInterval(() => {
      if (late()) this.confirm(late, `no heartbeat for ${bound} ms`);
    }, period);
  }

  get pid(): number | undefined {
    return this.launched?.pid;
  }

  /** Our end of a socketpair or pipe as a stream (`duplex`: the protocol socket; otherwise a read end). */
  private socket(fd: number, duplex: boolean): Socket {
    const s = new Socket({ fd, readable: true, writable: duplex });
    this.sockets.push(s);
    return s;
  }

  private closeTheirs(): void {
    for (const n of this.theirs) this.o.sys.close(n);
    this.theirs.length = 0;
  }

  get alive(): boolean {
    return !this.exited && this.failedReason === undefined;
  }

  /** Resolves true once READY, false if the device process fails first. */
  whenReady(): Promise<boolean> {
    if (this.isReady) return Promise.resolve(true);
    if (!this.alive) return Promise.resolve(false);
    return new Promise((r) => this.readyWaiters.push(r));
  }

  /** Resolves when the process has exited. */
  whenExited(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((r) => this.exitWaiters.push(r));
  }

  /** A verdict one event-loop turn later: after a stall of the manager's own loop, the frames waiting unread come first. */
  private confirm(still: () => boolean, reason: string): void {
    this.o.clock.setTimeout(() => {
      if (still() && this.alive) this.fail(reason);
    }, 1);
  }

  private take(chunk: Buffer): void {
    if (!this.alive) return;
    let frames: [number, Uint8Array][];
    try {
      frames = this.reader.push(chunk);
    } catch (e) {
      this.fail((e as Error).message.split('\n')[0]!);
      return;
    }
    const now = this.o.clock.now();
    if (now - this.rateStart >= 1000) {
      if (this.logsDropped > 0)
        this.o.hooks.log(LogLevel.WARN, `[device] ${this.logsDropped} log line(s) dropped (more than ${this.o.maxLogPerSecond ?? 50} a second)`);
      this.rateStart = now;
      this.rateFrames = 0;
      this.rateLogs = 0;
      this.logsDropped = 0;
    }
    for (const [type, payload] of frames) {
      if (!this.alive) return;
      this.frames++;
      this.lastFrame = now;
      if (++this.rateFrames > (this.o.maxFramesPerSecond ?? 1000)) {
        this.fail(`flood: more than ${this.o.maxFramesPerSecond ?? 1000} frames in a second`);
        return;
      }
      try {
        this.dispatch(type, payload);
      } catch (e) {
        this.fail((e as Error).message.split('\n')[0]!);
        return;
      }
    }
  }

  private dispatch(type: number, payload: Uint8Array): void {
    switch (type) {
      case DeviceMsg.READY:
        if (this.isReady || payload.length !== 0) throw protocolError(`READY ${this.isReady ? 'twice' : `with ${payload.length} bytes`}`);
        this.isReady = true;
        this.o.clock.clearTimeout(this.readyTimer);
        for (const r of this.readyWaiters.splice(0)) r(true);
        this.o.hooks.ready();
        return;
      case DeviceMsg.HEARTBEAT:
        this.counters = decodeHeartbeat(payload).counters;
        return;
      case DeviceMsg.FAULT:
        this.o.hooks.fault(decodeFault(payload));
        return;
      case DeviceMsg.LOG: {
        const l = decodeLog(payload);
        if (++this.rateLogs > (this.o.maxLogPerSecond ?? 50)) {
          this.logsDropped++;
          return;
        }
        this.o.hooks.log(l.level as LogLevel, `[device] ${l.text.replace(/[\x00-\x1f\x7f]/g, '?')}`); // eslint-disable-line no-control-regex
        return;
      }
      case DeviceMsg.QUARANTINED: {
        const q = decodeQuarantined(payload);
        const p = this.pendingQuarantine;
        if (!p || p.seq !== q.seq) throw protocolError(`QUARANTINED ${q.seq} that was not asked`);
        this.pendingQuarantine = undefined;
        this.o.clock.clearTimeout(p.timer);
        p.resolve({ done: q.done, killed: false });
        return;
      }
      case DeviceMsg.ERROR:
        this.o.hooks.deviceError(decodeDeviceError(payload).replace(/[\x00-\x1f\x7f]/g, '?')); // eslint-disable-line no-control-regex
        return;
      case DeviceMsg.VIOLATION:
        this.o.hooks.violation(decodeViolation(payload).replace(/[\x00-\x1f\x7f]/g, '?')); // eslint-disable-line no-control-regex
        return;
      default:
        throw protocolError(`a frame of type ${type}, which a device process does not send`);
    }
  }

  /**
   * Bus mastering off, interrupts off, FLR, answered within `deadlineMs`; past it, or with the
   * process gone, it is killed (a dead model does no DMA: that is the reset). Then RELEASE.
   */
  quarantine(deadlineMs: number): Promise<QuarantineResult> {
    if (!this.alive || !this.isReady) {
      this.kill();
      return Promise.resolve({ done: 0, killed: true });
    }
    const seq = ++this.quarantineSeq;
    return new Promise<QuarantineResult>((resolve) => {
      const timer = this.o.clock.setTimeout(() => {
        if (this.pendingQuarantine?.seq !== seq) return;
        this.pendingQuarantine = undefined;
        this.fail(`no answer to QUARANTINE within ${deadlineMs} ms`);
        resolve({ done: 0, killed: true });
      }, deadlineMs);
      this.pendingQuarantine = { seq, resolve, timer };
      this.channel.write(encodeQuarantine(seq));
    }).then((q) => {
      if (!q.killed) this.release();
      return q;
    });
  }

  /** Ask the process to exit (after quarantine). */
  release(): void {
    if (this.exited) return;
    this.channel.write(frame(DeviceMsg.RELEASE));
  }

  /** SIGKILL, no questions. */
  kill(): void {
    this.stopTimers();
    this.killed = true;
    if (!this.exited) this.launched?.kill('SIGKILL');
  }

  private fail(reason: string): void {
    if (this.failedReason !== undefined) return;
    this.failedReason = reason;
    this.kill();
    this.abandonWaiters();
    this.o.hooks.failed(reason);
  }

  /** It failed: whoever waits for READY or a quarantine's answer gets none. */
  private abandonWaiters(): void {
    for (const r of this.readyWaiters.splice(0)) r(false);
    const p = this.pendingQuarantine;
    if (p) {
      this.pendingQuarantine = undefined;
      this.o.clock.clearTimeout(p.timer);
      p.resolve({ done: 0, killed: true });
    }
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null, why?: string): void {
    if (this.exited) return;
    this.exited = true;
    this.stopTimers();
    for (const s of this.sockets) s.destroy();
    this.sockets.length = 0;
    this.closeTheirs();
    const released = code === 0 && this.failedReason === undefined && !this.pendingQuarantine;
    if (!released && this.failedReason === undefined) {
      this.failedReason = why ?? `the device process ${signal ? `was killed by ${signal}` : `exited with ${code}`}`;
      this.abandonWaiters();
      this.o.hooks.failed(this.failedReason);
    }
    for (const r of this.exitWaiters.splice(0)) r();
  }

  private stopTimers(): void {
    this.o.clock.clearTimeout(this.readyTimer);
    this.o.clock.clearInterval(this.watchdog);
  }
}

export interface QuarantineResult {
  /** QUARANTINE_DONE flags the device process reported. */
  done: number;
  /** True when it was killed instead (no answer in time, or gone). */
  killed: boolean;
}
