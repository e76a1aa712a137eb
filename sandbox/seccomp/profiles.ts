/**
 * Seccomp profiles for driver containers. A profile is data: which syscalls a container may make,
 * which it is refused (EPERM, so Node and glibc carry on), and which kill it on sight.
 *
 * 'driver' is what a TypeScript driver needs once everything is loaded (LAB-NOTES: Node needs at
 * least futex, mprotect, munmap, madvise, mmap, brk, getpid, gettid, tgkill, close, rt_sigprocmask,
 * read, write, exit, exit_group, epoll_ctl, epoll_pwait, ioctl, statx, fstat, fcntl, rt_sigaction,
 * rt_sigreturn, pread64, getrandom, fsync, sched_yield). ioctl is allowed only for the VFIO *device*
 * calls and the few tty/fd calls libuv makes: never VFIO_SET_IOMMU, MAP_DMA or the group calls,
 * so even a container that somehow held a container fd could not widen its DMA reach.
 * openat is refused with EPERM rather than killed: glibc's malloc opens /proc files on its own.
 */
import { IOCTL } from 'vfio-bindings';
import { assemble, encode, type Action, type FilterSpec, type Rule } from './bpf.js';
import { SYSCALLS_X86_64, type SyscallName } from './syscalls.js';
import { SeccompError } from './errors.js';

const EPERM = 1;

/** ioctl request numbers a driver container may issue (asm-generic/ioctls.h, linux/vfio.h). */
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

export interface Profile {
  name: string;
  summary: string;
  allow: readonly SyscallName[];
  /** Allowed only with the listed values in argument `arg` (low 32 bits). */
  allowArgs: readonly { name: SyscallName; arg: number; values: readonly number[] }[];
  /** Refused with EPERM, expected and harmless (the caller copes). */
  refuse: readonly SyscallName[];
  /** Killed at once: only a hostile or broken driver makes these. */
  kill: readonly SyscallName[];
  defaultAction: Action;
}

const DRIVER: Profile = {
  name: 'driver',
  summary: 'a TypeScript driver after start-up: memory, event loop, its fds, VFIO device ioctls only',
  allow: [
    'read',
    'write',
    'readv',
    'writev',
    'pread64',
    'pwrite64',
    'close',
    'fstat',
    'newfstatat',
    'statx',
    'lseek',
    'mmap',
    'mprotect',
    'munmap',
    'mremap',
    'madvise',
    'brk',
    'rt_sigaction',
    'rt_sigprocmask',
    'rt_sigreturn',
    'sigaltstack',
    'futex',
    'sched_yield',
    'nanosleep',
    'clock_nanosleep',
    'clock_gettime',
    'epoll_ctl',
    'epoll_pwait',
    'epoll_wait',
    'poll',
    'ppoll',
    'getpid',
    'gettid',
    'getppid',
    'tgkill',
    'getrandom',
    'fcntl',
    'fsync',
    'recvmsg',
    'sendmsg',
    'recvfrom',
    'sendto',
    'shutdown',
    'getuid',
    'geteuid',
    'getgid',
    'getegid',
    'getrusage',
    'uname',
    'getcwd',
    'prlimit64',
    'set_robust_list',
    'rseq',
    'membarrier',
    'exit',
    'exit_group',
  ],
  allowArgs: [{ name: 'ioctl', arg: 1, values: DRIVER_IOCTLS }],
  refuse: ['openat', 'openat2', 'socket', 'connect', 'eventfd2', 'epoll_create1', 'pipe2', 'dup', 'memfd_create', 'prctl', 'seccomp', 'kill'],
  kill: ['execve', 'execveat', 'fork', 'vfork', 'clone', 'clone3', 'ptrace', 'process_vm_readv', 'process_vm_writev', 'mount', 'open_tree', 'setuid', 'setgid'],
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
  summary: 'a simulated device model after start-up: memory, event loop, its inherited fds; no ioctl beyond the tty ones libuv makes',
  allow: [
    'read',
    'write',
    'readv',
    'writev',
    'pread64',
    'pwrite64',
    'close',
    'fstat',
    'newfstatat',
    'statx',
    'lseek',
    'mmap',
    'mprotect',
    'munmap',
    'mremap',
    'madvise',
    'brk',
    'rt_sigaction',
    'rt_sigprocmask',
    'rt_sigreturn',
    'sigaltstack',
    'futex',
    'sched_yield',
    'nanosleep',
    'clock_nanosleep',
    'clock_gettime',
    'epoll_ctl',
    'epoll_pwait',
    'epoll_wait',
    'poll',
    'ppoll',
    'getpid',
    'gettid',
    'tgkill',
    'getrandom',
    'fcntl',
    'fsync',
    'recvmsg',
    'sendmsg',
    'recvfrom',
    'sendto',
    'shutdown',
    'getuid',
    'geteuid',
    'getgid',
    'getegid',
    'getrusage',
    'set_robust_list',
    'rseq',
    'membarrier',
    'exit',
    'exit_group',
  ],
  allowArgs: [{ name: 'ioctl', arg: 1, values: DEVICE_IOCTLS }],
  refuse: ['openat', 'openat2', 'socket', 'connect', 'eventfd2', 'epoll_create1', 'pipe2', 'dup', 'memfd_create', 'prctl', 'seccomp', 'kill', 'prlimit64'],
  kill: ['execve', 'execveat', 'fork', 'vfork', 'clone', 'clone3', 'ptrace', 'process_vm_readv', 'process_vm_writev', 'mount', 'open_tree', 'setuid', 'setgid'],
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

/** The filter a profile stands for. */
export function filterSpec(p: Profile): FilterSpec {
  const rules: Rule[] = [];
  const nr = (n: SyscallName): number => SYSCALLS_X86_64[n];
  for (const n of p.kill) rules.push({ nr: nr(n), action: { kind: 'kill' } });
  for (const n of p.allow) rules.push({ nr: nr(n), action: { kind: 'allow' } });
  for (const a of p.allowArgs) rules.push({ nr: nr(a.name), action: { kind: 'allow' }, argIn: { arg: a.arg, values: a.values } });
  for (const n of p.refuse) rules.push({ nr: nr(n), action: { kind: 'errno', errno: EPERM } });
  return { rules, defaultAction: p.defaultAction };
}

/** The `struct sock_filter` array for a profile. */
export function compile(p: Profile): Buffer {
  return encode(assemble(filterSpec(p)));
}
