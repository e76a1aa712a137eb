/**
 * The manager's privilege after set-up (sandbox/README.md, "What the manager keeps, and why").
 *
 * Set-up (devices opened and bound, windows mapped and pinned, /dev/kmsg opened, TAP created,
 * sockets bound) needs root. Afterwards the manager still has to:
 * - spawn each restarted container as the policy's uid/gid: libuv's child calls setgroups(0),
 *   setgid and setuid before exec, which need CAP_SETGID and CAP_SETUID;
 * - kill containers, which run under another uid: CAP_KILL.
 * Everything else it does after set-up works on fds it already holds (VFIO device reset, config
 * writes and interrupt set-up on the device fd, unmapping on the container fd, kmsg reads, TAP
 * reads, writes and TUNSETCARRIER, memfds), or on files uid 0 owns (the sysfs files that give a
 * device back at stop, the control socket), which owner permissions allow without
 * CAP_DAC_OVERRIDE. So the kept set is those three capabilities; the rest of the effective,
 * permitted and inheritable sets, the whole bounding set but those three, and the ambient set are
 * dropped, and no_new_privs is set (it does not stop a process holding CAP_SETUID from calling
 * setuid; it stops an exec from gaining capabilities back).
 *
 * The uid stays 0: a uid the manager switched to would either be a container's (which could then
 * signal the manager) or need an account dmabox does not have, and CAP_SETUID could switch back
 * anyway. What uid 0 without capabilities still reaches is named in the README.
 *
 * Capabilities are per thread. The drop covers the main thread, which runs every line of
 * JavaScript, forks every container (a child inherits the forking thread's sets) and sends every
 * signal; threads Node started before the drop (libuv's pool, V8's workers) keep theirs, and
 * `threadsWithMore` in the report says how many.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { SandboxError } from './errors.js';
import { defaultSys, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAPBSET_DROP, PR_CAPBSET_READ, PR_SET_NO_NEW_PRIVS, type Sys } from 'linux-sys';

/** Capability numbers (linux/capability.h); index = number. */
export const CAP_NAMES: readonly string[] = Object.freeze([
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
]);
export const CAP_KILL = 5;
export const CAP_SETGID = 6;
export const CAP_SETUID = 7;
export const CAP_SETPCAP = 8;

/** What the manager keeps after set-up, and why (the README repeats this). */
export const KEPT_AFTER_SETUP: Readonly<Record<string, string>> = Object.freeze({
  CAP_SETUID: 'spawn restarted containers as the policy uid (setuid in the child before exec)',
  CAP_SETGID: 'spawn restarted containers as the policy gid (setgroups and setgid in the child)',
  CAP_KILL: 'signal containers, which run under another uid (SHUTDOWN deadline, hang, violation)',
});
const KEPT_NUMBERS: readonly number[] = [CAP_SETUID, CAP_SETGID, CAP_KILL];

export class PrivilegeError extends SandboxError {
  constructor(message: string, fix: string, cause?: unknown) {
    super('ERR_SANDBOX_PRIVILEGE', message, { fix, cause });
  }
}

/** A mask's capability names, lowest number first (unnamed ones as cap_N). */
export function capNames(mask: bigint): string[] {
  const out: string[] = [];
  for (let n = 0; n < 64; n++) if ((mask >> BigInt(n)) & 1n) out.push(CAP_NAMES[n] ?? `cap_${n}`);
  return out;
}

export function capMask(numbers: readonly number[]): bigint {
  return numbers.reduce((m, n) => m | (1n << BigInt(n)), 0n);
}

/** One task's capability lines of /proc/PID[/task/TID]/status. */
export interface TaskCaps {
  inheritable: bigint;
  permitted: bigint;
  effective: bigint;
  bounding: bigint;
  ambient: bigint;
  noNewPrivs: boolean;
}

/** Parse the Cap* and NoNewPrivs lines of a /proc status file. */
export function parseStatusCaps(text: string): TaskCaps {
  const field = (name: string): string => {
    const m = new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(text);
    if (!m) throw new PrivilegeError(`no ${name} line in the /proc status text`, 'read /proc/PID/status of a Linux kernel (3.x or later)');
    return m[1]!;
  };
  const hex = (name: string): bigint => BigInt(`0x${field(name)}`);
  return {
    inheritable: hex('CapInh'),
    permitted: hex('CapPrm'),
    effective: hex('CapEff'),
    bounding: hex('CapBnd'),
    ambient: hex('CapAmb'),
    noNewPrivs: field('NoNewPrivs') === '1',
  };
}

/** The calling process's main thread, from /proc/self/status. */
export function processCaps(): TaskCaps {
  return parseStatusCaps(readFileSync('/proc/self/status', 'utf8'));
}

/** Threads of this process whose effective, permitted or bounding set holds more than `allowed`. */
export function threadsWithMore(allowed: bigint): number {
  let n = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    let c: TaskCaps;
    try {
      c = parseStatusCaps(readFileSync(`/proc/self/task/${tid}/status`, 'utf8'));
    } catch {
      continue;
    } // a thread that ended meanwhile
    if (((c.effective | c.permitted | c.bounding) & ~allowed) !== 0n) n++;
  }
  return n;
}

/** Highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap). */
export function capLastCap(): number {
  const n = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  if (!Number.isInteger(n) || n < 30 || n > 63) throw new PrivilegeError(`/proc/sys/kernel/cap_last_cap says ${n}`, 'run on Linux 3.2 or later');
  return n;
}

export interface PrivilegeReport {
  /** Names of the capabilities kept (effective = permitted = bounding). */
  kept: string[];
  /** Why each is kept. */
  why: Record<string, string>;
  /** Capabilities that were in the permitted set before and are gone now. */
  dropped: string[];
  noNewPrivs: boolean;
  uid: number;
  /**
   * Threads Node started before the drop that still hold more (capabilities are per thread);
   * null when a seam was handed in (its capabilities are not this process's).
   */
  threadsWithMore: number | null;
}

export interface DropOptions {
  sys?: Sys;
  /** Capability numbers to keep; default CAP_SETUID, CAP_SETGID, CAP_KILL. */
  keep?: readonly number[];
  /** Highest capability number (default from /proc/sys/kernel/cap_last_cap). */
  lastCap?: number;
}

/**
 * Drop the calling thread to the kept set: no_new_privs, ambient set cleared, bounding set
 * reduced (while CAP_SETPCAP is still held), then effective = permitted = kept, inheritable
 * empty. Checked afterwards with capget and PR_CAPBSET_READ; throws PrivilegeError when a step
 * fails or the result is not exactly the kept set. Needs CAP_SETPCAP (root has it).
 */
export function dropPrivileges(options: DropOptions = {}): PrivilegeReport {
  const sys = options.sys ?? defaultSys();
  const keepNumbers = options.keep ?? KEPT_NUMBERS;
  const lastCap = options.lastCap ?? capLastCap();
  for (const n of keepNumbers) {
    if (!Number.isInteger(n) || n < 0 || n > lastCap)
      throw new PrivilegeError(`capability ${n} is not one this kernel knows (0..${lastCap})`, 'keep capabilities by their linux/capability.h number');
  }
  const before = sys.capget();
  const keep = capMask(keepNumbers);
  if (!((before.effective >> BigInt(CAP_SETPCAP)) & 1n)) {
    throw new PrivilegeError(
      `cannot drop the bounding set without CAP_SETPCAP (effective set: ${capNames(before.effective).join(', ') || 'empty'})`,
      'drop privileges only in a manager started as root, or pass --keep-privileges',
    );
  }
  const missing = keep & ~before.permitted;
  if (missing !== 0n) {
    throw new PrivilegeError(
      `the manager does not hold ${capNames(missing).join(', ')}, which it needs after set-up`,
      'start dmabox as root (not under a capability-restricted wrapper), or pass --keep-privileges',
    );
  }
  const step = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new PrivilegeError(
        `dropping privileges: ${what} failed: ${(e as Error).message}`,
        'the manager runs on with what the steps before left it (`dmabox status --json` shows manager.caps); report the kernel version, or pass --keep-privileges',
        e,
      );
    }
  };
  step('PR_SET_NO_NEW_PRIVS', () => sys.prctl(PR_SET_NO_NEW_PRIVS, 1));
  step('PR_CAP_AMBIENT_CLEAR_ALL', () => sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL));
  for (let n = 0; n <= lastCap; n++) {
    if ((keep >> BigInt(n)) & 1n) continue;
    step(`PR_CAPBSET_DROP ${CAP_NAMES[n] ?? n}`, () => sys.prctl(PR_CAPBSET_DROP, n));
  }
  step('capset', () => sys.capset({ effective: keep, permitted: keep, inheritable: 0n }));
  const after = sys.capget();
  if (after.effective !== keep || after.permitted !== keep || after.inheritable !== 0n) {
    throw new PrivilegeError(
      `after capset the sets are effective ${capNames(after.effective).join(',')}, permitted ${capNames(after.permitted).join(',')}, not ${capNames(keep).join(',')}`,
      'report the kernel version; pass --keep-privileges meanwhile',
    );
  }
  for (let n = 0; n <= lastCap; n++) {
    const inBounding = step(`PR_CAPBSET_READ ${n}`, () => sys.prctl(PR_CAPBSET_READ, n)) === 1;
    if (inBounding !== Boolean((keep >> BigInt(n)) & 1n)) {
      throw new PrivilegeError(
        `${CAP_NAMES[n] ?? n} is ${inBounding ? 'still' : 'not'} in the bounding set after the drop`,
        'report the kernel version; pass --keep-privileges meanwhile',
      );
    }
  }
  const kept = capNames(keep);
  return {
    kept,
    why: Object.fromEntries(kept.map((k) => [k, KEPT_AFTER_SETUP[k] ?? 'asked for by the caller'])),
    dropped: capNames(before.permitted & ~keep),
    noNewPrivs: true,
    uid: process.getuid?.() ?? -1,
    threadsWithMore: options.sys ? null : threadsWithMore(keep),
  };
}

/** The manager's capabilities for `dmabox status`: its main thread's sets, by name. */
export function capsStatus(dropped: boolean): { dropped: boolean; effective: string[]; bounding: number; noNewPrivs: boolean } | { error: string } {
  try {
    const c = processCaps();
    return { dropped, effective: capNames(c.effective), bounding: capNames(c.bounding).length, noNewPrivs: c.noNewPrivs };
  } catch (e) {
    return { error: (e as Error).message };
  }
}
