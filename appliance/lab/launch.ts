/**
 * Booting the lab machine once to run one command in it: `launchLab(options)`.
 *
 * Makes a run folder (the guest's run channel: the command script, the NVMe disk images, the DMAR
 * trace, the exit status), starts QEMU, streams the serial console line by line with timestamps to
 * a log file (and to stderr or a callback when asked), enforces the timeout (QEMU is killed, the
 * error names the log and quotes its last lines), and returns the guest command's exit status with
 * the DMAR faults QEMU recorded. The run folder is removed afterwards; the log stays.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  copyFileSync,
  createWriteStream,
  existsSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { ApplianceError } from '../image/errors.js';
import { commandScript } from './command.js';
import { LineSplitter, decideOutcome, newConsoleState, readConsoleLine, stamp, type ConsoleState } from './console.js';
import { DMAR_TRACE_EVENT, parseDmarTrace, type DmarFault } from './dmar.js';
import { GUEST_RUN_DIR, TAG_HOSTROOT, TAG_RUN } from './init-script.js';
import { DEVICE_ERROR_SLOTS, labMac, placeDevices, qemuArgs, type Accel, type MachineSpec, type NicNet } from './machine.js';
import { QmpClient } from './qmp.js';
import { MonitorRelay, RELAY_DIR } from './relay.js';
import { labCacheDir, setupLab, type LabImage } from './setup.js';

export interface LabOptions {
  /** NVMe controllers, each with its own zero-filled raw disk of sizeMiB (sparse on the host). */
  nvme?: { sizeMiB: number }[];
  /** e1000e NICs on slirp or on a connected socket fd of this process. */
  e1000e?: { net: NicNet }[];
  /** The guest command, an argv (argv[0] looked up on the host's PATH as the guest sees it). */
  command: string[];
  /** Working directory in the guest (default: this process's, real path). */
  cwd?: string;
  /** Extra environment for the guest command. */
  env?: Record<string, string>;
  /** Kill QEMU after this long (default 10 minutes). */
  timeoutMs?: number;
  /** Record QEMU's vtd_dmar_fault trace and return its faults. */
  dmarTrace?: boolean;
  /** The console log (default .cache/lab/logs/lab-TIME.log). */
  logFile?: string;
  /** Also copy every console line to stderr. */
  echo?: boolean;
  /** Called with each console line (no timestamp). */
  onLine?: (line: string) => void;
  /** tcg (default: software emulation, what the lab is measured with) or kvm (see README: nested KVM
   *  failed on the development VM with `failed to set MSR 0x10a`, so it is opt-in only). */
  accel?: Accel;
  memMiB?: number;
  cpus?: number;
  /** Extra kernel command-line words (after console=ttyS0 panic=-1 intel_iommu=on rdinit=/init). */
  kernelArgs?: string[];
  /** An image from setupLab() (default: set up now, from the cache). */
  image?: LabImage;
  /** Keep the run folder (disk images, trace) for inspection. */
  keepRunDir?: boolean;
  /**
   * The device-error extras (machine.ts DeviceErrorSpec): a blkdebug NVMe with EIO at
   * BLKDEBUG_EIO's sectors, an e1000e behind a root port, and the monitor relay (relay.ts).
   */
  deviceErrors?: boolean;
}

/**
 * The blkdebug NVMe's disk and where its reads and writes fail with EIO (byte offsets: QEMU's
 * blkdebug counts 512-byte sectors; a request that covers the sector fails, every time).
 */
export const BLKDEBUG_DISK = { sizeMiB: 16, readErrorAt: 1 << 20, writeErrorAt: 2 << 20, serial: 'labeio' } as const;

/** The blkdebug rules (QEMU docs/devel/blkdebug.txt): read_aio/write_aio are the raw format's events. */
export function blkdebugConfig(): string {
  return [
    '[inject-error]',
    'event = "read_aio"',
    `sector = "${BLKDEBUG_DISK.readErrorAt / 512}"`,
    'errno = "5"',
    '',
    '[inject-error]',
    'event = "write_aio"',
    `sector = "${BLKDEBUG_DISK.writeErrorAt / 512}"`,
    'errno = "5"',
    '',
  ].join('\n');
}

export interface LabResult {
  /** The guest command's exit status. */
  status: number;
  logFile: string;
  /** Faults from QEMU's trace (empty unless dmarTrace). */
  dmarFaults: DmarFault[];
  /** A copy of the raw trace next to the log (LOG.dmar), when dmarTrace. */
  dmarTraceFile?: string;
  /** The devices, where the guest saw them, and their IOMMU groups. */
  devices: { kind: 'nvme' | 'e1000e'; index: number; bdf: string; group?: number }[];
  timings: { setupMs: number; initMs?: number; bootMs?: number; commandMs?: number; totalMs: number };
  accel: Accel;
}

const DEFAULT_TIMEOUT_MS = 600_000;
/** Host folders the guest's /init covers with tmpfs or its own mounts (init-script.ts). */
/** Folders the guest covers with its own file systems: a command's folder must not be under them... */
const GUEST_TMPFS = ['/tmp', '/run', '/dev', '/proc', '/sys'];
/** ...except these tmpfs ones, where /init binds the host folder back on top (`keep` in the run channel). */
const GUEST_KEEPABLE = ['/tmp', '/run'];
const KEEP_SAFE_PATH = /^\/[A-Za-z0-9._/+-]+$/;

/**
 * The host folders /init must bind back over the guest's tmpfs so the command finds its working
 * directory (a checkout under /tmp, as CI's clones may be). Throws when the folder can not be kept.
 */
export function guestKeepPaths(cwd: string): string[] {
  const hidden = GUEST_TMPFS.find((d) => cwd === d || cwd.startsWith(`${d}/`));
  if (!hidden) return [];
  const keepable =
    GUEST_KEEPABLE.includes(hidden) &&
    cwd !== hidden &&
    KEEP_SAFE_PATH.test(cwd) &&
    !cwd.split('/').includes('..') &&
    !(cwd === GUEST_RUN_DIR || cwd.startsWith(`${GUEST_RUN_DIR}/`));
  if (!keepable) {
    throw new ApplianceError(
      'ERR_LAB_OPTIONS',
      `the working directory ${cwd} is under ${hidden}, which the guest covers with its own file system: the command would not find it`,
      { fix: `run from a checkout outside ${GUEST_TMPFS.join(', ')} (a folder under /tmp or /run works if its path has only letters, digits and ._+-)` },
    );
  }
  return [cwd];
}
const TAIL_LINES = 25;
/** Default-folder logs kept (with their .dmar traces); older ones are removed at each launch. */
const LOGS_KEPT = 50;

/** Remove all but the newest `keep` lab logs (lab-TIME.log and LOG.dmar) in the default log folder. */
export function pruneLogs(dir: string, keep = LOGS_KEPT): void {
  if (!existsSync(dir)) return;
  const logs = readdirSync(dir)
    .filter((f) => /^lab-.*\.log$/.test(f))
    .sort(); // ISO time names sort by age
  for (const f of logs.slice(0, Math.max(0, logs.length - keep))) {
    rmSync(join(dir, f), { force: true });
    rmSync(join(dir, `${f}.dmar`), { force: true });
  }
}

/** Find a program on PATH, or undefined. */
export function which(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, program);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** QEMU trace events this binary knows (`-trace help`), asked once per QEMU path. */
const traceEvents = new Map<string, Set<string>>();
export function qemuTraceEvents(qemu: string): Set<string> {
  let known = traceEvents.get(qemu);
  if (!known) {
    const out = spawnSync(qemu, ['-trace', 'help'], { encoding: 'utf8', timeout: 30_000 });
    known = new Set(
      `${out.stdout ?? ''}`
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean),
    );
    traceEvents.set(qemu, known);
  }
  return known;
}

export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function validate(o: LabOptions): void {
  const bad = (msg: string, fix?: string) => new ApplianceError('ERR_LAB_OPTIONS', msg, fix ? { fix } : {});
  if (!Array.isArray(o.command) || o.command.length === 0 || o.command.some((a) => typeof a !== 'string')) {
    throw bad('the lab command must be a non-empty array of strings (program, then arguments)', "e.g. command: ['node', '-e', '1']");
  }
  for (const [i, n] of (o.nvme ?? []).entries()) {
    if (!Number.isInteger(n.sizeMiB) || n.sizeMiB < 1 || n.sizeMiB > 1 << 20)
      throw bad(`nvme[${i}].sizeMiB must be an integer from 1 to 1048576, got ${n.sizeMiB}`);
  }
  for (const [i, e] of (o.e1000e ?? []).entries()) {
    if (e.net !== 'slirp' && !(typeof e.net === 'object' && Number.isInteger(e.net.fd) && e.net.fd >= 0))
      throw bad(`e1000e[${i}].net must be 'slirp' or { fd: N } with an open socket fd`);
  }
  if (o.timeoutMs !== undefined && !(o.timeoutMs > 0)) throw bad(`timeoutMs must be positive, got ${o.timeoutMs}`);
}

/** Boot the lab, run the command, return its status. Throws ApplianceError on timeout, guest death or bad options. */
export async function launchLab(options: LabOptions): Promise<LabResult> {
  validate(options);
  const cwd = realpathSync(options.cwd ?? process.cwd());
  const keep = guestKeepPaths(cwd);
  const t0 = performance.now();
  const qemu = which('qemu-system-x86_64');
  if (!qemu) {
    throw new ApplianceError('ERR_LAB_QEMU_MISSING', 'qemu-system-x86_64 is not installed (or not on PATH)', {
      fix: 'as root: apt-get install qemu-system-x86  (or: npm run setup)',
    });
  }
  if (options.dmarTrace && !qemuTraceEvents(qemu).has(DMAR_TRACE_EVENT)) {
    throw new ApplianceError(
      'ERR_LAB_TRACE_UNSUPPORTED',
      `${qemu} has no trace event '${DMAR_TRACE_EVENT}' (\`${qemu} -trace help\`), so blocked DMA could not be counted`,
      { fix: 'use QEMU 7.2 or later built with the log trace back-end (Debian 12: qemu-system-x86), or run without DMAR tracing' },
    );
  }
  const image = options.image ?? (await setupLab());
  const setupMs = options.image ? 0 : performance.now() - t0;
  const accel: Accel = options.accel ?? 'tcg';
  if (accel === 'kvm' && !kvmUsable())
    throw new ApplianceError('ERR_LAB_OPTIONS', 'accel kvm asked for, but /dev/kvm cannot be opened for read and write', {
      fix: "use accel 'tcg' (the default)",
    });

  const runDir = mkdtempSync(join(tmpdir(), 'dmabox-lab-'));
  const logDir = join(labCacheDir(), 'logs');
  const logFile = options.logFile ?? join(logDir, `lab-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
  mkdirSync(dirname(logFile), { recursive: true });
  if (!options.logFile) pruneLogs(logDir, LOGS_KEPT - 1);

  const run = async () => {
    const nvme = (options.nvme ?? []).map((n, i) => {
      const image = join(runDir, `nvme${i}.img`);
      const fd = openSync(image, 'w');
      try {
        ftruncateSync(fd, n.sizeMiB * 1024 * 1024);
      } finally {
        closeSync(fd);
      }
      return { image, serial: `lab${i}` };
    });
    // Socket fds are handed to QEMU as fds 3, 4, ... in the order of the NICs that use them.
    const passFds: number[] = [];
    const e1000e = (options.e1000e ?? []).map((e, i) => {
      if (e.net === 'slirp') return { net: 'slirp' as const, mac: labMac(i) };
      passFds.push(e.net.fd);
      return { net: { fd: 2 + passFds.length }, mac: labMac(i) };
    });
    const placed = placeDevices(nvme.length, e1000e.length, options.deviceErrors === true);
    const traceHost = join(runDir, 'dmar.trace');
    const qmpSocket = join(runDir, 'qmp.sock');
    let relay: MonitorRelay | undefined;
    if (options.deviceErrors) {
      const img = join(runDir, 'blkdebug.img');
      const fd = openSync(img, 'w');
      try {
        ftruncateSync(fd, BLKDEBUG_DISK.sizeMiB * 1024 * 1024);
      } finally {
        closeSync(fd);
      }
      writeFileSync(join(runDir, 'blkdebug.conf'), blkdebugConfig());
      mkdirSync(join(runDir, RELAY_DIR));
      relay = new MonitorRelay(join(runDir, RELAY_DIR), () => QmpClient.connect(qmpSocket));
    }
    const spec: MachineSpec = {
      kernel: image.bootKernel,
      initrd: image.initrd,
      accel,
      memMiB: options.memMiB ?? 2048,
      cpus: options.cpus ?? 2,
      nvme,
      e1000e,
      append: options.kernelArgs ?? [],
      shares: [
        { tag: TAG_HOSTROOT, path: '/', readonly: true },
        { tag: TAG_RUN, path: runDir, readonly: false },
      ],
      ...(options.dmarTrace ? { dmarTraceFile: traceHost } : {}),
      ...(options.deviceErrors
        ? {
            deviceErrors: {
              blkdebugNvme: { image: join(runDir, 'blkdebug.img'), config: join(runDir, 'blkdebug.conf'), serial: BLKDEBUG_DISK.serial },
              aerE1000e: { net: 'slirp' as const, mac: labMac(0x20) },
              qmpSocket,
            },
          }
        : {}),
    };
    const args = qemuArgs(spec);

    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: '/tmp',
      TERM: 'dumb',
      LANG: 'C.UTF-8',
      DMABOX_LAB: '1',
      DMABOX_LAB_RUN: GUEST_RUN_DIR,
      DMABOX_LAB_NVME: placed
        .filter((p) => p.kind === 'nvme')
        .map((p) => p.bdf)
        .join(','),
      DMABOX_LAB_E1000E: placed
        .filter((p) => p.kind === 'e1000e')
        .map((p) => p.bdf)
        .join(','),
      ...(options.dmarTrace ? { DMABOX_LAB_DMAR_TRACE: `${GUEST_RUN_DIR}/dmar.trace` } : {}),
      ...(options.deviceErrors
        ? {
            DMABOX_LAB_BLKDEBUG_NVME: DEVICE_ERROR_SLOTS.blkdebugNvme.bdf,
            DMABOX_LAB_BLKDEBUG_EIO: `read@${BLKDEBUG_DISK.readErrorAt},write@${BLKDEBUG_DISK.writeErrorAt}`,
            DMABOX_LAB_AER_E1000E: DEVICE_ERROR_SLOTS.aerE1000e.bdf,
            DMABOX_LAB_RELAY: `${GUEST_RUN_DIR}/${RELAY_DIR}`,
          }
        : {}),
      ...options.env,
    };
    writeFileSync(join(runDir, 'cmd.sh'), commandScript({ argv: options.command, cwd, env }));
    if (keep.length) writeFileSync(join(runDir, 'keep'), keep.map((p) => `${p}\n`).join(''));
    if (options.dmarTrace) writeFileSync(traceHost, '');

    const log = createWriteStream(logFile);
    log.write(`# dmabox lab ${new Date().toISOString()} accel=${accel}\n# ${qemu} ${args.join(' ')}\n# command (cwd ${cwd}): ${options.command.join(' ')}\n`);
    const state: ConsoleState = newConsoleState();
    const tail: string[] = [];
    const qemuStart = performance.now();
    const emit = (line: string, prefix = ''): void => {
      const ms = performance.now() - qemuStart;
      const text = `${stamp(ms)} ${prefix}${line}`;
      log.write(`${text}\n`);
      tail.push(text);
      if (tail.length > TAIL_LINES) tail.shift();
      if (options.echo) process.stderr.write(`${prefix}${line}\n`);
      if (!prefix) {
        readConsoleLine(state, line, ms);
        options.onLine?.(line);
      }
    };

    const child = spawn(qemu, args, { stdio: ['pipe', 'pipe', 'pipe', ...passFds] });
    relay?.start();
    const out = new LineSplitter((l) => emit(l));
    const err = new LineSplitter((l) => emit(l, 'qemu: '));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => out.push(d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => err.push(d));
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    // If this process exits first (an uncaught error, process.exit), QEMU must not outlive it.
    const killOnExit = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', killOnExit);
    const exit = await new Promise<{ code: number | null; signal: string | null }>((resolve, reject) => {
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        relay?.stop();
        process.off('exit', killOnExit);
        reject(
          new ApplianceError('ERR_LAB_QEMU_MISSING', `${qemu} could not be started: ${e.code ?? e.message}`, {
            cause: e,
            fix: 'check that it is an executable QEMU (as root: apt-get install qemu-system-x86, or npm run setup)',
          }),
        );
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        process.off('exit', killOnExit);
        resolve({ code, signal });
      });
    });
    relay?.stop();
    if (relay) log.write(`# monitor relay: ${relay.handled} request(s) answered\n`);
    out.flush();
    err.flush();
    const totalMs = performance.now() - t0;
    log.write(`# qemu exited code=${exit.code} signal=${exit.signal} after ${((performance.now() - qemuStart) / 1000).toFixed(3)} s\n`);
    await new Promise<void>((r) => log.end(r));

    let dmarFaults: DmarFault[] = [];
    let dmarTraceFile: string | undefined;
    if (options.dmarTrace && existsSync(traceHost)) {
      dmarFaults = parseDmarTrace(readFileSync(traceHost, 'utf8'));
      dmarTraceFile = `${logFile}.dmar`;
      copyFileSync(traceHost, dmarTraceFile);
    }
    const rcPath = join(runDir, 'rc');
    const rcText = existsSync(rcPath) && statSync(rcPath).size > 0 ? readFileSync(rcPath, 'utf8').trim() : '';
    return { exit, timedOut, timeoutMs, state, tail, dmarFaults, dmarTraceFile, rcText, placed, totalMs };
  };
  let r: Awaited<ReturnType<typeof run>>;
  try {
    r = await run();
  } finally {
    if (!options.keepRunDir) rmSync(runDir, { recursive: true, force: true });
  }
  const { exit, timedOut, timeoutMs, state, tail, dmarFaults, dmarTraceFile, rcText, placed, totalMs } = r;
  const lastLines = `\n  last lines:\n    ${tail.join('\n    ')}`;
  if (timedOut) {
    throw new ApplianceError('ERR_LAB_TIMEOUT', `the lab did not finish within ${timeoutMs / 1000} s; QEMU was killed. Log: ${logFile}${lastLines}`, {
      fix: 'read the log; raise the timeout (--timeout S) if the guest was still making progress',
    });
  }
  const outcome = decideOutcome(exit, state, /^\d+$/.test(rcText) ? Number(rcText) : undefined);
  if (outcome.kind === 'init-failed') {
    throw new ApplianceError('ERR_LAB_GUEST_SETUP', `the lab guest's /init failed before the command ran: ${outcome.reason}. Log: ${logFile}${lastLines}`);
  }
  if (outcome.kind === 'died') {
    // Before /init ran nothing of ours ran: a boot failure (kernel panic at boot, QEMU refusing the machine).
    if (state.initAtMs === undefined)
      throw new ApplianceError('ERR_LAB_BOOT_FAILED', `the lab guest did not boot to /init: ${outcome.reason}. Log: ${logFile}${lastLines}`);
    if (outcome.emulatorCrash) {
      throw new ApplianceError('ERR_LAB_QEMU_CRASHED', `the lab's QEMU crashed under the guest: ${outcome.reason}. Log: ${logFile}${lastLines}`, {
        fix: "a fault of the emulator, not a verdict of the guest's tests: run again; if it recurs at the same step, read the log's tail for what the guest was doing",
      });
    }
    throw new ApplianceError('ERR_LAB_GUEST_DIED', `the lab guest died: ${outcome.reason}. Log: ${logFile}${lastLines}`);
  }
  const groups = new Map(state.bound.map((b) => [b.bdf, b.group]));
  return {
    status: outcome.status,
    logFile,
    dmarFaults,
    ...(dmarTraceFile ? { dmarTraceFile } : {}),
    accel,
    devices: placed.map((p) => ({ ...p, ...(groups.has(p.bdf) ? { group: groups.get(p.bdf)! } : {}) })),
    timings: {
      setupMs,
      totalMs,
      ...(state.initAtMs !== undefined ? { initMs: state.initAtMs } : {}),
      ...(state.runAtMs !== undefined ? { bootMs: state.runAtMs } : {}),
      ...(state.runAtMs !== undefined && state.doneAtMs !== undefined ? { commandMs: state.doneAtMs - state.runAtMs } : {}),
    },
  };
}
