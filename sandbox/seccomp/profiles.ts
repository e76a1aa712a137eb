/**
 * Seccomp profiles for driver containers. A profile is data, and this file is its documentation:
 * every syscall a container may make is listed with why, every argument check with what it stops.
 * Calls are allowed, allowed only with certain arguments, refused (EPERM, so Node and glibc carry
 * on), or killed on sight; anything unnamed gets the default (EPERM).
 *
 * 'driver' is what a TypeScript driver needs once everything is loaded (measured: strace of the
 * containers of the sandbox suites after their seccomp(2) call; LAB-NOTES lists Node's minimum).
 * The filter is built inside the container at confine time, so it knows the container's own pid
 * (`SELF`, taken from process.pid: in a PID namespace that is the namespace's pid, which is what
 * tgkill and prlimit64 take from inside): signals and resource limits reach only the container
 * itself, whatever uid it shares with others.
 */
import { IOCTL } from 'vfio-bindings';
import { assemble, encode, type Action, type FilterSpec, type Rule } from './bpf.js';
import { SYSCALLS_X86_64, type SyscallName } from './syscalls.js';
import { SeccompError } from './errors.js';

const EPERM = 1;

/** Stands for the confining process's own pid; replaced by process.pid when the filter is built. */
export const SELF = 'self';
export type ArgValue = number | typeof SELF;

/** What the filter is built for (known only in the process that confines itself). */
export interface FilterContext {
  /** The confining process's pid as it sees it (process.pid). */
  pid: number;
}

// asm-generic/fcntl.h, linux/fcntl.h
const F_SETOWN = 8;
const F_SETSIG = 10;
const F_SETOWN_EX = 15;
const F_SETLEASE = 1024;
const F_NOTIFY = 1026;
// asm-generic/socket.h
const SO_TYPE = 3;

/**
 * ioctl request numbers a driver container may issue (asm-generic/ioctls.h, linux/vfio.h): the VFIO
 * *device* calls and the few tty/fd calls libuv makes. Never VFIO_SET_IOMMU, MAP_DMA or the group
 * calls, so even a container that somehow held a container fd could not widen its DMA reach; never
 * FIOSETOWN or SIOCSPGRP (aim SIGIO/SIGURG at another process) nor TIOCSTI (type into a terminal):
 * an ioctl not listed here is refused.
 */
export const DRIVER_IOCTLS: readonly number[] = [
  IOCTL.VFIO_DEVICE_GET_INFO,
  IOCTL.VFIO_DEVICE_GET_REGION_INFO,
  IOCTL.VFIO_DEVICE_GET_IRQ_INFO,
  IOCTL.VFIO_DEVICE_SET_IRQS,
  IOCTL.VFIO_DEVICE_RESET,
  0x5401 /* TCGETS */,
  0x5413 /* TIOCGWINSZ */,
  0x5421 /* FIONBIO */,
  0x5451 /* FIOCLEX */,
  0x541b /* FIONREAD */,
];

/** A rule on one argument: the call matches only when argument `arg` is one of `values`. */
export interface ArgRule {
  name: SyscallName;
  arg: number;
  values: readonly ArgValue[];
  /**
   * Bits compared: 64 for an allowance (both halves must match: stricter), 32 for a refusal of an
   * int argument (the kernel reads only the low half, so the upper half must not hide the value).
   */
  width: 32 | 64;
  why: string;
}

export interface Profile {
  name: string;
  summary: string;
  /** Allowed, with why the container needs it. */
  allow: Readonly<Partial<Record<SyscallName, string>>>;
  /** Allowed only when the argument matches; any other call of it falls to the default. */
  allowIf: readonly ArgRule[];
  /** Refused with EPERM when the argument matches, checked before `allow` (the rest of the call is allowed). */
  refuseIf: readonly ArgRule[];
  /** Refused with EPERM, expected and harmless (the caller copes), with why. */
  refuse: Readonly<Partial<Record<SyscallName, string>>>;
  /** Killed at once: only a hostile or broken driver makes these. */
  kill: readonly SyscallName[];
  defaultAction: Action;
}

/** What Node, V8, libuv and glibc need in any confined process of ours, with why (both profiles take it). */
/** Killed on sight in every profile: a new program, a new process, another's memory, mounts, identity changes. */
const KILLED: readonly SyscallName[] = [
  'execve',
  'execveat',
  'fork',
  'vfork',
  'clone',
  'clone3',
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  'mount',
  'open_tree',
  'setuid',
  'setgid',
];

const NODE_RUNTIME: Readonly<Partial<Record<SyscallName, string>>> = {
  lseek: 'libuv file handles (stdio redirected to a file)',
  mmap: 'V8 heap and code space, glibc malloc',
  mprotect: 'V8 heap and JIT code pages',
  munmap: 'V8 heap, glibc malloc',
  mremap: 'glibc realloc of large blocks',
  brk: 'glibc malloc',
  rt_sigprocmask: 'libuv and V8 threads block signals',
  rt_sigreturn: 'return from a signal handler',
  sigaltstack: 'V8 stack-overflow handling',
  nanosleep: 'sleeps in V8 and libuv threads',
  clock_nanosleep: 'sleeps in V8 and libuv threads',
  clock_gettime: 'time (the vDSO usually answers; the syscall is the fallback)',
  epoll_ctl: "libuv's event loop: watching its fds",
  epoll_pwait: "libuv's event loop",
  epoll_wait: "libuv's event loop (older libuv)",
  ppoll: 'libuv waits on one fd',
  gettid: 'V8 and glibc (its own thread ids)',
  fcntl: 'libuv sets O_NONBLOCK and FD_CLOEXEC on its fds (the signalling commands are refused: refuseIf)',
  fsync: 'libuv flushes stdio at exit',
  getuid: 'Node (its own identity)',
  geteuid: 'Node (its own identity)',
  getgid: 'Node (its own identity)',
  getegid: 'Node (its own identity)',
  set_robust_list: 'glibc thread start',
  rseq: 'glibc thread start',
  membarrier: "V8's code patching across threads",
  exit: 'a thread ends',
  exit_group: 'the process ends',
};

const DRIVER: Profile = {
  name: 'driver',
  summary: 'a TypeScript driver after start-up: memory, event loop, its own fds, VFIO device ioctls, signals and limits on itself only',
  allow: {
    ...NODE_RUNTIME,
    read: 'eventfds, the hypercall socket, stdin',
    write: 'eventfd kicks, the hypercall socket, stdout/stderr',
    readv: 'libuv stream reads',
    writev: 'libuv stream writes (the hypercall socket, stdio)',
    pread64: 'VFIO region reads (config space) on the device fd',
    pwrite64: 'VFIO region writes (config space) on the device fd',
    close: 'closing its own fds (handles, the device fd at SHUTDOWN)',
    fstat: 'libuv checks the kind of an fd (stdio at exit; fs.fstat falls back to it when statx is refused)',
    madvise: 'V8 and glibc give memory back (MADV_DONTNEED, MADV_DONTFORK)',
    rt_sigaction: 'Node and V8 install signal handlers (SIGPROF, SIGINT)',
    futex: "Node's worker threads and V8's platform threads",
    sched_yield: 'the polling driver yields when it finds nothing (Clock.idle)',
    poll: 'libuv waits on one fd (uv__io_poll fallbacks)',
    getpid: 'libuv and V8 (its own pid: harmless)',
    getppid: 'Node (its parent: the manager, known anyway)',
    getrandom: "V8's hash seeds and Math.random, crypto.getRandomValues",
    recvmsg: 'the hypercall socket (libuv reads stream sockets with recvmsg)',
    sendmsg: 'the hypercall socket',
    recvfrom: 'the hypercall socket',
    sendto: 'the hypercall socket',
    shutdown: 'closing the hypercall socket at SHUTDOWN',
    getrusage: 'process.resourceUsage, heartbeat statistics (its own usage)',
    uname: 'os.release/os.type in Node and V8 (the kernel version, no secret)',
    getcwd: "process.cwd() (path.resolve of a relative path in the loader's module names)",
    getsockname:
      "libuv's uv_guess_handle, when a prepared spare (confined before its takeover) opens its hypercall socket; the address of its own socket, an unnamed socketpair end",
  },
  allowIf: [
    { name: 'ioctl', arg: 1, values: DRIVER_IOCTLS, width: 32, why: 'the VFIO device calls and tty/fd calls listed in DRIVER_IOCTLS' },
    {
      name: 'getsockopt',
      arg: 2,
      values: [SO_TYPE],
      width: 32,
      why: "libuv's uv_guess_handle asks a socket's type (SOL_SOCKET, SO_TYPE) when a prepared spare, confined before its takeover, opens its hypercall socket; no other option (SO_PEERCRED, ...) is read",
    },
    {
      name: 'tgkill',
      arg: 0,
      values: [SELF],
      width: 64,
      why: 'abort() and V8 signal its own threads; the thread group must be its own, never another container',
    },
    {
      name: 'prlimit64',
      arg: 0,
      values: [0, SELF],
      width: 64,
      why: "glibc's getrlimit/setrlimit are prlimit64(0, ...); another process's limits are not its business",
    },
  ],
  refuseIf: [
    {
      name: 'fcntl',
      arg: 1,
      values: [F_SETOWN, F_SETOWN_EX, F_SETSIG, F_SETLEASE, F_NOTIFY],
      width: 32,
      why: 'these name a process (or a signal) the kernel later signals: SIGIO/SIGURG or any signal at a neighbour',
    },
  ],
  refuse: {
    openat: "no files after confinement (refused, not killed: glibc's malloc opens /proc files on its own)",
    openat2: 'no files after confinement',
    newfstatat: 'no path lookups after confinement (glibc fstat is the fstat syscall; nothing measured needs this)',
    statx: 'no path lookups after confinement; libuv falls back to fstat when statx is refused with EPERM',
    socket: 'no new sockets',
    connect: 'no new connections',
    eventfd2: 'no new eventfds: the manager hands over every one it may use',
    epoll_create1: 'no new epoll instances (libuv has its one)',
    pipe2: 'no new pipes',
    dup: 'no copies of fds',
    memfd_create: 'no new shared memory: the manager hands over every window',
    prctl: 'no changes to its own process attributes (no_new_privs and dumpable are set already)',
    seccomp: 'no further filters',
    kill: 'Node never calls kill(2) by itself after start-up (abort and V8 use tgkill); process.kill is refused',
    tkill: 'glibc signals threads with tgkill; tkill names a thread of any process',
  },
  kill: KILLED,
  defaultAction: { kind: 'errno', errno: EPERM },
};

/** ioctl request numbers a device process may issue: the tty/fd calls libuv makes, nothing else. */
export const DEVICE_IOCTLS: readonly number[] = [
  0x5401 /* TCGETS */, 0x5413 /* TIOCGWINSZ */, 0x5421 /* FIONBIO */, 0x5451 /* FIOCLEX */, 0x541b /* FIONREAD */,
];

/**
 * 'device': a device process (sandbox/device/) once its memory is mapped: its event loop, its
 * socket to the manager, eventfd reads and writes, memory for V8. It holds no device fd, so no
 * VFIO ioctl; it never opens, creates a socket, spawns or signals.
 */
const DEVICE: Profile = {
  name: 'device',
  summary:
    'a simulated device model after start-up: memory, event loop, its inherited fds; signals and limits on itself only; no ioctl beyond the tty ones libuv makes',
  allow: {
    ...NODE_RUNTIME,
    read: 'the kick eventfd, the protocol socket',
    write: 'interrupt eventfds, the protocol socket, stdout/stderr',
    readv: 'libuv stream reads (the protocol socket)',
    writev: 'libuv stream writes (the protocol socket, stdio)',
    pread64: 'libuv file handles (stdio redirected to a file)',
    pwrite64: 'libuv file handles (stdio redirected to a file)',
    close: 'closing its own fds',
    fstat: 'libuv checks the kind of an fd',
    madvise: 'V8 and glibc give memory back',
    rt_sigaction: 'Node and V8 install signal handlers',
    futex: "V8's platform threads; Atomics.wait on the mailbox",
    sched_yield: 'the mailbox poller yields when it finds nothing',
    poll: 'libuv waits on one fd',
    getpid: 'libuv and V8 (its own pid)',
    getrandom: "V8's hash seeds and Math.random",
    recvmsg: 'the protocol socket',
    sendmsg: 'the protocol socket',
    recvfrom: 'the protocol socket',
    sendto: 'the protocol socket',
    shutdown: 'closing the protocol socket at RELEASE',
    getrusage: 'heartbeat counters (its own usage)',
  },
  allowIf: [
    { name: 'ioctl', arg: 1, values: DEVICE_IOCTLS, width: 32, why: 'the tty/fd calls libuv makes (DEVICE_IOCTLS); it holds no device fd' },
    { name: 'tgkill', arg: 0, values: [SELF], width: 64, why: 'abort() and V8 signal its own threads; never another process' },
  ],
  refuseIf: [
    {
      name: 'fcntl',
      arg: 1,
      values: [F_SETOWN, F_SETOWN_EX, F_SETSIG, F_SETLEASE, F_NOTIFY],
      width: 32,
      why: 'these name a process (or a signal) the kernel later signals',
    },
  ],
  refuse: {
    openat: 'no files after confinement (glibc may try /proc files on its own)',
    openat2: 'no files after confinement',
    newfstatat: 'no path lookups after confinement',
    statx: 'no path lookups; libuv falls back to fstat when statx is refused with EPERM',
    socket: 'no new sockets',
    connect: 'no new connections',
    eventfd2: 'no new eventfds: the manager hands over every one it may use',
    epoll_create1: 'no new epoll instances (libuv has its one)',
    pipe2: 'no new pipes',
    dup: 'no copies of fds',
    memfd_create: 'no new shared memory: the manager hands over the windows and the store',
    prctl: 'no changes to its own process attributes (no_new_privs and dumpable are set already)',
    seccomp: 'no further filters',
    kill: 'a model signals nobody',
    tkill: 'tkill names a thread of any process',
    prlimit64: 'no resource limits read or changed after start-up',
  },
  kill: KILLED,
  defaultAction: { kind: 'errno', errno: EPERM },
};

export const PROFILES: Readonly<Record<string, Profile>> = { driver: DRIVER, device: DEVICE };

export function profile(name: string): Profile {
  const p = PROFILES[name];
  if (!p) {
    throw new SeccompError('ERR_SECCOMP_PROFILE', `unknown seccomp profile '${name}'`, {
      fix: `use one of: ${Object.keys(PROFILES).join(', ')}`,
    });
  }
  return p;
}

/**
 * The filter a profile stands for, for the process `ctx` describes. Order: kill rules, then
 * argument refusals (before the allowances of the same call), allowances, argument allowances,
 * refusals, the default.
 */
export function filterSpec(p: Profile, ctx: FilterContext): FilterSpec {
  if (!Number.isInteger(ctx.pid) || ctx.pid < 1 || ctx.pid > 0x3fff_ffff) {
    throw new SeccompError('ERR_SECCOMP_RULE', `a filter is built for a process; pid ${ctx.pid} is not one`, {
      fix: 'pass { pid: process.pid } from the process that confines itself',
    });
  }
  const rules: Rule[] = [];
  const nr = (n: SyscallName): number => SYSCALLS_X86_64[n];
  const values = (a: ArgRule): number[] => a.values.map((v) => (v === SELF ? ctx.pid : v));
  const named = (set: Readonly<Partial<Record<SyscallName, string>>>): SyscallName[] => Object.keys(set) as SyscallName[];
  for (const n of p.kill) rules.push({ nr: nr(n), action: { kind: 'kill' } });
  for (const a of p.refuseIf) rules.push({ nr: nr(a.name), action: { kind: 'errno', errno: EPERM }, argIn: { arg: a.arg, values: values(a), width: a.width } });
  for (const n of named(p.allow)) rules.push({ nr: nr(n), action: { kind: 'allow' } });
  for (const a of p.allowIf) rules.push({ nr: nr(a.name), action: { kind: 'allow' }, argIn: { arg: a.arg, values: values(a), width: a.width } });
  for (const n of named(p.refuse)) rules.push({ nr: nr(n), action: { kind: 'errno', errno: EPERM } });
  return { rules, defaultAction: p.defaultAction };
}

/** The `struct sock_filter` array for a profile, for the process `ctx` describes. */
export function compile(p: Profile, ctx: FilterContext): Buffer {
  return encode(assemble(filterSpec(p, ctx)));
}
