/**
 * The supervisor of one sandbox: one policy, one device, one service of its driver's kind, a
 * succession of containers.
 *
 * - Crash: the container exits or is killed (any code, any signal). A container that exits with
 *   EXIT_CONFIG (its driver cannot start on this device: a refused import, another kind, another
 *   contract version) marks the device failed at once: restarting it would fail the same way.
 * - Hang: the service has work pending and neither its progress nor a heartbeat counter has moved
 *   for `hangMs`; or no READY within `readyTimeoutMs`; or heartbeats stop (the HostEndpoint's
 *   watchdog, a hypercall kill). A hung container is killed with SIGKILL, then handled as a crash.
 * - Quarantine, after every container's end and before anything else: bus mastering off, FLR
 *   (SandboxDevice.quarantine). Only then may the windows be reused by the next container.
 * - Restart with exponential backoff from the policy (`restart.backoff.initial` doubling up to
 *   `max`); more than `restart.maxRestarts` restarts within `restart.window` marks the device
 *   failed: every pending and later request rejects with ERR_SANDBOX_FAILED.
 * - What the service keeps (block: requests in flight) is handed to the next container, so
 *   callers see latency, not errors.
 *
 * Time comes from a seam (clock.ts), so every rule above is tested on fake time. A verdict against
 * a container (hung, no READY) is confirmed one event-loop turn after its timer fired: a manager
 * whose own loop stalled must first read what the container sent meanwhile, or it would blame the
 * container for its own stall.
 */
import { EventEmitter } from 'node:events';
import { defaultSys, type Sys } from 'linux-sys';
import type { DriverKind } from '../../drivers/contract/driver.js';
import type { Policy } from '../../policies/types.js';
import { LogLevel, ShutdownReason, type FaultReport, type Heartbeat } from '../abi/hypercall/index.js';
import { EXIT } from '../abi/boot.js';
import type { RingGeometry } from '../abi/block.js';
import type { NetGeometry } from '../abi/net.js';
import { realTimers, type Timer, type Timers } from '../../common/timers.js';
import { bundleDriver, driverRef, type CampaignInjection, type DriverRef } from './driver-code.js';
import { SandboxError } from './errors.js';
import { containerProfile, containerSpec, Incarnation } from './incarnation.js';
import { directLauncher, type Launcher } from './launcher.js';
import { Spare, type TakenSpare } from './spare.js';
import type { Launched } from '../spawner/launch.js';
import { launchHost } from '../spawner/host.js';
import { SimDevice } from './sim-device.js';
import { VfioDevice } from './vfio-device.js';
import type { SandboxDevice } from './device.js';
import { describeFault, faultKind, type FaultEvent, type FaultSink } from './faults.js';
import type { HybridPoller } from '../abi/hybrid-poll.js';
import { SERVICES, type ManagerService, type ServiceHost } from './services/registry.js';
import { BlockService } from './services/block-service.js';
import { NetService } from './services/net-service.js';
import type { SandboxBlockClient } from './services/block.js';
import type { SandboxNicPort } from './services/net.js';

export type SandboxState = 'starting' | 'running' | 'quarantined' | 'backoff' | 'failed' | 'stopping' | 'stopped';

export interface SandboxEvent {
  /** Wall-clock ms since the epoch. */
  time: number;
  sandbox: string;
  kind:
    | 'spawn'
    | 'ready'
    | 'log'
    | 'exit'
    | 'hang'
    | 'violation'
    | 'quarantine'
    | 'restart'
    | 'failed'
    | 'fault'
    | 'stop'
    | 'driver-fault'
    | 'device'
    | 'device-error';
  text: string;
  level?: 'error' | 'warn' | 'info' | 'debug';
}

export interface SupervisorOptions {
  sys?: Sys;
  /** Time and timers (default: Node's). */
  clock?: Timers;
  /** Program run as the container, and its arguments (hostile-container tests). */
  entry?: string;
  entryArgs?: readonly string[];
  /**
   * A fault-injection campaign (campaigns/): the first container gets a code image built with the
   * injector around the driver; later ones the plain driver. The Manager never passes this.
   */
  campaign?: CampaignInjection;
  /** Program run as the device process of a simulated device, and its arguments (tests). */
  deviceEntry?: string;
  deviceEntryArgs?: readonly string[];
  /** The device process's heartbeat period; 4 missed and it is hung (default 250 ms). */
  deviceHeartbeatMs?: number;
  /** Time for the device process's bounds (default Node's, also when `clock` is fake: its heartbeats come in real time). */
  deviceClock?: Timers;
  heartbeatMs?: number;
  helloTimeoutMs?: number;
  readyTimeoutMs?: number;
  hangMs?: number;
  registerTimeoutMs?: number;
  /** Block ring geometry. */
  ring?: RingGeometry;
  /** Packet ring geometry. */
  net?: NetGeometry;
  /** Hybrid polling window in milliseconds (default: the policy's linkback.nbd.poll; 0 never polls). */
  pollIdleMs?: number;
  /** Real devices: bind to vfio-pci at start, give back to the previous driver at stop. */
  bind?: boolean;
  /** Who starts containers (default: the launch library in this process; the manager's spawner after set-up). */
  launcher?: Launcher;
  /**
   * Keep a spare container (and, on the simulator, a spare device process) started ahead of need,
   * so a restart skips a process launch and Node's start-up (spare.ts). Launched once the sandbox
   * is READY, taken by the next restart. Not with `entry` or `deviceEntry` (test programs). Default:
   * the policy's `restart.spare`.
   */
  spares?: boolean;
}

const LEVEL: Record<number, SandboxEvent['level']> = { [LogLevel.ERROR]: 'error', [LogLevel.WARN]: 'warn', [LogLevel.INFO]: 'info', [LogLevel.DEBUG]: 'debug' };
/**
 * How long after READY the spares are launched (restart.spare): after the replay and the first
 * requests of the container that became ready, which a spare's start-up would slow.
 */
export const SPARE_DELAY_MS = 100;
const FAULT_KIND: Record<number, string> = { 1: 'dma', 2: 'device', 3: 'timeout', 4: 'driver' };

export class Supervisor extends EventEmitter implements FaultSink {
  readonly policy: Policy;
  readonly device: SandboxDevice;
  /** The simulated device, when the policy's device is simulated (its model runs in a device process). */
  readonly sim: SimDevice | undefined;
  /** The driver the policy names, and the kind (service) it runs under. */
  readonly driver: DriverRef;
  readonly kind: DriverKind;
  /** The service of the driver's kind. */
  readonly service: ManagerService;
  state: SandboxState = 'starting';
  /** Restarts done (not counting the first start). */
  restarts = 0;
  /** Container deaths (crashes and kills). */
  crashes = 0;
  /** Violations seen (hypercall, mailbox, the service's rings). */
  violations = 0;
  readonly events: SandboxEvent[] = [];
  /**
   * uid/gid the container runs as (its sandbox's own identity when the manager is root, the
   * invoking user's otherwise; -1 before the first launch), and the confinement it lacks.
   */
  readonly credentials: { uid: number; gid: number; asPolicy: boolean; missing: readonly string[] };
  readonly clock: Timers;
  private current: Incarnation | undefined;
  private code: Uint8Array | undefined;
  /** The first container's code image when a campaign armed this sandbox. */
  private campaignCode: Uint8Array | undefined;
  private spawns = 0;
  /** True when a campaign armed this sandbox's first container with the fault injector. */
  readonly campaign: boolean;
  private readonly campaignInjection: CampaignInjection | undefined;
  private readonly restartTimes: number[] = [];
  private backoffTimer: Timer | undefined;
  private hangTimer: Timer | undefined;
  private readyTimer: Timer | undefined;
  /** The spares' launch, SPARE_DELAY_MS after READY. */
  private spareTimer: Timer | undefined;
  private lastProgress = 0;
  private lastHangCheck = 0;
  private lastBeat: Heartbeat | undefined;
  private readonly o: Required<
    Omit<
      SupervisorOptions,
      | 'entry'
      | 'entryArgs'
      | 'deviceEntry'
      | 'deviceEntryArgs'
      | 'deviceClock'
      | 'ring'
      | 'net'
      | 'bind'
      | 'pollIdleMs'
      | 'clock'
      | 'launcher'
      | 'campaign'
      | 'spares'
    >
  > &
    Pick<SupervisorOptions, 'entry' | 'entryArgs' | 'deviceEntry' | 'deviceEntryArgs' | 'launcher'> & { pollMs: number; deviceClock: Timers };
  private stopRequested = false;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  lastHeartbeat: Heartbeat | undefined;
  /** Whether spares are kept (SupervisorOptions.spares). */
  readonly spares: boolean;
  /** The spare container and device process waiting, if any (spare.ts). */
  private spareDriver: Spare | undefined;
  private spareDevice: Spare | undefined;
  /** Restarts that a spare container took over. */
  spareTakeovers = 0;
  /** uid the device processes run as (-1 before the first). */
  private deviceUid = -1;
  readonly createdAt: number;
  startedAt = 0;

  constructor(policy: Policy, options: SupervisorOptions = {}) {
    super();
    this.campaignInjection = options.campaign;
    this.campaign = options.campaign !== undefined;
    this.policy = policy;
    this.clock = options.clock ?? realTimers;
    this.createdAt = this.clock.wall();
    this.o = {
      sys: options.sys ?? defaultSys(),
      entry: options.entry,
      entryArgs: options.entryArgs,
      launcher: options.launcher,
      heartbeatMs: options.heartbeatMs ?? 500,
      helloTimeoutMs: options.helloTimeoutMs ?? 20_000,
      readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
      hangMs: options.hangMs ?? 5_000,
      registerTimeoutMs: options.registerTimeoutMs ?? 2_000,
      deviceEntry: options.deviceEntry,
      deviceEntryArgs: options.deviceEntryArgs,
      deviceHeartbeatMs: options.deviceHeartbeatMs ?? 250,
      deviceClock: options.deviceClock ?? realTimers,
      pollMs: 0,
    };
    this.spares = options.spares ?? policy.restart.spare;
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    // A policy that names its identity keeps it, if no other sandbox holds it.
    if (root && policy.container.uid !== undefined && policy.container.gid !== undefined)
      launchHost().identities.pin(policy.name, 'driver', { uid: policy.container.uid, gid: policy.container.gid });
    this.credentials = root
      ? { uid: policy.container.uid ?? -1, gid: policy.container.gid ?? -1, asPolicy: true, missing: [] }
      : { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1, asPolicy: false, missing: [] };
    this.driver = driverRef(policy);
    this.device =
      'sim' in policy.device
        ? new SimDevice(policy, this.o.sys)
        : new VfioDevice(policy, this.o.sys, { bind: options.bind === true || ('bind' in policy.device && policy.device.bind) });
    this.sim = this.device instanceof SimDevice ? this.device : undefined;
    if (this.device instanceof VfioDevice) for (const w of this.device.warnings) this.event('log', w, 'warn');
    try {
      this.kind = this.driverKind();
      const lb = policy.linkback;
      this.o.pollMs = options.pollIdleMs ?? (lb && 'nbd' in lb ? lb.nbd.poll : 0);
      const host: ServiceHost = {
        name: policy.name,
        policy,
        device: this.device,
        sys: this.o.sys,
        clock: this.clock,
        violation: (reason) => {
          if (this.current && !this.current.exited && !this.stopRequested) this.violation(reason, true);
        },
      };
      this.service = SERVICES[this.kind](host, {
        ...(options.ring ? { ring: options.ring } : {}),
        ...(options.net ? { net: options.net } : {}),
        pollIdleMs: this.o.pollMs,
      });
    } catch (e) {
      this.device.release();
      throw e;
    }
    // The device process reports the simulated IOMMU's refusals; on VFIO a KmsgFaultMonitor calls onFault.
    this.sim?.onDeviceFault((f) => {
      if (f.device !== this.device.address) return;
      this.onFault({
        device: f.device,
        iova: f.iova,
        access: f.access,
        reason: `${f.vtdReason === null ? f.reason : `${f.reason} (VT-d reason 0x${f.vtdReason.toString(16).padStart(2, '0')})`}${f.suppressed > 0 ? ` (${f.suppressed} more not reported)` : ''}`,
        source: 'sim',
        iommu: f.vtdReason !== null,
      });
    });
    this.device.onDeviceError((cause) => this.onDeviceError(cause));
  }

  /** Errors the device signalled on its error interrupt (AER on VFIO, the simulated function's on the simulator). */
  get deviceErrors(): number {
    return this.device.deviceErrors;
  }

  /**
   * The device signalled an error (vfio-pci's error interrupt after the kernel's AER recovery, or
   * the simulated function's): what the device did since its last reset can no longer be trusted,
   * and neither can the driver's view of it. The container is killed; its exit quarantines (bus
   * mastering off, function-level reset), restarts with the policy's backoff and replays the I/O in
   * flight, as after a crash, and counts against restart.maxRestarts, so a device that keeps
   * failing ends as failed rather than in a restart loop. With no container running (backoff,
   * quarantine, stop) the error is counted and logged only: the next start follows a reset anyway.
   */
  private onDeviceError(cause: string): void {
    const running = this.current !== undefined && !this.current.exited && !this.stopRequested;
    this.event('device-error', `device error: ${cause}${running ? '' : ` (state ${this.state}: counted only)`}`, 'error');
    if (running) this.kill(`device error (${cause})`);
  }

  /** The kind of the driver, which must be the device's when both say. */
  private driverKind(): DriverKind {
    const wanted = this.device.driverKind();
    const declared = this.driver.kind;
    if (declared && wanted && declared !== wanted) {
      throw new SandboxError(
        'ERR_SANDBOX_DRIVER',
        `policy ${this.policy.name}: driver ${this.driver.label} is a ${declared} driver, and ${this.device.description} needs a ${wanted} driver`,
        {
          fix: 'name a driver for this device',
        },
      );
    }
    const kind = declared ?? wanted;
    if (!kind) {
      throw new SandboxError(
        'ERR_SANDBOX_DEVICE',
        `policy ${this.policy.name}: ${this.device.description} is neither a storage nor a network device (PCI class), so no driver kind serves it`,
        {
          fix: 'sandbox a disk (PCI class 01h) or a NIC (02h)',
        },
      );
    }
    return kind;
  }

  /** The block service's request client. Throws ERR_SANDBOX_STATE for a sandbox of another kind. */
  get block(): SandboxBlockClient {
    if (this.service instanceof BlockService) return this.service.client;
    throw new SandboxError('ERR_SANDBOX_STATE', `sandbox ${this.policy.name} runs a ${this.kind} driver: it has no block service`);
  }

  /** The net service's NIC port (a NIC driver's packet rings), or undefined for a sandbox of another kind. */
  get nic(): SandboxNicPort | undefined {
    return this.service instanceof NetService ? this.service.port : undefined;
  }

  /** The block service's hybrid poller, when it polls. */
  get poller(): HybridPoller | undefined {
    return this.service instanceof BlockService ? this.service.poller : undefined;
  }

  /** Faults seen (IOMMU refusals and others), the last 100 kept. */
  faultCount = 0;
  /** Faults by kind since the sandbox was made (faults.ts faultKind), for the metrics endpoint. */
  readonly faultsByKind = new Map<string, number>();
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
    const kind = faultKind(f);
    this.faultsByKind.set(kind, (this.faultsByKind.get(kind) ?? 0) + 1);
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
  /** The live container's cgroup folder, when it has one. */
  get cgroup(): string | undefined {
    return this.current?.exited === false ? this.current.launched?.cgroup : undefined;
  }

  private event(kind: SandboxEvent['kind'], text: string, level: SandboxEvent['level'] = 'info'): void {
    const e: SandboxEvent = { time: this.clock.wall(), sandbox: this.policy.name, kind, text, level };
    this.events.push(e);
    if (this.events.length > 1000) this.events.shift();
    this.emit('event', e);
  }

  /**
   * Read the driver's code, then start the first container. Resolves when it is ready; rejects if
   * the sandbox fails first (a driver whose code cannot be read fails it at once).
   */
  async start(): Promise<void> {
    if (this.code === undefined) {
      try {
        this.code = await bundleDriver(this.driver);
        if (this.campaignInjection) this.campaignCode = await bundleDriver(this.driver, this.campaignInjection);
      } catch (e) {
        this.markFailed((e as Error).message.split('\n')[0]!);
        throw e;
      }
    }
    if (this.state !== 'starting' || this.current || this.stopRequested) return this.ready();
    this.spawn();
    return this.ready();
  }

  /** Resolves the next time the sandbox is serving (now, if it is). */
  ready(): Promise<void> {
    if (this.state === 'running') return Promise.resolve();
    if (this.state === 'failed' || this.state === 'stopped') return Promise.reject(this.failure());
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  private failure(): SandboxError {
    return new SandboxError('ERR_SANDBOX_FAILED', `sandbox ${this.policy.name}: the device is ${this.state} after ${this.restarts} restart(s)`, {
      fix: 'see the sandbox events (dmabox status) for why its containers died',
    });
  }

  /**
   * Spares for the next restart, launched once this sandbox serves (so they never compete with a
   * bring-up): a container, and a device process on the simulator. One of each at most; one that
   * died is replaced. Test programs (`entry`, `deviceEntry`) get none.
   */
  private prepareSpares(): void {
    if (!this.spares || this.stopRequested) return;
    const launcher = this.o.launcher ?? directLauncher;
    const fresh = (s: Spare | undefined): boolean => s === undefined || s.exited || s.taken;
    try {
      if (!this.o.entry && fresh(this.spareDriver)) {
        // Prepared (confined, the driver's code evaluated) unless the policy runs its containers unconfined.
        const profile = containerProfile(this.policy);
        const prepare = profile !== 'none' && this.code !== undefined ? { profile, code: this.code } : undefined;
        this.spareDriver = new Spare(this.o.sys, launcher, containerSpec(this.policy), prepare);
      }
      if (this.sim && !this.o.deviceEntry && fresh(this.spareDevice)) this.spareDevice = new Spare(this.o.sys, launcher, this.sim.spareSpec());
    } catch (e) {
      this.event('log', `no spare: ${(e as Error).message.split('\n')[0]}`, 'warn');
    }
  }

  /** The spares that can take over now, taken (checked for this sandbox, role and identity); the others are left or killed. */
  private takeSpares(): { driver?: TakenSpare; device?: TakenSpare } | undefined {
    if (!this.spares) return undefined;
    const take = (s: Spare | undefined, role: 'driver' | 'device', uid: number): TakenSpare | undefined => {
      if (!s?.usable) return undefined;
      try {
        return s.take(this.policy.name, role, uid);
      } catch (e) {
        s.kill();
        this.event('log', `spare ${role} not used: ${(e as Error).message}`, 'warn');
        return undefined;
      }
    };
    const driver = take(this.spareDriver, 'driver', this.credentials.asPolicy ? this.credentials.uid : -1);
    const device = take(this.spareDevice, 'device', this.deviceUid);
    if (driver) this.spareDriver = undefined;
    if (device) this.spareDevice = undefined;
    if (!driver && !device) return undefined;
    if (driver) this.spareTakeovers++;
    this.event(
      'log',
      `spare ${[driver ? `container pid ${driver.launched.pid}` : '', device ? `device process pid ${device.launched.pid}` : ''].filter(Boolean).join(' and ')} taking over`,
    );
    return { ...(driver ? { driver } : {}), ...(device ? { device } : {}) };
  }

  private killSpares(): void {
    this.clock.clearTimeout(this.spareTimer);
    this.spareDriver?.kill();
    this.spareDevice?.kill();
    this.spareDriver = this.spareDevice = undefined;
  }

  private spawn(): void {
    this.state = 'starting';
    this.lastBeat = undefined;
    let inc: Incarnation;
    const spare = this.takeSpares();
    try {
      inc = new Incarnation({
        ...(spare ? { spare } : {}),
        policy: this.policy,
        device: this.device,
        services: [this.service],
        driver: { kind: this.kind, label: this.driver.label, code: this.spawns++ === 0 && this.campaignCode ? this.campaignCode : this.code! },
        sys: this.o.sys,
        ...(this.o.entry ? { entry: this.o.entry } : {}),
        ...(this.o.entryArgs ? { entryArgs: this.o.entryArgs } : {}),
        ...(this.o.launcher ? { launcher: this.o.launcher } : {}),
        ...(this.o.deviceEntry ? { deviceEntry: this.o.deviceEntry } : {}),
        ...(this.o.deviceEntryArgs ? { deviceEntryArgs: this.o.deviceEntryArgs } : {}),
        deviceHeartbeatMs: this.o.deviceHeartbeatMs,
        deviceClock: this.o.deviceClock,
        deviceReadyTimeoutMs: this.o.readyTimeoutMs,
        pollMs: this.o.pollMs,
        heartbeatMs: this.o.heartbeatMs,
        helloTimeoutMs: this.o.helloTimeoutMs,
        registerTimeoutMs: this.o.registerTimeoutMs,
        clock: this.clock,
        hooks: {
          log: (level, text) => this.event('log', text, LEVEL[level]),
          heartbeat: (h) => this.heartbeat(h),
          fault: (f) => this.driverFault(f),
          ready: () => this.onReady(inc),
          violation: (reason, kill) => {
            if (this.current === inc && !inc.exited && !this.stopRequested) this.violation(reason, kill);
          },
          gone: (reason) => {
            if (this.current === inc && !inc.exited && !this.stopRequested) this.kill(`its hypercall channel closed (${reason})`);
          },
          deviceLaunched: (l) => {
            this.deviceUid = l.uid;
            if (this.current !== inc) return;
            this.event(
              'device',
              `device process pid ${l.pid} as uid ${l.uid} gid ${l.gid}${this.policy.unconfined ? ' UNCONFINED' : ''}${l.cgroup ? `, cgroup ${l.cgroup}` : ''}`,
            );
            for (const m of l.missing) this.event('log', `DEVICE PROCESS CONFINEMENT MISSING: ${m}`, 'warn');
          },
          deviceFailed: (reason) => {
            if (this.current !== inc || inc.exited) return;
            this.event('device', `the device process failed: ${reason}`, 'error');
            if (!this.stopRequested) this.kill('its device failed');
          },
          launched: (l) => this.onLaunched(inc, l),
          exit: (code, signal, oom) => this.onExit(inc, code, signal, oom),
        },
      });
    } catch (e) {
      spare?.driver?.launched.kill('SIGKILL');
      spare?.device?.launched.kill('SIGKILL');
      // Nothing could be made for a container (fds, memory): as a crash, so backoff and the limit apply.
      this.event('exit', `no container could be made: ${(e as Error).message.split('\n')[0]}`, 'error');
      this.afterContainer();
      return;
    }
    this.current = inc;
    this.startedAt = this.clock.wall();
    this.readyTimer = this.clock.setTimeout(
      () =>
        this.confirm(() => {
          if (this.current === inc && this.state === 'starting') this.kill(`no READY within ${this.o.readyTimeoutMs} ms`);
        }),
      this.o.readyTimeoutMs,
    );
  }

  private onLaunched(inc: Incarnation, l: Launched): void {
    if (this.current !== inc) return;
    Object.assign(this.credentials, { uid: l.uid, gid: l.gid, missing: l.missing });
    this.event(
      'spawn',
      `container pid ${l.pid} as uid ${l.uid} gid ${l.gid}${this.credentials.asPolicy ? '' : ' (the invoking user: the manager is not root)'}, driver ${this.driver.label} (${this.kind})${this.policy.unconfined ? ' UNCONFINED' : ''}${l.cgroup ? `, cgroup ${l.cgroup}` : ''}`,
    );
    for (const m of l.missing) this.event('log', `CONFINEMENT MISSING: ${m}`, 'warn');
  }

  /**
   * Run a verdict one event-loop turn later: a timer runs before the loop reads pending input, so
   * after a stall of the manager's own loop the container's READY, heartbeats or completions may be
   * waiting unread. The verdict re-checks its condition then.
   */
  private confirm(verdict: () => void): void {
    this.clock.setTimeout(verdict, 1);
  }

  private onReady(inc: Incarnation): void {
    if (this.current !== inc || this.state !== 'starting') return;
    this.clock.clearTimeout(this.readyTimer);
    let line: string;
    try {
      line = this.service.attach();
    } catch (e) {
      this.kill(`ready with a bad ${this.kind} service: ${(e as Error).message.split('\n')[0]}`);
      return;
    }
    if (this.current !== inc || inc.killed) return; // the service refused what the container published
    this.state = 'running';
    this.lastProgress = this.clock.now();
    this.lastHangCheck = this.lastProgress;
    this.event('ready', line);
    // The spares a little after READY, not at it: a spare's launch and start-up (a Node process
    // evaluating the driver's code) would otherwise take the two cores from the replay and the
    // first requests of the container that just became ready.
    this.clock.clearTimeout(this.spareTimer);
    this.spareTimer = this.spares ? this.clock.setTimeout(() => this.prepareSpares(), SPARE_DELAY_MS) : undefined;
    const period = Math.max(50, Math.floor(this.o.hangMs / 4));
    this.hangTimer = this.clock.setInterval(() => this.checkHang(period), period);
    this.hangTimer.unref();
    const w = this.readyWaiters;
    this.readyWaiters = [];
    for (const r of w) r.resolve();
  }

  private heartbeat(h: Heartbeat): void {
    const b = this.lastBeat;
    if (!b || h.completed !== b.completed || h.errors !== b.errors || h.bytes !== b.bytes) this.lastProgress = this.clock.now();
    this.lastBeat = h;
    this.lastHeartbeat = h;
  }

  /** Hang: work pending and no progress for hangMs, seen by two checks an event-loop turn apart. */
  private checkHang(period: number): void {
    const now = this.clock.now();
    const late = now - this.lastHangCheck > 2 * period;
    this.lastHangCheck = now;
    // A check that ran late found the manager's own loop stalled: the container's progress may be
    // unread yet. Judge on the next check.
    if (late) return;
    const hung = (): number => {
      const p = this.service.progress();
      if (this.state !== 'running' || p.pending === 0) return -1;
      const since = this.clock.now() - Math.max(this.lastProgress, p.lastProgress);
      return since > this.o.hangMs ? since : -1;
    };
    if (hung() < 0) return;
    const inc = this.current;
    this.confirm(() => {
      const since = hung();
      if (since < 0 || this.current !== inc) return;
      this.event('hang', `${this.service.progress().pending} request(s) pending and no progress for ${Math.round(since)} ms`, 'warn');
      this.kill('hung');
    });
  }

  private driverFault(f: FaultReport): void {
    this.event(
      'driver-fault',
      `the driver reports fault kind ${f.kind} code ${f.code} (${FAULT_KIND[f.kind] ?? 'unknown'}) iova 0x${f.iova.toString(16)}`,
      'warn',
    );
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

  private onExit(inc: Incarnation, code: number | null, signal: NodeJS.Signals | null, oom = false): void {
    if (this.current !== inc) return;
    this.clock.clearTimeout(this.readyTimer);
    this.clock.clearInterval(this.hangTimer);
    const kept = this.service.detach();
    inc.dispose();
    this.current = undefined;
    const how = signal ? `killed by ${signal}` : `exited with ${code}`;
    const oomText = oom ? ` (OOM: its cgroup's memory limit of ${this.policy.container.memory} bytes was reached)` : '';
    this.event('exit', `container pid ${inc.pid} ${how}${oomText}${kept}`, this.stopRequested ? 'info' : 'warn');
    if (code === EXIT.CONFIG && !this.stopRequested) {
      this.quarantine();
      this.markFailed('the driver cannot start on this device (its container exited with EXIT_CONFIG; the log above says why)');
      return;
    }
    this.afterContainer();
  }

  private quarantine(): void {
    this.device.quarantine();
    this.state = 'quarantined';
    this.event('quarantine', 'bus mastering off, function-level reset done');
  }

  /** After a container's end (or a failed spawn): quarantine, then restart with backoff, or fail. */
  private afterContainer(): void {
    // Quarantine before anything else touches the windows.
    this.quarantine();
    if (this.stopRequested) return this.finishStop();
    this.crashes++;
    const now = this.clock.now();
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
    this.backoffTimer = this.clock.setTimeout(() => {
      this.backoffTimer = undefined;
      if (this.stopRequested || this.state !== 'backoff') return;
      this.restarts++;
      const go = (): void => {
        if (!this.stopRequested && this.state === 'backoff') this.spawn();
      };
      // A simulated device: the old device process answered its quarantine (bus mastering off) or
      // is gone (bounded by its deadline) before a new one maps the windows; with a short backoff
      // that is not yet so.
      if (this.sim) void this.sim.quiesced().then(go);
      else go();
    }, delay);
  }

  private markFailed(why: string): void {
    if (this.state === 'failed' || this.state === 'stopped') return;
    this.state = 'failed';
    this.clock.clearTimeout(this.backoffTimer);
    this.killSpares();
    this.event('failed', `device marked failed: ${why}`, 'error');
    const err = new SandboxError('ERR_SANDBOX_FAILED', `sandbox ${this.policy.name}: device marked failed: ${why}`, {
      fix: 'see the sandbox events for why its containers died; fix the cause and start the sandbox again',
    });
    this.service.fail(err);
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
      this.restartTimes.fill(this.clock.now());
      if (this.current && !this.current.exited) this.kill('IOMMU fault (policy: stop)');
      else if (this.state !== 'failed' && this.state !== 'stopped') this.markFailed('IOMMU fault (policy: stop)');
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
    this.killSpares();
    this.clock.clearTimeout(this.backoffTimer);
    this.clock.clearTimeout(this.readyTimer);
    this.clock.clearInterval(this.hangTimer);
    const inc = this.current;
    this.state = 'stopping';
    if (inc && !inc.exited) {
      const done = new Promise<void>((r) => {
        this.stopResolve = r;
      });
      inc.host.shutdown(deadlineMs, ShutdownReason.STOP).catch(() => undefined);
      const t = this.clock.setTimeout(() => inc.kill('SIGKILL'), deadlineMs + 500);
      await done;
      this.clock.clearTimeout(t);
    } else {
      this.finishStop();
    }
  }

  private finishStop(): void {
    if (this.state === 'stopped' || this.finishing) return;
    // A simulated device's quarantine is a request to its device process: wait for it (bounded) before the windows go.
    if (this.sim) {
      this.finishing = true;
      void this.sim.settled().then(() => {
        this.finishing = false;
        this.finishStopNow();
      });
      return;
    }
    this.finishStopNow();
  }

  private finishing = false;

  private finishStopNow(): void {
    if (this.state === 'stopped') return;
    this.device.release();
    this.state = 'stopped';
    this.service.fail(new SandboxError('ERR_SANDBOX_STOPPED', `sandbox ${this.policy.name} was stopped`));
    this.service.close();
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
      driver: this.driver.label,
      kind: this.kind,
      pid: this.pid ?? null,
      uid: this.credentials.uid,
      gid: this.credentials.gid,
      uidFromPolicy: this.credentials.asPolicy,
      cgroup: this.current?.launched?.cgroup ?? null,
      confinementMissing: this.credentials.missing,
      unconfined: this.policy.unconfined,
      uptimeMs: inc && !inc.exited ? this.clock.wall() - inc.startedAt : 0,
      restarts: this.restarts,
      crashes: this.crashes,
      violations: this.violations,
      deviceErrors: this.deviceErrors,
      faults: this.faultCount,
      lastFault: this.faults.length > 0 ? describeFault(this.faults[this.faults.length - 1]!) : null,
      windows: this.device.grants.map((g) => ({
        label: g.label,
        iova: `0x${g.window.iova.toString(16)}`,
        size: g.window.size,
        access: g.perm.read && g.perm.write ? 'read-write' : g.perm.read ? 'read' : 'write',
      })),
      deviceProcess: this.sim?.processStatus(this.clock) ?? null,
      spares: this.spares
        ? {
            container: this.spareDriver?.usable ? this.spareDriver.launched!.pid : null,
            deviceProcess: this.spareDevice?.usable ? this.spareDevice.launched!.pid : null,
            takeovers: this.spareTakeovers,
          }
        : null,
      heartbeat: this.lastHeartbeat ? { completed: Number(this.lastHeartbeat.completed), inflight: this.lastHeartbeat.inflight } : null,
      ...this.service.status(),
    };
  }
}
