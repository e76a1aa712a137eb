/**
 * The driver container: one driver in its own unprivileged process (entrypoint: main.ts). The same
 * steps for every driver, built-in or external, block or net:
 *
 *  (1) the driver's code read from fd 4 (not evaluated); the hypercall channel on fd 3, HELLO, and
 *      heartbeats from then on (zero counters until the service serves: a driver may take its
 *      time to bring the device up, bounded by the manager's ready timeout, not by its watchdog);
 *  (2) the boot parameters, by key (GETPARAM), and
 *  (3) MAP_WINDOW for every granted window, asked together with (2) in one write (one round trip),
 *      each window mmapped from its inherited memfd; then IRQ_SETUP for the interrupt eventfds;
 *  (4) the service of the driver's kind maps what the manager made for it (its rings); the
 *      device's Platform (register mailbox or VFIO device fd);
 *  (5) confine: no_new_privs and the seccomp filter, checked; from here on no open, no exec, no
 *      new fds of new kinds;
 *  (6) the driver's code evaluated (loader.ts: it may import only its own files) and checked
 *      against the contract; its start(ctx) on the Platform; the service serves the device it returns;
 *  (7) READY; the heartbeats carry the service's progress counters.
 * SHUTDOWN quiesces the service, closes the device and exits.
 *
 * A spare prepared ahead of need (prepare.ts) did (0), (5) and the evaluation of (6) before the takeover:
 * here it checks that the code handed on fd 4 is the code it evaluated (else evaluates the handed
 * code now) and that the sandbox still asks for the profile it is confined with.
 */
import { defaultSys } from 'linux-sys';
import type { DriverLogLevel, DriverModule } from '../../drivers/contract/driver.js';
import { LogLevel } from '../abi/hypercall/index.js';
import { FD, PARAM, SERVICE_NAMES, type BootParams } from '../abi/boot.js';
import type { GuestEndpoint } from './hypercall/guest.js';
import { confineChecked, devicePlatform, fetchParams, mapGrants, msixFds, openEndpoint, startFailed, undumpable } from './bootstrap.js';
import { GrantAllocator } from './dma.js';
import { checkDriver, loadDriver, readCodeBytes } from './loader.js';
import type { Prepared } from './prepare.js';
import { ContainerError } from './errors.js';
import { decodeCode, type CodeImage } from '../abi/code.js';
import { CONTAINER_SERVICES, type ContainerService } from './services/registry.js';

/** What a started container has, for test fixtures that misbehave on purpose after READY. */
export interface RunningContainer {
  guest: GuestEndpoint;
  params: BootParams;
  service: ContainerService;
  /** What the driver's start returned. */
  device: unknown;
  log(level: LogLevel, text: string): void;
}

const IDLE = { completed: 0n, errors: 0n, bytes: 0n, inflight: 0 };
const LEVELS: Record<DriverLogLevel, LogLevel> = { error: LogLevel.ERROR, warn: LogLevel.WARN, info: LogLevel.INFO, debug: LogLevel.DEBUG };

export function runContainer(afterReady?: (c: RunningContainer) => void, prepared?: Prepared): void {
  const sys = defaultSys();
  // (0) not dumpable, before anything is mapped: its memory is not open to its uid.
  if (!prepared) undumpable(sys);
  // (1) the code, read now (nothing of it runs before confinement); its name says HELLO.
  let image: CodeImage;
  let same = false;
  try {
    const bytes = readCodeBytes(FD.CODE);
    image = decodeCode(bytes);
    same = prepared !== undefined && Buffer.compare(bytes, prepared.bytes) === 0;
  } catch (e) {
    process.stderr.write(`dmabox container: ${(e as Error).message}\n  (this program is started by the dmabox manager, with the driver code on fd 4)\n`);
    process.exit(78);
  }
  let service: ContainerService | undefined;
  let serving = false;
  const { guest, log } = openEndpoint(image.name, () => service);

  async function start(): Promise<void> {
    await guest.hello();
    guest.startHeartbeats(() => (serving ? service!.heartbeat() : IDLE));
    // (2), (3)
    // Asked together: the parameters and the windows in one write, one round trip.
    const [params, grants] = await guest.batch(() => Promise.all([fetchParams(guest), mapGrants(guest, sys)]));
    const irqFds = await msixFds(guest, params);
    // (4) the service of the driver's kind, and the device.
    const kind = params.oneOf(PARAM.DRIVER_KIND, SERVICE_NAMES);
    const s = (service = CONTAINER_SERVICES[kind](sys, params, grants));
    const dma = new GrantAllocator(grants, s.reserved);
    const platform = devicePlatform(params, sys, dma, irqFds);
    // (5) confinement, checked (a prepared spare is confined already: with the profile asked for, or it stops here).
    if (prepared) {
      const wanted = params.text(PARAM.SECCOMP);
      if (wanted !== prepared.profile) {
        throw new ContainerError(
          'ERR_CONTAINER_CONFINE',
          `this spare was confined with seccomp profile '${prepared.profile}' and the sandbox asks for '${wanted}'`,
          {
            fix: 'nothing to do: the next container starts with the profile asked for',
          },
        );
      }
      log(LogLevel.INFO, `${prepared.confined} (a spare, before the takeover, where it evaluated the driver's code in ${prepared.evaluateMs.toFixed(1)} ms)`);
    } else confineChecked(params, sys, log);
    // (6) the driver: its code evaluated now (or by the prepared spare, when it is the same code), confined, then started.
    let driver: DriverModule;
    if (prepared && same) {
      if (!prepared.evaluated.ok) throw prepared.evaluated.error;
      driver = checkDriver(prepared.evaluated.driver, kind);
    } else {
      if (prepared) log(LogLevel.INFO, 'the driver code handed over is not the code this spare evaluated: evaluating it now');
      driver = await loadDriver(image, kind);
    }
    const options = {
      queues: params.int(PARAM.DRIVER_QUEUES, 1, 65535),
      depth: params.int(PARAM.DRIVER_DEPTH, 1, 65536),
      interrupts: params.oneOf(PARAM.DRIVER_INTERRUPTS, ['polling', 'msix'] as const),
    };
    const device = await driver.start({
      platform,
      options,
      service: s.driverParams() as never,
      log: (level, text) => log(LEVELS[level] ?? LogLevel.INFO, String(text)),
    });
    s.serve(device, guest);
    serving = true;
    // (7) serving.
    const describe = (device as { describe(): string }).describe();
    log(LogLevel.INFO, `${describe}${s.describe()}${params.text(PARAM.SECCOMP) === 'none' ? ', UNCONFINED' : ''}`);
    guest.ready(options.queues);
    afterReady?.({ guest, params, service: s, device, log });
  }

  start().catch(startFailed(image.name, log));
}
