/**
 * One container process of a sandbox, from spawn to exit: the shared memory and eventfds made for
 * it, the child itself (its own uid and gid when the manager is root), its hypercall endpoint, its
 * boot parameters and register mailbox. The supervisor makes a fresh incarnation for every
 * (re)start; the device, its windows and the services outlive incarnations.
 *
 * What the container inherits (sandbox/abi/README.md, "Boot parameters, fd slots and driver code"):
 * fd 3 the hypercall socket and fd 4 the driver code image, both fixed by the ABI; then, in this
 * order and each announced where the container looks for it: the device (VFIO: the device fd,
 * parameter `device.fd`; simulator: the register mailbox and its kick eventfd, `mailbox.fd` and
 * `mailbox.kick.fd`), one memfd per granted window (MAP_WINDOW's fdSlot), the interrupt eventfds
 * (IRQ_SETUP's firstFdSlot), then each service's fds (its parameters). Its argv and environment
 * carry nothing of the sandbox. It is started through sandbox/spawner/launch.ts (its sandbox's own
 * identity, namespaces, a cgroup): the hypercall socketpair and the stdout/stderr pipes are made
 * here, the child's ends handed over in the launch spec and closed once it is launched.
 */
import { Socket } from 'node:net';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AF_UNIX, EFD_CLOEXEC, EFD_NONBLOCK, O_CLOEXEC, SOCK_CLOEXEC, SOCK_STREAM, type Sys } from 'linux-sys';
import type { LaunchExit, Launched, LaunchSpec } from '../spawner/launch.js';
import { directLauncher, follow, type Launcher } from './launcher.js';
import { HcStatus, LogLevel, type FaultReport, type Heartbeat, type HypercallError } from '../abi/hypercall/index.js';
import { HostEndpoint } from './hypercall/host.js';
import { createShared, type Shared } from '../abi/shm.js';
import type { DeviceProcess } from './device-process.js';
import { MAILBOX_BYTES, W, initMailbox } from '../abi/mailbox.js';
import { FD, formatParam, PARAM, type ParamKey } from '../abi/boot.js';
import type { DriverKind } from '../../drivers/contract/driver.js';
import type { SandboxDevice } from './device.js';
import { SimDevice } from './sim-device.js';
import type { ManagerService } from './services/registry.js';
import type { Policy } from '../../policies/types.js';
import type { Timers } from '../../common/timers.js';
import { SandboxError } from './errors.js';
import { StdioLines } from './stdio-lines.js';
import { followTaken, handOver, type SpareSpec, type TakenSpare } from './spare.js';

/** The container entrypoint next to this module (main.ts under tsx, main.js when built). */
export function defaultEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`../container/main${extname(here)}`, import.meta.url));
}

/** Node options every container runs with: vm modules for the driver code (sandbox/container/loader.ts), without the warning. */
export const CONTAINER_NODE_FLAGS = ['--experimental-vm-modules', '--disable-warning=ExperimentalWarning'] as const;

export interface IncarnationHooks {
  log(level: LogLevel, text: string): void;
  heartbeat(h: Heartbeat): void;
  fault(f: FaultReport): void;
  ready(): void;
  /** A hypercall or ring violation; `kill` when the container must go. */
  violation(reason: string, kill: boolean): void;
  /** The container's hypercall channel closed: it is going (or gone); not a violation. */
  gone(reason: string): void;
  /** The process runs: its pid, identity, cgroup and the confinement it lacks. */
  launched(l: Launched): void;
  /** The simulated device's process runs (its pid, identity, cgroup, missing confinement). */
  deviceLaunched(l: Launched): void;
  /** The simulated device's process failed (died, hung, flooded, broke the protocol): the container goes too. */
  deviceFailed(reason: string): void;
  /** It is gone; `oom`: its cgroup's OOM killer killed it. */
  exit(code: number | null, signal: NodeJS.Signals | null, oom: boolean): void;
}

export interface IncarnationOptions {
  policy: Policy;
  device: SandboxDevice;
  /** The services of the driver's kind (one today); each hands the container its part. */
  services: readonly ManagerService[];
  /** The driver: its kind and name as published, and its code image (sandbox/abi/code.ts). */
  driver: { kind: DriverKind; label: string; code: Uint8Array };
  sys: Sys;
  hooks: IncarnationHooks;
  /** Program to run instead of the real container (hostile-container tests), and its arguments. */
  entry?: string;
  entryArgs?: readonly string[];
  /** Who starts the process (default: the launch library in this process; the manager's spawner after set-up). */
  launcher?: Launcher;
  /** Program to run instead of the real device process (tests), and its arguments. */
  deviceEntry?: string;
  deviceEntryArgs?: readonly string[];
  /** The device process's heartbeat period (it is hung after 4 missed) and READY bound. */
  deviceHeartbeatMs: number;
  deviceReadyTimeoutMs: number;
  /** Time for the device process's bounds. */
  deviceClock: Timers;
  /** Hybrid polling window of the device process's register mailbox, ms. */
  pollMs: number;
  /** A device fault plan for this incarnation's device (sim/faults text form), e.g. a campaign trial's. */
  deviceFaultPlan?: string;
  heartbeatMs: number;
  helloTimeoutMs: number;
  registerTimeoutMs: number;
  /** Time (the stdio rate window, the start time reported in status). */
  clock: Timers;
  /** Spares taken for this incarnation (spare.ts): the container, the device process; either may be absent (started cold). */
  spare?: { driver?: TakenSpare; device?: TakenSpare };
}

/** The seccomp profile a container of `policy` confines itself with ('none': the policy runs it unconfined). */
export function containerProfile(policy: Policy): string {
  return policy.unconfined ? 'none' : policy.container.seccomp;
}

/**
 * How a container of `policy` is launched, without its fds and pipes: the same for a container
 * started cold and for a spare (spare.ts), so a spare is exactly the process it will become.
 */
export function containerSpec(policy: Policy, entry?: string, entryArgs?: readonly string[]): SpareSpec {
  // The JS heap gets what the windows leave of the memory limit; the cgroup bounds the whole process.
  const windowBytes = policy.windows.reduce((n, w) => n + w.size, 0);
  const heapMiB = Math.max(64, Math.floor((policy.container.memory - windowBytes) / 2 ** 20));
  const inherited = process.execArgv.filter((a) => !(CONTAINER_NODE_FLAGS as readonly string[]).includes(a));
  const heapArg = inherited.some((a) => a.startsWith('--max-old-space-size')) ? [] : [`--max-old-space-size=${heapMiB}`];
  return {
    sandbox: policy.name,
    role: 'driver',
    argv: [process.execPath, ...inherited, ...CONTAINER_NODE_FLAGS, ...heapArg, entry ?? defaultEntry(), ...(entryArgs ?? [])],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '' },
    limits: { memoryBytes: policy.container.memory, pids: policy.container.pids, cpuWeight: policy.container.cpuWeight },
    confined: !policy.unconfined,
  };
}

export class Incarnation {
  /** The running process, once launched. */
  launched: Launched | undefined;
  readonly host: HostEndpoint;
  /** The device process serving this container's register mailbox (simulated devices only). */
  readonly deviceProcess: DeviceProcess | undefined;
  readonly startedAt: number;
  /** The boot parameters this container may read (GETPARAM). */
  readonly params = new Map<string, string>();
  exited = false;
  private readonly shared: Shared[] = [];
  private readonly eventfds: number[] = [];
  private readonly sys: Sys;
  /** The manager's ends: the hypercall socket, the container's stdout and stderr. */
  private readonly sockets: Socket[] = [];
  /** The child's ends, closed once it is launched. */
  private readonly theirs: number[] = [];

  constructor(o: IncarnationOptions) {
    const sys = (this.sys = o.sys);
    const { policy, device } = o;
    this.startedAt = o.clock.wall();
    // The child's fds from 3 on, in order: fd 3 is the hypercall socket (pushed below).
    const fds: number[] = [];
    const fd = (n: number): number => {
      fds.push(n);
      return fds.length + 2;
    };
    const param = (key: ParamKey, value: string | number | readonly number[]): void => {
      this.params.set(key, formatParam(value));
    };
    const efd = (): number => {
      const n = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      this.eventfds.push(n);
      return n;
    };
    let mailboxShm: Shared | undefined;
    let mailboxKick = -1;
    try {
      // A spare container already holds its end of the hypercall socketpair on fd 3.
      const spare = o.spare?.driver;
      const [mine, theirs] = spare ? [spare.channel, -1] : sys.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (!spare) this.theirs.push(theirs);
      const hypercall = this.socket(mine, true);
      if (fd(theirs) !== FD.HYPERCALL) throw new SandboxError('ERR_SANDBOX_STATE', 'fd slot 3 must be the hypercall socket');
      // fd 4: a fresh copy of the driver's code, so what one container writes into it never reaches the next.
      const code = this.share(`${policy.name}-code`, Math.ceil(o.driver.code.length / 4096) * 4096);
      code.bytes.set(o.driver.code);
      if (fd(code.fd) !== FD.CODE) throw new SandboxError('ERR_SANDBOX_STATE', 'fd slot 4 must be the driver code');
      param(PARAM.SANDBOX_NAME, policy.name);
      param(PARAM.SERVICES, o.services.map((s) => s.kind).join(','));
      param(PARAM.DRIVER_KIND, o.driver.kind);
      param(PARAM.DRIVER_NAME, o.driver.label);
      param(PARAM.DRIVER_QUEUES, policy.driver.queues);
      param(PARAM.DRIVER_DEPTH, policy.driver.depth);
      param(PARAM.DRIVER_INTERRUPTS, policy.driver.interrupts);
      param(PARAM.DEVICE_KIND, device.kind);
      param(PARAM.DEVICE_BARS, device.barSizes());
      param(PARAM.DEVICE_IRQ_MSIX, device.irqCounts.msix);
      param(PARAM.DEVICE_IRQ_INTX, device.irqCounts.intx);
      param(PARAM.SECCOMP, containerProfile(policy));
      param(PARAM.REGISTER_TIMEOUT_MS, o.registerTimeoutMs);
      // The device: the register mailbox on the simulator, the VFIO device fd on real hardware.
      if (device instanceof SimDevice) {
        mailboxShm = this.share(`${policy.name}-registers`, MAILBOX_BYTES);
        initMailbox(mailboxShm.u32);
        param(PARAM.MAILBOX_FD, fd(mailboxShm.fd));
        mailboxKick = efd();
        param(PARAM.MAILBOX_KICK_FD, fd(mailboxKick));
        param(PARAM.MAILBOX_BYTES, MAILBOX_BYTES);
      } else {
        param(PARAM.DEVICE_FD, fd(device.deviceFd()!));
      }
      // The windows (announced by MAP_WINDOW), the interrupt eventfds (IRQ_SETUP), then the services.
      const windowSlots = device.grants.map((g) => fd(g.window.memory.fd));
      const irqCount = policy.driver.interrupts === 'msix' ? Math.min(device.irqCounts.msix, policy.driver.queues + 1) : 0;
      const irqFds = device.newIrqFds(irqCount);
      const firstIrqSlot = fds.length + 3;
      for (const n of irqFds) fd(n);
      param(PARAM.IRQ_VECTORS, irqFds.length);
      for (const s of o.services) s.prepare({ fd, param });
      // The device process first: it serves the mailbox, the container's registers, itself.
      if (mailboxShm && device instanceof SimDevice) {
        const shm = mailboxShm;
        this.deviceProcess = device.startProcess({
          ...(o.spare?.device ? { spare: o.spare.device } : {}),
          mailbox: shm,
          kickFd: mailboxKick,
          irqFds,
          pollMs: o.pollMs,
          heartbeatMs: o.deviceHeartbeatMs,
          readyTimeoutMs: o.deviceReadyTimeoutMs,
          clock: o.deviceClock,
          launcher: o.launcher ?? directLauncher,
          ...(o.deviceEntry ? { entry: o.deviceEntry } : {}),
          ...(o.deviceEntryArgs ? { entryArgs: o.deviceEntryArgs } : {}),
          ...(o.deviceFaultPlan === undefined ? {} : { faultPlan: o.deviceFaultPlan }),
          hooks: {
            log: (level, text) => o.hooks.log(level, text),
            launched: (l) => o.hooks.deviceLaunched(l),
            violation: (reason) => o.hooks.violation(`register mailbox: ${reason}`, true),
            failed: (reason) => {
              // A container spinning on a register read stops at once: the device is gone (while the page is still mapped here).
              if (!this.disposed) Atomics.store(shm.u32, W.HOST_GONE, 1);
              o.hooks.deviceFailed(reason);
            },
          },
        });
      }
      this.host = this.endpoint(o, hypercall, windowSlots, irqFds, firstIrqSlot);
      this.spawnChild(o, fds);
    } catch (e) {
      this.deviceProcess?.kill();
      this.dispose();
      throw e;
    }
  }

  /**
   * The container maps its windows before it builds its Platform, so its first register access
   * comes after its first MAP_WINDOW: answering that only once the device process is READY means
   * no access waits on a device process still starting. A device process that fails first: DENIED.
   */
  private async deviceReady(): Promise<boolean> {
    return this.deviceProcess ? this.deviceProcess.whenReady() : true;
  }

  private share(name: string, bytes: number): Shared {
    const s = createShared(this.sys, name, bytes);
    this.shared.push(s);
    return s;
  }

  /** Our end of a socketpair or pipe as a stream (`duplex`: the hypercall socket; otherwise a read end). */
  private socket(fd: number, duplex: boolean): Socket {
    const s = new Socket({ fd, readable: true, writable: duplex });
    this.sockets.push(s);
    return s;
  }

  private endpoint(o: IncarnationOptions, stream: Socket, windowSlots: number[], irqFds: number[], firstIrqSlot: number): HostEndpoint {
    const grants = o.device.grants;
    return new HostEndpoint(stream, {
      windowCount: grants.length,
      heartbeatMs: o.heartbeatMs,
      helloTimeoutMs: o.helloTimeoutMs,
      handler: {
        mapWindow: async (id) => {
          if (!(await this.deviceReady())) return HcStatus.DENIED;
          const g = grants[id]!;
          return {
            iova: g.window.iova,
            length: BigInt(g.window.size),
            offset: BigInt(g.window.offset),
            fdSlot: windowSlots[id]!,
            deviceRead: g.perm.read,
            deviceWrite: g.perm.write,
            hugePages: g.hugePages,
          };
        },
        irqSetup: (r) => {
          if (r.kind !== 'msix' || irqFds.length === 0) return HcStatus.DENIED;
          return { granted: Math.min(r.vectors, irqFds.length), firstFdSlot: firstIrqSlot };
        },
        getParam: (key) => this.params.get(key),
        log: (r) => o.hooks.log(r.level, r.text),
        heartbeat: (h) => o.hooks.heartbeat(h),
        fault: (f) => o.hooks.fault(f),
        ready: () => o.hooks.ready(),
      },
      onViolation: (e: HypercallError) => {
        if (e.code === 'ERR_HC_CLOSED') o.hooks.gone(e.message);
        else o.hooks.violation(`${e.code}: ${e.message}`, e.decision === 'kill');
      },
    });
  }

  private spawnChild(o: IncarnationOptions, fds: number[]): void {
    const { sys } = o;
    const spare = o.spare?.driver;
    const [outR, outW] = spare ? [spare.stdout, -1] : sys.pipe2(O_CLOEXEC);
    const [errR, errW] = spare ? [spare.stderr, -1] : sys.pipe2(O_CLOEXEC);
    if (!spare) this.theirs.push(outW, errW);
    const stdout = this.socket(outR, false);
    const stderr = this.socket(errR, false);
    // The container's own stdout/stderr: bounded lines a second, bounded work a turn (stdio-lines.ts).
    const output = new StdioLines(
      (level, text) => o.hooks.log(level, text),
      () => o.clock.now(),
    );
    output.attach(stdout, LogLevel.INFO);
    output.attach(stderr, LogLevel.WARN);
    const gone = (e: LaunchExit): void => {
      if (this.exited) return;
      this.exited = true;
      o.hooks.exit(e.code, e.signal, e.oom);
    };
    const followed = {
      launched: (l: Launched) => {
        this.closeTheirs();
        this.launched = l;
        o.hooks.launched(l);
        if (this.killed) l.kill('SIGKILL');
      },
      exited: (x: LaunchExit, why?: string) => {
        if (why) o.hooks.log(LogLevel.ERROR, `container process: ${why}`);
        gone(x);
      },
      failed: (e: Error) => {
        this.closeTheirs();
        // A launch that failed has no process and no exit: report it as one, so the supervisor goes on.
        o.hooks.log(LogLevel.ERROR, `container process error: ${e.message}`);
        gone({ code: null, signal: null, oom: false });
      },
    };
    if (spare) {
      // Slot 3 is the spare's own socket: it receives the rest (sandbox/abi/handover.ts).
      handOver(sys, spare, fds.slice(1));
      followTaken(spare, followed);
      return;
    }
    const spec: LaunchSpec = { ...containerSpec(o.policy, o.entry, o.entryArgs), stdout: outW, stderr: errW, fds };
    follow(o.launcher ?? directLauncher, spec, followed);
  }

  private closeTheirs(): void {
    for (const n of this.theirs) this.sys.close(n);
    this.theirs.length = 0;
  }

  get pid(): number | undefined {
    return this.launched?.pid;
  }

  /** True once a SIGKILL was sent. */
  killed = false;

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (signal === 'SIGKILL') this.killed = true;
    if (!this.exited) this.launched?.kill(signal);
  }

  /** After exit: stop serving and release what was made for this container. Idempotent. */
  private disposed = false;

  dispose(): void {
    this.disposed = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.length = 0;
    this.closeTheirs();
    for (const s of this.shared) s.close();
    this.shared.length = 0;
    for (const n of this.eventfds) this.sys.close(n);
    this.eventfds.length = 0;
  }
}
