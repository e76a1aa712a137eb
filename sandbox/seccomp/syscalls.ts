/**
 * The x86_64 syscall numbers the seccomp profiles name (asm/unistd_64.h). Only x86_64: the filter
 * kills any other architecture. A test checks every entry against the machine's header.
 */
export const SYSCALLS_X86_64 = {
  read: 0, write: 1, close: 3, fstat: 5, poll: 7, lseek: 8, mmap: 9, mprotect: 10, munmap: 11,
  brk: 12, rt_sigaction: 13, rt_sigprocmask: 14, rt_sigreturn: 15, ioctl: 16, pread64: 17,
  pwrite64: 18, readv: 19, writev: 20, sched_yield: 24, mremap: 25, madvise: 28, dup: 32,
  nanosleep: 35, getpid: 39, socket: 41, connect: 42, sendto: 44, recvfrom: 45, sendmsg: 46,
  recvmsg: 47, shutdown: 48, clone: 56, fork: 57, vfork: 58, execve: 59, exit: 60, kill: 62,
  uname: 63, fcntl: 72, fsync: 74, getcwd: 79, getrusage: 98, getuid: 102, getgid: 104,
  setuid: 105, setgid: 106, geteuid: 107, getegid: 108, getppid: 110, sigaltstack: 131,
  prctl: 157, mount: 165, ptrace: 101, gettid: 186, futex: 202, clock_gettime: 228,
  clock_nanosleep: 230, exit_group: 231, epoll_wait: 232, epoll_ctl: 233, tgkill: 234,
  openat: 257, newfstatat: 262, ppoll: 271, set_robust_list: 273, epoll_pwait: 281,
  eventfd2: 290, epoll_create1: 291, pipe2: 293, prlimit64: 302, process_vm_readv: 310,
  process_vm_writev: 311, seccomp: 317, getrandom: 318, memfd_create: 319, execveat: 322,
  membarrier: 324, statx: 332, rseq: 334, open_tree: 428, clone3: 435, openat2: 437,
} as const;

export type SyscallName = keyof typeof SYSCALLS_X86_64;
