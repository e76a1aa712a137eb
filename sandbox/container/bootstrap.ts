/**
 * The steps every driver container takes around its driver, whatever its kind (run.ts puts them in
 * order): the hypercall endpoint on fd 3 with SHUTDOWN and QUIESCE wired to the service, the boot
 * parameters fetched by key (GETPARAM), every granted window mapped from its inherited memfd, the
 * MSI-X eventfds, the device's Platform (the register mailbox for a simulated device, the inherited
 * device fd on VFIO), confinement and its check, and the start-failure report.
 */
import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { Device } from 'vfio-bindings';
import { MAP_SHARED, PROT_READ, PROT_WRITE, type Sys } from 'linux-sys';
import type { Platform } from '../../drivers/contract/platform.js';
import { LogLevel } from '../abi/hypercall/index.js';
import { BootParams, EXIT, FD, PARAM } from '../abi/boot.js';
import { GuestEndpoint } from './hypercall/guest.js';
import { confine } from '../seccomp/confine.js';
import { mapShared } from '../abi/shm.js';
import { GuestMailbox } from './mailbox.js';
import { GrantAllocator, type Grant } from './dma.js';
import { ContainerError, CONFIG_CODES } from './errors.js';
import { ContainerPlatform } from './platform.js';
import { VfioContainerPlatform } from './vfio-platform.js';

// linux/prctl.h
const PR_GET_DUMPABLE = 3;
const PR_SET_DUMPABLE = 4;

/**
 * Not dumpable, first of all, before anything is mapped: /proc/PID/{mem,fd,maps,environ} then
 * belong to root, so no other process of the container's uid (another container sharing it, a
 * debug sandbox, anything running as that user) can open its memory or its window memfds, and it
 * leaves no core. Checked like no_new_privs: read back with PR_GET_DUMPABLE (/proc/self/status has
 * no line for it). An exec resets the flag; the container never execs (its filter kills execve).
 */
export function undumpable(sys: Sys): void {
  try {
    sys.prctl(PR_SET_DUMPABLE, 0);
  } catch (e) {
    throw new ContainerError('ERR_CONTAINER_DUMPABLE', 'could not clear the dumpable flag (prctl PR_SET_DUMPABLE 0)', { cause: e });
  }
  if (sys.prctl(PR_GET_DUMPABLE, 0) !== 0) {
    throw new ContainerError('ERR_CONTAINER_DUMPABLE', 'the dumpable flag did not stay cleared: the container refuses to run with its memory open to its uid', {
      fix: 'a kernel without prctl(PR_SET_DUMPABLE) cannot host a container',
    });
  }
}

/** What the manager may ask of the service the container runs. */
export interface ContainerLifecycle {
  /** Take no more requests; resolve with how many are still in flight (0 when drained). */
  quiesce(): Promise<number>;
  /** Quiesce, then close the driver (the process exits after). */
  shutdown(): Promise<void>;
}

export interface Bootstrap {
  guest: GuestEndpoint;
  /** To the manager's log (the hypercall LOG), or stderr when the channel is gone. */
  log(level: LogLevel, text: string): void;
}

/** The hypercall endpoint on fd 3, saying HELLO as `name`; a lost channel ends the process (the manager restarts it). */
export function openEndpoint(name: string, service: () => ContainerLifecycle | undefined): Bootstrap {
  const sock = new Socket({ fd: FD.HYPERCALL, readable: true, writable: true });
  const guest = new GuestEndpoint(sock, {
    name,
    timeoutMs: 10_000,
    handler: {
      shutdown: async () => {
        await service()?.shutdown();
        setImmediate(() => process.exit(EXIT.OK));
      },
      quiesce: async () => (await service()?.quiesce()) ?? 0,
    },
    onViolation: (e) => {
      if (e.decision === 'kill') {
        process.stderr.write(`container ${name}: hypercall channel lost (${e.code}): exiting\n`);
        process.exit(EXIT.CHANNEL_LOST);
      }
    },
  });
  const log = (level: LogLevel, text: string): void => {
    try {
      guest.log(level, text);
    } catch {
      process.stderr.write(`${text}\n`);
    }
  };
  return { guest, log };
}

/** Every boot parameter this container knows, fetched by key (the manager answers NOT_FOUND for those it has none of). */
export async function fetchParams(guest: GuestEndpoint): Promise<BootParams> {
  const keys = Object.values(PARAM);
  const values = await Promise.all(guest.batch(() => keys.map((k) => guest.getParam(k))));
  const map = new Map<string, string>();
  keys.forEach((k, i) => {
    if (values[i] !== undefined) map.set(k, values[i]!);
  });
  return new BootParams(map);
}

/** Every granted window mapped from its inherited memfd (MAP_WINDOW), after HELLO. */
export async function mapGrants(guest: GuestEndpoint, sys: Sys): Promise<Grant[]> {
  const grants: Grant[] = [];
  // Asked all at once (one write, one round trip), mapped in order.
  const ids = Array.from({ length: guest.session!.windowCount }, (_, id) => id);
  const mappings = await Promise.all(guest.batch(() => ids.map((id) => guest.mapWindow(id))));
  for (const [id, m] of mappings.entries()) {
    const length = Number(m.length);
    const addr = sys.mmap(0n, length, PROT_READ | PROT_WRITE, MAP_SHARED, m.fdSlot, m.offset);
    grants.push({ id, iova: m.iova, size: length, perm: { read: m.deviceRead, write: m.deviceWrite }, bytes: new Uint8Array(sys.view(addr, length)) });
  }
  return grants;
}

/** The MSI-X eventfds the manager made for this container (IRQ_SETUP), none when the driver polls. */
export async function msixFds(guest: GuestEndpoint, params: BootParams): Promise<number[]> {
  const vectors = params.int(PARAM.IRQ_VECTORS, 0, 2048);
  if (params.text(PARAM.DRIVER_INTERRUPTS) !== 'msix' || vectors === 0) return [];
  const g = await guest.irqSetup('msix', vectors);
  return Array.from({ length: g.granted }, (_, i) => g.firstFdSlot + i);
}

/** The device as the driver sees it: the inherited VFIO device fd, or the register mailbox. */
export function devicePlatform(params: BootParams, sys: Sys, dma: GrantAllocator, irqFds: number[]): Platform {
  const name = `sandbox:${params.text(PARAM.SANDBOX_NAME)}`;
  if (params.oneOf(PARAM.DEVICE_KIND, ['sim', 'vfio'] as const) === 'vfio') {
    // Real VFIO: the inherited device fd, nothing else (no container, no group).
    const platform = new VfioContainerPlatform(name, Device.fromFd(params.fd(PARAM.DEVICE_FD), { sys, name }), dma, sys, irqFds);
    platform.config.read16(0); // region info fetched now: an ioctl, fine after confine, but keep set-up first
    return platform;
  }
  const mailbox = new GuestMailbox(
    sys,
    mapShared(sys, params.fd(PARAM.MAILBOX_FD), params.int(PARAM.MAILBOX_BYTES, 4096, 1 << 20)),
    params.fd(PARAM.MAILBOX_KICK_FD),
    {
      timeoutMs: params.int(PARAM.REGISTER_TIMEOUT_MS, 1, 600_000),
    },
  );
  return new ContainerPlatform({
    name,
    sys,
    mailbox,
    bars: params.ints(PARAM.DEVICE_BARS, 6, 0, 2 ** 40),
    irqCounts: { msix: params.int(PARAM.DEVICE_IRQ_MSIX, 0, 2048), intx: params.int(PARAM.DEVICE_IRQ_INTX, 0, 1) },
    irqFds,
    dma,
  });
}

/**
 * no_new_privs and the policy's seccomp filter, then the check: opening the VFIO container device
 * must now be refused by the filter (EPERM), not merely fail for lack of the file. A container
 * that could open it refuses to run. Every module the container needs must be loaded before; the
 * driver's code is evaluated after (loader.ts).
 */
export function confineChecked(params: BootParams, sys: Sys, log: Bootstrap['log']): void {
  const profile = params.text(PARAM.SECCOMP);
  if (profile === 'none') return;
  log(LogLevel.INFO, confineWith(profile, sys));
}

/** confineChecked's work for a named profile: confined and checked, or a throw. Returns the line that says so. */
export function confineWith(profile: string, sys: Sys): string {
  confine(profile, sys);
  try {
    closeSync(openSync('/dev/vfio/vfio', 'r'));
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== 'EPERM' && code !== 'EACCES') throw e;
    return `confined (seccomp '${profile}', no_new_privs): open of /dev/vfio/vfio refused with ${code}`;
  }
  throw new ContainerError('ERR_CONTAINER_CONFINE', 'confinement check failed: /dev/vfio/vfio could be opened after confine()', {
    fix: 'the kernel must support seccomp filters (CONFIG_SECCOMP_FILTER); the container refuses to run unconfined',
  });
}

/**
 * A start that failed: say why to the manager and on stderr, then exit: EXIT_CONFIG when the
 * driver cannot start on this device at all (the manager fails it), else START_FAILED (it restarts).
 */
export function startFailed(name: string, log: Bootstrap['log']): (e: unknown) => void {
  return (e) => {
    const err = e as Error & { code?: string };
    log(LogLevel.ERROR, `start failed: ${err.code ?? ''} ${err.message}`);
    process.stderr.write(`container ${name}: ${err.stack ?? err.message}\n`);
    const code = err.code !== undefined && CONFIG_CODES.has(err.code) ? EXIT.CONFIG : EXIT.START_FAILED;
    setTimeout(() => process.exit(code), 50);
  };
}
