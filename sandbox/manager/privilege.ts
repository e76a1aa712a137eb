/**
 * The manager gives up root at the end of set-up (sandbox/README.md, "No root left after set-up").
 *
 * Set-up (devices opened and bound, windows mapped and pinned, /dev/kmsg opened, TAP created,
 * sockets bound, the spawner started) needs root. Afterwards everything the manager does works on
 * fds it already holds (VFIO resets, config writes and interrupt set-up on the device fd, unmapping
 * on the container fd, kmsg, TAP, memfds, the sysfs files that give a device back, opened at
 * set-up), and starting and killing containers is the spawner's (sandbox/spawner/). So the manager
 * switches to an unprivileged identity of its own: setgroups([]), setgid, setuid. glibc applies
 * each to every thread of the process, and the kernel clears the permitted, effective and ambient
 * capability sets of a thread whose uids all leave 0: no thread keeps a capability.
 *
 * Before the switch, while CAP_SETPCAP is still held, the calling thread empties its bounding and
 * inheritable sets and sets no_new_privs; a seccomp filter that allows everything, installed with
 * TSYNC, carries no_new_privs to every other thread (the kernel syncs it with the filter). The
 * bounding sets of Node's other threads cannot be changed from this one; with no_new_privs on every
 * thread and no capability anywhere, an exec cannot gain one back through them.
 *
 * The manager's identity is reserved, not a container's: MANAGER_ID, checked against /etc/passwd
 * and /etc/group (an account of that number must be named `dmabox-manager`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { SandboxError } from './errors.js';
import {
  defaultSys,
  PR_CAP_AMBIENT,
  PR_CAP_AMBIENT_CLEAR_ALL,
  PR_CAPBSET_DROP,
  PR_CAPBSET_READ,
  PR_SET_NO_NEW_PRIVS,
  SECCOMP_FILTER_FLAG_TSYNC,
  SECCOMP_SET_MODE_FILTER,
  type Sys,
} from 'linux-sys';

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

/** Highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap). */
export function capLastCap(): number {
  const n = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  if (!Number.isInteger(n) || n < 30 || n > 63) throw new PrivilegeError(`/proc/sys/kernel/cap_last_cap says ${n}`, 'run on Linux 3.2 or later');
  return n;
}

/**
 * The manager's own uid and gid after set-up: one number below systemd's DynamicUser range
 * (61184-65519), so neither a container identity nor a dynamic user of the host.
 */
export const MANAGER_ID = 61183;
/** The only account name that may hold MANAGER_ID in /etc/passwd or /etc/group. */
export const MANAGER_ACCOUNT = 'dmabox-manager';

/** Names that hold `id` in an /etc/passwd or /etc/group text (third field). */
export function accountsWithId(text: string, id: number): string[] {
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length > 2 && f[2] === String(id))
    .map((f) => f[0]!);
}

/** MANAGER_ID as uid and gid, refused when another account has either number. */
export function managerIdentity(etc = '/etc'): { uid: number; gid: number } {
  for (const file of ['passwd', 'group']) {
    let text: string;
    try {
      text = readFileSync(`${etc}/${file}`, 'utf8');
    } catch {
      continue;
    }
    const other = accountsWithId(text, MANAGER_ID).filter((n) => n !== MANAGER_ACCOUNT);
    if (other.length > 0) {
      throw new PrivilegeError(
        `${etc}/${file} gives ${MANAGER_ID}, the dmabox manager's id after set-up, to ${other.join(', ')}`,
        `free ${MANAGER_ID} (or name its account ${MANAGER_ACCOUNT}), or pass --keep-privileges`,
      );
    }
  }
  return { uid: MANAGER_ID, gid: MANAGER_ID };
}

/** One thread's identity and capability sets, from /proc/PID/task/TID/status. */
export interface ThreadStatus {
  tid: number;
  name: string;
  /** Real, effective, saved and filesystem uid. */
  uids: number[];
  caps: TaskCaps;
}

/** Every thread of `pid` (threads that end while read are left out). */
export function threadStatus(pid: number | 'self' = 'self'): ThreadStatus[] {
  const out: ThreadStatus[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue;
    }
    const uids = (/^Uid:\s*(.*)$/m.exec(text)?.[1] ?? '').split(/\s+/).map(Number);
    out.push({ tid: Number(tid), name: /^Name:\s*(.*)$/m.exec(text)?.[1] ?? '', uids, caps: parseStatusCaps(text) });
  }
  return out;
}

/** What `dmabox status` shows of a process: per thread, its uids and capability sets (hex). */
export function capsStatus(
  pid: number | 'self' = 'self',
):
  | { threads: { tid: number; name: string; uid: number; inh: string; prm: string; eff: string; bnd: string; amb: string; noNewPrivs: boolean }[] }
  | { error: string } {
  try {
    const hex = (n: bigint): string => n.toString(16).padStart(16, '0');
    return {
      threads: threadStatus(pid).map((t) => ({
        tid: t.tid,
        name: t.name,
        uid: t.uids[1] ?? -1,
        inh: hex(t.caps.inheritable),
        prm: hex(t.caps.permitted),
        eff: hex(t.caps.effective),
        bnd: hex(t.caps.bounding),
        amb: hex(t.caps.ambient),
        noNewPrivs: t.caps.noNewPrivs,
      })),
    };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** The identity calls (process's by default; tests hand in a fake). */
export interface IdentityCalls {
  setgroups(groups: number[]): void;
  setgid(gid: number): void;
  setuid(uid: number): void;
}

export interface DropRootOptions {
  uid: number;
  gid: number;
  sys?: Sys;
  proc?: IdentityCalls;
  /** Highest capability number (default from /proc/sys/kernel/cap_last_cap). */
  lastCap?: number;
  /** Read the threads back from /proc/self (default: true unless a seam was handed in). */
  verify?: boolean;
}

export interface DropRootReport {
  uid: number;
  gid: number;
  /** Threads read back after the switch. */
  threads: number;
  /** Threads other than the calling one whose bounding set is not empty (it cannot be changed from here; inert without capabilities, under no_new_privs). */
  threadsWithBounding: number;
}

/** One instruction: return SECCOMP_RET_ALLOW (BPF_RET | BPF_K, k 0x7fff0000). */
const ALLOW_ALL = Uint8Array.of(0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x7f);

/**
 * Leave root for good: no_new_privs, the calling thread's bounding, ambient and inheritable sets
 * emptied, no_new_privs carried to every thread (an allow-all seccomp filter with TSYNC), then
 * setgroups([]), setgid, setuid. Then every thread is checked in /proc/self/task: uids all `uid`,
 * no capability permitted, effective or ambient, no_new_privs. Throws PrivilegeError naming the
 * step that failed (after setuid there is no way back, so a failed check is an error, not a retry).
 */
export function dropRoot(o: DropRootOptions): DropRootReport {
  const sys = o.sys ?? defaultSys();
  const proc: IdentityCalls = o.proc ?? {
    setgroups: (g) => process.setgroups!(g),
    setgid: (g) => process.setgid!(g),
    setuid: (u) => process.setuid!(u),
  };
  if (!Number.isInteger(o.uid) || o.uid <= 0 || !Number.isInteger(o.gid) || o.gid <= 0) {
    throw new PrivilegeError(`uid ${o.uid} gid ${o.gid}: the manager's identity must not be root`, 'give the manager an unprivileged uid and gid');
  }
  const before = sys.capget();
  if (!((before.effective >> BigInt(CAP_SETPCAP)) & 1n) || !((before.effective >> BigInt(CAP_SETUID)) & 1n)) {
    throw new PrivilegeError(
      `dropping root needs CAP_SETPCAP and CAP_SETUID (effective set: ${capNames(before.effective).join(', ') || 'empty'})`,
      'drop privileges only in a manager started as root, or pass --keep-privileges',
    );
  }
  const lastCap = o.lastCap ?? capLastCap();
  const step = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new PrivilegeError(
        `dropping root: ${what} failed: ${(e as Error).message}`,
        'the manager stops (it may be half-way); report the kernel version, or pass --keep-privileges',
        e,
      );
    }
  };
  step('PR_SET_NO_NEW_PRIVS', () => sys.prctl(PR_SET_NO_NEW_PRIVS, 1));
  step('PR_CAP_AMBIENT_CLEAR_ALL', () => sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL));
  for (let n = 0; n <= lastCap; n++) step(`PR_CAPBSET_DROP ${CAP_NAMES[n] ?? n}`, () => sys.prctl(PR_CAPBSET_DROP, n));
  step('capset (inheritable set emptied)', () => sys.capset({ effective: before.effective, permitted: before.permitted, inheritable: 0n }));
  step('seccomp allow-all with TSYNC (no_new_privs to every thread)', () => sys.seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, ALLOW_ALL));
  step('setgroups([])', () => proc.setgroups([]));
  step(`setgid(${o.gid})`, () => proc.setgid(o.gid));
  step(`setuid(${o.uid})`, () => proc.setuid(o.uid));
  const after = sys.capget();
  if (after.effective !== 0n || after.permitted !== 0n || after.inheritable !== 0n) {
    throw new PrivilegeError(
      `after setuid the calling thread still holds ${capNames(after.permitted | after.effective).join(', ')}`,
      'report the kernel version',
    );
  }
  for (let n = 0; n <= lastCap; n++) {
    if (step(`PR_CAPBSET_READ ${n}`, () => sys.prctl(PR_CAPBSET_READ, n)) === 1) {
      throw new PrivilegeError(`${CAP_NAMES[n] ?? n} is still in the bounding set`, 'report the kernel version');
    }
  }
  if (!(o.verify ?? o.sys === undefined)) return { uid: o.uid, gid: o.gid, threads: 0, threadsWithBounding: 0 };
  const threads = threadStatus('self');
  let threadsWithBounding = 0;
  for (const t of threads) {
    const c = t.caps;
    if (t.uids.some((u) => u !== o.uid) || c.permitted !== 0n || c.effective !== 0n || c.ambient !== 0n || c.inheritable !== 0n || !c.noNewPrivs) {
      throw new PrivilegeError(
        `thread ${t.tid} (${t.name}) after the switch: uids ${t.uids.join(' ')}, permitted ${c.permitted.toString(16)}, effective ${c.effective.toString(16)}, ambient ${c.ambient.toString(16)}, no_new_privs ${c.noNewPrivs}`,
        'report the kernel and glibc versions (setuid must reach every thread)',
      );
    }
    if (c.bounding !== 0n) threadsWithBounding++;
  }
  return { uid: o.uid, gid: o.gid, threads: threads.length, threadsWithBounding };
}
