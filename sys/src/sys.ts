/**
 * The syscall seam: every Linux call dmabox makes, in one interface, like NetBSD's rumpuser.h.
 * Nothing else in the project calls koffi. Every class of this package takes an optional `sys`, so
 * tests hand in a fake; everything else gets the real one from `defaultSys()`, which loads koffi on
 * first use only (importing this package never loads it).
 *
 * Conventions: a failing call throws `SyscallError` carrying the errno (read right after the call)
 * and its name; results come back as return values. Addresses and 64-bit quantities are bigint;
 * file descriptors and small sizes are numbers.
 */
import { createKoffiSys } from './koffi.js';

/** Open flags (asm-generic/fcntl.h). */
export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
/** mmap protections and flags (asm-generic/mman-common.h, mman.h). */
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
/** memfd_create flags (linux/memfd.h). */
export const MFD_CLOEXEC = 1;
/** eventfd flags (sys/eventfd.h). */
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
/** prctl options (linux/prctl.h). */
export const PR_SET_NO_NEW_PRIVS = 38;
export const PR_GET_NO_NEW_PRIVS = 39;
/** The calling thread's capability bounding set: read one (1 or 0) or drop one (needs CAP_SETPCAP). */
export const PR_CAPBSET_READ = 23;
export const PR_CAPBSET_DROP = 24;
/** The ambient set; arg2 PR_CAP_AMBIENT_CLEAR_ALL empties it. */
export const PR_CAP_AMBIENT = 47;
export const PR_CAP_AMBIENT_CLEAR_ALL = 4;
/** capget/capset header version with 64-bit sets (linux/capability.h, _LINUX_CAPABILITY_VERSION_3). */
export const LINUX_CAPABILITY_VERSION_3 = 0x20080522;
/** seccomp(2) operation and flag (linux/seccomp.h). */
export const SECCOMP_SET_MODE_FILTER = 1;
export const SECCOMP_FILTER_FLAG_TSYNC = 1;
/** fcntl commands and fd flags (asm-generic/fcntl.h). */
export const F_GETFD = 1;
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;
/** pipe2 flags (same values as open's). */
export const O_NONBLOCK = 0o4000;
/** socket domain, types and flags (linux/socket.h, asm-generic/socket.h, linux/net.h). */
export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_SEQPACKET = 5;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
/** struct sockaddr_un (sys/un.h): sa_family_t sun_family (2 bytes), char sun_path[108]. */
export const SOCKADDR_UN = Object.freeze({ size: 110, family: 0, path: 2, pathBytes: 108 });
/** At most this many fds in one SCM_RIGHTS message (the kernel's SCM_MAX_FD is 253). */
export const MAX_PASSED_FDS = 253;
/** send/recv flags (linux/socket.h). */
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
/** Resource numbers (asm-generic/resource.h). */
export const RLIMIT_MEMLOCK = 8;
/** RLIM_INFINITY as the kernel reports it. */
export const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

/** seccomp(2)'s syscall number per Node architecture (arch/x86/entry/syscalls/syscall_64.tbl; asm-generic/unistd.h). */
export const SYS_SECCOMP: Readonly<Record<string, number>> = Object.freeze({ x64: 317, arm64: 277 });
/** struct sock_fprog (linux/filter.h) on 64-bit: { unsigned short len; struct sock_filter *filter; }; a sock_filter is 8 bytes. */
export const SOCK_FPROG = Object.freeze({ size: 16, len: 0, filter: 8, filterSize: 8 });

/** koffi.view aborts the process (uncatchable) above 4 GiB, so the seam refuses at 4 GiB. */
export const MAX_VIEW_BYTES = 2 ** 32 - 1;

/**
 * The calling thread's capability sets (capget/capset, version 3): bit n is capability n
 * (CAP_KILL = 5 is 1n << 5n). Capabilities are per thread: capset changes only the calling thread.
 */
export interface CapSets {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
}

export interface Rlimit {
  cur: bigint;
  max: bigint;
}

/** A wait on an fd inside Node's event loop. */
export interface PollHandle {
  /** Stop waiting; idempotent. */
  close(): void;
}

export interface Sys {
  open(path: string, flags: number): number;
  close(fd: number): void;
  /**
   * ioctl with a pointer argument (`arg` is a struct the kernel reads and may write back), an
   * integer argument (`number`), or none (`undefined`). Returns the ioctl's non-negative result.
   */
  ioctl(fd: number, request: number, arg?: Uint8Array | number): number;
  /** mmap; `addr` 0n lets the kernel choose. Returns the address. */
  mmap(addr: bigint, length: number, prot: number, flags: number, fd: number, offset: bigint): bigint;
  munmap(addr: bigint, length: number): void;
  memfdCreate(name: string, flags: number): number;
  ftruncate(fd: number, length: number): void;
  /** Returns bytes read (fewer than asked at end of file). */
  pread(fd: number, buf: Uint8Array, offset: bigint): number;
  pwrite(fd: number, buf: Uint8Array, offset: bigint): number;
  eventfd(initval: number, flags: number): number;
  /** Read and reset an eventfd's 8-byte counter; 0n when it is zero and the fd is non-blocking. */
  eventfdRead(fd: number): bigint;
  /** Add to an eventfd's counter. */
  eventfdWrite(fd: number, value: bigint): void;
  /** Call `onReadable` (in Node's event loop) each time `fd` becomes readable, until closed. */
  poll(fd: number, onReadable: () => void): PollHandle;
  prctl(option: number, arg2: number): number;
  /** fcntl(2) with an integer argument (F_GETFD, F_SETFD, ...); returns its non-negative result. */
  fcntl(fd: number, cmd: number, arg: number): number;
  /** pipe2(2): [read end, write end]. */
  pipe2(flags: number): [number, number];
  /** socketpair(2). */
  socketpair(domain: number, type: number, protocol: number): [number, number];
  /**
   * sendmsg(2) of `data` (at least one byte) with `fds` as SCM_RIGHTS (at most MAX_PASSED_FDS).
   * Returns the bytes sent. `flags` are sendmsg's (MSG_DONTWAIT, MSG_NOSIGNAL).
   */
  sendFds(fd: number, data: Uint8Array, fds: readonly number[], flags: number): number;
  /**
   * recvmsg(2) into `data`, taking up to `maxFds` passed fds (received close-on-exec). Returns the
   * bytes read (0 at end of stream) and the fds; `truncated` when the sender passed more fds than
   * fit (the kernel closes the rest). `flags` are recvmsg's (MSG_DONTWAIT).
   */
  recvFds(fd: number, data: Uint8Array, maxFds: number, flags: number): { bytes: number; fds: number[]; truncated: boolean };
  /** socket(2). Node has no AF_UNIX datagram socket of its own: systemd's notify socket is one. */
  socket(domain: number, type: number, protocol: number): number;
  /**
   * bind(2) of an AF_UNIX socket to `path`: a file system path, or an abstract name written with a
   * leading '@' (the kernel's leading NUL). Paths are at most UNIX_PATH_MAX - 1 bytes.
   */
  bindUnix(fd: number, path: string): void;
  /** connect(2) of an AF_UNIX socket to `path` ('@' for an abstract name): a datagram socket then sends there with `send`. */
  connectUnix(fd: number, path: string): void;
  /** send(2) on a connected socket. Returns the bytes sent. */
  send(fd: number, data: Uint8Array, flags: number): number;
  /** sendto(2) of one datagram to the AF_UNIX socket at `path` ('@' for an abstract name). Returns the bytes sent. */
  sendToUnix(fd: number, data: Uint8Array, path: string, flags: number): number;
  /** recv(2) into `data`: the bytes of one datagram (cut to `data`'s length). `flags`: MSG_DONTWAIT. */
  recv(fd: number, data: Uint8Array, flags: number): number;
  /** seccomp(2) with a classic BPF program given as bytes: 8 bytes per `struct sock_filter`. */
  seccomp(operation: number, flags: number, program: Uint8Array): void;
  /** capget(2) of the calling thread. */
  capget(): CapSets;
  /** capset(2) of the calling thread; a set may only shrink unless CAP_SETPCAP allows more. */
  capset(sets: CapSets): void;
  /**
   * sched_yield(2): let another runnable thread have this CPU now. For pollers that found nothing:
   * two of them sharing a CPU would otherwise each spin a whole time slice waiting for the other.
   */
  schedYield(): void;
  getrlimit(resource: number): Rlimit;
  setrlimit(resource: number, limit: Rlimit): void;
  /** An ArrayBuffer aliasing `length` bytes of mapped memory at `addr` (refused at 4 GiB and above). */
  view(addr: bigint, length: number): ArrayBuffer;
}

let current: Sys | undefined;

/** The real seam (koffi over libc), created on first call; koffi itself is loaded only then. */
export function defaultSys(): Sys {
  if (!current) current = createKoffiSys();
  return current;
}

/** Replace the process-wide default (tests); returns the previous one. */
export function setDefaultSys(sys: Sys | undefined): Sys | undefined {
  const prev = current;
  current = sys;
  return prev;
}
