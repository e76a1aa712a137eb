/**
 * The real seam: libc through koffi. The only file of dmabox that touches koffi, and it loads koffi
 * on the first `createKoffiSys()` call, not at import.
 *
 * Every wrapper reads `koffi.errno()` on the line right after the call that failed: any later call
 * (even Node's own I/O) would overwrite it (LAB-NOTES).
 */
import { createRequire } from 'node:module';
import { SysArgError, SyscallError } from './errors.js';
import { ioctlName } from './ioctl-names.js';
import {
  MAX_PASSED_FDS,
  LINUX_CAPABILITY_VERSION_3,
  MAX_VIEW_BYTES,
  SOCK_FPROG,
  SOCKADDR_UN,
  SYS_SECCOMP,
  type CapSets,
  type PollHandle,
  type Rlimit,
  type Sys,
} from './sys.js';

const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

type Fn = ((...args: unknown[]) => unknown) & { info?: unknown };

interface KoffiModule {
  load(path: string): { func(...def: unknown[]): Fn };
  errno(): number;
  view(ptr: unknown, len: number): ArrayBuffer;
  address(value: unknown): bigint;
  node: { poll(fd: number, opts: { readable: boolean }, cb: (...args: unknown[]) => void): { close(): void } };
}

/**
 * struct msghdr, struct iovec and struct cmsghdr on 64-bit Linux (sys/socket.h, bits/socket.h):
 * msghdr { void *name; socklen_t namelen; struct iovec *iov; size_t iovlen; void *control;
 * size_t controllen; int flags; }, cmsghdr { size_t len; int level; int type; data[] }.
 */
const MSGHDR = Object.freeze({ size: 56, iov: 16, iovlen: 24, control: 32, controllen: 40, flags: 48 });
const IOVEC = Object.freeze({ size: 16, base: 0, len: 8 });
const CMSG = Object.freeze({ len: 0, level: 8, type: 12, data: 16 });
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CTRUNC = 0x8;
const MSG_CMSG_CLOEXEC = 0x4000_0000;

const AF_UNIX = 1;

/**
 * A struct sockaddr_un for `path` and the length to pass: a path is NUL-terminated; an abstract
 * name ('@name') starts with a NUL and its length counts only the bytes of the name (unix(7)).
 */
function sockaddrUn(path: string, op: string): [Buffer, number] {
  const name = Buffer.from(path, 'utf8');
  const abstract = path.startsWith('@');
  if (name.length < 2 && abstract) throw new SysArgError(`an abstract unix socket name needs at least one byte after '@'`, op);
  if (name.length === 0 || name.length > SOCKADDR_UN.pathBytes - 1) {
    throw new SysArgError(`a unix socket path is 1 to ${SOCKADDR_UN.pathBytes - 1} bytes; got ${name.length}`, op);
  }
  if (name.includes(0)) throw new SysArgError('a unix socket path has no NUL byte', op);
  const addr = Buffer.alloc(SOCKADDR_UN.size);
  addr.writeUInt16LE(AF_UNIX, SOCKADDR_UN.family);
  name.copy(addr, SOCKADDR_UN.path);
  if (abstract) addr[SOCKADDR_UN.path] = 0;
  // Abstract: family + the name's bytes exactly; a path: family + path + its NUL.
  return [addr, SOCKADDR_UN.path + name.length + (abstract ? 0 : 1)];
}

export function createKoffiSys(): Sys {
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as KoffiModule;
  const libc = koffi.load('libc.so.6');

  const c = {
    open: libc.func('int open(const char *path, int flags, int mode)'),
    close: libc.func('int close(int fd)'),
    ioctlPtr: libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']),
    ioctlInt: libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']),
    mmap: libc.func('mmap', 'void *', ['uintptr_t', 'size_t', 'int', 'int', 'int', 'int64_t']),
    munmap: libc.func('munmap', 'int', ['uintptr_t', 'size_t']),
    memfdCreate: libc.func('int memfd_create(const char *name, unsigned int flags)'),
    ftruncate: libc.func('int ftruncate(int fd, int64_t length)'),
    pread: libc.func('pread', 'long', ['int', 'void *', 'size_t', 'int64_t']),
    pwrite: libc.func('pwrite', 'long', ['int', 'void *', 'size_t', 'int64_t']),
    read: libc.func('read', 'long', ['int', 'void *', 'size_t']),
    write: libc.func('write', 'long', ['int', 'void *', 'size_t']),
    eventfd: libc.func('int eventfd(unsigned int initval, int flags)'),
    prctl: libc.func('int prctl(int option, ...)'),
    syscall: libc.func('long syscall(long number, ...)'),
    capget: libc.func('capget', 'int', ['void *', 'void *']),
    capset: libc.func('capset', 'int', ['void *', 'void *']),
    schedYield: libc.func('int sched_yield(void)'),
    getrlimit: libc.func('getrlimit', 'int', ['int', 'void *']),
    setrlimit: libc.func('setrlimit', 'int', ['int', 'void *']),
    fcntl: libc.func('int fcntl(int fd, int cmd, ...)'),
    pipe2: libc.func('pipe2', 'int', ['void *', 'int']),
    socketpair: libc.func('socketpair', 'int', ['int', 'int', 'int', 'void *']),
    sendmsg: libc.func('sendmsg', 'long', ['int', 'void *', 'int']),
    recvmsg: libc.func('recvmsg', 'long', ['int', 'void *', 'int']),
    socket: libc.func('int socket(int domain, int type, int protocol)'),
    bind: libc.func('bind', 'int', ['int', 'void *', 'uint32_t']),
    sendto: libc.func('sendto', 'long', ['int', 'void *', 'size_t', 'int', 'void *', 'uint32_t']),
    recv: libc.func('recv', 'long', ['int', 'void *', 'size_t', 'int']),
    connect: libc.func('connect', 'int', ['int', 'void *', 'uint32_t']),
    send: libc.func('send', 'long', ['int', 'void *', 'size_t', 'int']),
  };
  const fdPair = Buffer.alloc(8);

  // Preallocated scratch for the eventfd counter and rlimits: no allocation per interrupt.
  const counter = Buffer.alloc(8);
  const rlim = Buffer.alloc(16);
  // struct __user_cap_header_struct { u32 version; int pid; } and two struct __user_cap_data_struct
  // { u32 effective, permitted, inheritable; } (low 32 capabilities, then the high ones).
  const capHeader = Buffer.alloc(8);
  const capData = Buffer.alloc(24);
  function capHeaderSelf(): Buffer {
    capHeader.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
    capHeader.writeInt32LE(0, 4); // pid 0: the calling thread
    return capHeader;
  }
  const low = (v: bigint): number => Number(v & 0xffff_ffffn);
  const high = (v: bigint): number => Number((v >> 32n) & 0xffff_ffffn);
  const join64 = (at: number): bigint => BigInt(capData.readUInt32LE(at)) | (BigInt(capData.readUInt32LE(at + 12)) << 32n);

  /** A msghdr over `body` with room for `nfds` fds of SCM_RIGHTS (the buffers stay referenced by the result). */
  function msg(body: Buffer, nfds: number): { header: Buffer; iov: Buffer; control: Buffer } {
    const iov = Buffer.alloc(IOVEC.size);
    iov.writeBigUInt64LE(koffi.address(body), IOVEC.base);
    iov.writeBigUInt64LE(BigInt(body.byteLength), IOVEC.len);
    const space = CMSG.data + Math.ceil((4 * Math.max(nfds, 1)) / 8) * 8; // CMSG_SPACE
    const control = Buffer.alloc(space);
    control.writeBigUInt64LE(BigInt(CMSG.data + 4 * nfds), CMSG.len); // CMSG_LEN
    control.writeInt32LE(SOL_SOCKET, CMSG.level);
    control.writeInt32LE(SCM_RIGHTS, CMSG.type);
    const header = Buffer.alloc(MSGHDR.size);
    header.writeBigUInt64LE(koffi.address(iov), MSGHDR.iov);
    header.writeBigUInt64LE(1n, MSGHDR.iovlen);
    header.writeBigUInt64LE(koffi.address(control), MSGHDR.control);
    header.writeBigUInt64LE(BigInt(space), MSGHDR.controllen);
    return { header, iov, control };
  }

  function fail(op: string): never {
    throw new SyscallError(op, koffi.errno());
  }

  function checkLength(op: string, n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new SysArgError(`length ${n} must be a non-negative integer`, op);
  }

  const sys: Sys = {
    open(path, flags) {
      const fd = c.open(path, flags, 0) as number;
      if (fd < 0) fail(`open ${path}`);
      return fd;
    },
    close(fd) {
      if ((c.close(fd) as number) < 0) fail(`close fd ${fd}`);
    },
    ioctl(fd, request, arg) {
      const r = (
        arg === undefined ? c.ioctlInt(fd, request, 0) : typeof arg === 'number' ? c.ioctlInt(fd, request, arg) : c.ioctlPtr(fd, request, arg)
      ) as number;
      if (r < 0) fail(`ioctl ${ioctlName(request)} on fd ${fd}`);
      return r;
    },
    mmap(addr, length, prot, flags, fd, offset) {
      checkLength('mmap', length);
      const p = c.mmap(addr, length, prot, flags, fd, offset) as bigint;
      if (p === MAP_FAILED) fail(`mmap ${length} bytes of fd ${fd} at offset 0x${offset.toString(16)}`);
      return p;
    },
    munmap(addr, length) {
      if ((c.munmap(addr, length) as number) < 0) fail(`munmap 0x${addr.toString(16)}`);
    },
    memfdCreate(name, flags) {
      const fd = c.memfdCreate(name, flags) as number;
      if (fd < 0) fail(`memfd_create ${name}`);
      return fd;
    },
    ftruncate(fd, length) {
      checkLength('ftruncate', length);
      if ((c.ftruncate(fd, length) as number) < 0) fail(`ftruncate fd ${fd} to ${length}`);
    },
    pread(fd, buf, offset) {
      const n = c.pread(fd, buf, buf.byteLength, offset) as number;
      if (n < 0) fail(`pread ${buf.byteLength} bytes of fd ${fd} at 0x${offset.toString(16)}`);
      return n;
    },
    pwrite(fd, buf, offset) {
      const n = c.pwrite(fd, buf, buf.byteLength, offset) as number;
      if (n < 0) fail(`pwrite ${buf.byteLength} bytes to fd ${fd} at 0x${offset.toString(16)}`);
      return n;
    },
    eventfd(initval, flags) {
      const fd = c.eventfd(initval, flags) as number;
      if (fd < 0) fail('eventfd');
      return fd;
    },
    eventfdRead(fd) {
      const n = c.read(fd, counter, 8) as number;
      if (n < 0) {
        const errno = koffi.errno();
        if (errno === 11) return 0n; // EAGAIN: counter is zero on a non-blocking eventfd
        throw new SyscallError(`read eventfd ${fd}`, errno);
      }
      return counter.readBigUInt64LE(0);
    },
    eventfdWrite(fd, value) {
      counter.writeBigUInt64LE(value, 0);
      if ((c.write(fd, counter, 8) as number) < 0) fail(`write eventfd ${fd}`);
    },
    poll(fd, onReadable): PollHandle {
      let closed = false;
      // LAB-NOTES: the callback receives (status, events), although koffi's bundled types say (events).
      const h = koffi.node.poll(fd, { readable: true }, (status: unknown, events: unknown) => {
        if (closed) return;
        if (typeof status === 'number' && status < 0) {
          // The fd went bad (closed under us): stop rather than spin.
          closed = true;
          h.close();
          return;
        }
        const ev = (events ?? status) as { readable?: boolean };
        if (ev && ev.readable) onReadable();
      });
      return {
        close() {
          if (closed) return;
          closed = true;
          h.close();
        },
      };
    },
    fcntl(fd, cmd, arg) {
      const r = c.fcntl(fd, cmd, 'int', arg) as number;
      if (r < 0) fail(`fcntl ${cmd} on fd ${fd}`);
      return r;
    },
    pipe2(flags) {
      if ((c.pipe2(fdPair, flags) as number) < 0) fail('pipe2');
      return [fdPair.readInt32LE(0), fdPair.readInt32LE(4)];
    },
    socketpair(domain, type, protocol) {
      if ((c.socketpair(domain, type, protocol, fdPair) as number) < 0) fail('socketpair');
      return [fdPair.readInt32LE(0), fdPair.readInt32LE(4)];
    },
    sendFds(fd, data, fds, flags) {
      if (data.byteLength < 1) throw new SysArgError('sendmsg with fds needs at least one byte of data', 'sendmsg');
      if (fds.length > MAX_PASSED_FDS) throw new SysArgError(`at most ${MAX_PASSED_FDS} fds in one message; got ${fds.length}`, 'sendmsg');
      for (const f of fds) if (!Number.isInteger(f) || f < 0) throw new SysArgError(`fd ${f} is not a file descriptor`, 'sendmsg');
      const body = Buffer.from(data);
      const m = msg(body, fds.length);
      fds.forEach((f, i) => m.control.writeInt32LE(f, CMSG.data + 4 * i));
      if (fds.length === 0) m.header.writeBigUInt64LE(0n, MSGHDR.controllen);
      const r = c.sendmsg(fd, m.header, flags) as number;
      if (r < 0) fail(`sendmsg on fd ${fd}`);
      void body.length;
      return r;
    },
    recvFds(fd, data, maxFds, flags) {
      if (!Number.isInteger(maxFds) || maxFds < 0 || maxFds > MAX_PASSED_FDS) throw new SysArgError(`maxFds ${maxFds}: 0 to ${MAX_PASSED_FDS}`, 'recvmsg');
      const body = Buffer.alloc(data.byteLength);
      const m = msg(body, maxFds);
      const r = c.recvmsg(fd, m.header, flags | MSG_CMSG_CLOEXEC) as number;
      if (r < 0) fail(`recvmsg on fd ${fd}`);
      data.set(body.subarray(0, r));
      const fds: number[] = [];
      let extra = false;
      const controllen = Number(m.header.readBigUInt64LE(MSGHDR.controllen));
      if (controllen >= CMSG.data && m.control.readInt32LE(CMSG.level) === SOL_SOCKET && m.control.readInt32LE(CMSG.type) === SCM_RIGHTS) {
        const n = (Number(m.control.readBigUInt64LE(CMSG.len)) - CMSG.data) / 4;
        // The control buffer is rounded up to 8 bytes, so one fd more than asked may fit: closed, and reported as truncated.
        for (let i = 0; i < n; i++) {
          const f = m.control.readInt32LE(CMSG.data + 4 * i);
          if (i < maxFds) fds.push(f);
          else c.close(f);
        }
        extra = n > maxFds;
      }
      const truncated = extra || (m.header.readInt32LE(MSGHDR.flags) & MSG_CTRUNC) !== 0;
      return { bytes: r, fds, truncated };
    },
    socket(domain, type, protocol) {
      const r = c.socket(domain, type, protocol) as number;
      if (r < 0) fail(`socket ${domain} ${type}`);
      return r;
    },
    bindUnix(fd, path) {
      const [addr, len] = sockaddrUn(path, 'bind');
      if ((c.bind(fd, addr, len) as number) < 0) fail(`bind fd ${fd} to ${path}`);
    },
    connectUnix(fd, path) {
      const [addr, len] = sockaddrUn(path, 'connect');
      if ((c.connect(fd, addr, len) as number) < 0) fail(`connect fd ${fd} to ${path}`);
    },
    send(fd, data, flags) {
      const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      const r = c.send(fd, body, body.length, flags) as number;
      if (r < 0) fail(`send on fd ${fd}`);
      return r;
    },
    sendToUnix(fd, data, path, flags) {
      const [addr, len] = sockaddrUn(path, 'sendto');
      const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      const r = c.sendto(fd, body, body.length, flags, addr, len) as number;
      if (r < 0) fail(`sendto ${path} on fd ${fd}`);
      return r;
    },
    recv(fd, data, flags) {
      const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      const r = c.recv(fd, body, body.length, flags) as number;
      if (r < 0) fail(`recv on fd ${fd}`);
      return r;
    },
    prctl(option, arg2) {
      const r = c.prctl(option, 'unsigned long', arg2, 'unsigned long', 0, 'unsigned long', 0, 'unsigned long', 0) as number;
      if (r < 0) fail(`prctl ${option}`);
      return r;
    },
    seccomp(operation, flags, program) {
      const nr = SYS_SECCOMP[process.arch];
      if (nr === undefined) throw new SysArgError(`seccomp: no syscall number known for architecture ${process.arch}`, 'seccomp');
      const n = program.byteLength / SOCK_FPROG.filterSize;
      if (!Number.isInteger(n) || n < 1 || n > 4096) {
        throw new SysArgError(`a BPF program is 1 to 4096 instructions of 8 bytes; got ${program.byteLength} bytes`, 'seccomp');
      }
      const filter = Buffer.from(program); // a copy that stays alive across the call
      const fprog = Buffer.alloc(SOCK_FPROG.size);
      fprog.writeUInt16LE(n, SOCK_FPROG.len);
      fprog.writeBigUInt64LE(koffi.address(filter), SOCK_FPROG.filter);
      const r = c.syscall(nr, 'long', operation, 'long', flags, 'void *', fprog) as number;
      if (r < 0) fail('seccomp');
      // With TSYNC a positive result is the id of a thread that could not be synchronised.
      if (r > 0) throw new SyscallError('seccomp', 0, `thread ${r} could not be synchronised (TSYNC)`);
      void filter.length;
    },
    capget(): CapSets {
      if ((c.capget(capHeaderSelf(), capData) as number) < 0) fail('capget');
      return { effective: join64(0), permitted: join64(4), inheritable: join64(8) };
    },
    capset(sets: CapSets) {
      for (const [i, v] of [sets.effective, sets.permitted, sets.inheritable].entries()) {
        if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new SysArgError(`capability sets are 64-bit masks; got ${v}`, 'capset');
        capData.writeUInt32LE(low(v), i * 4);
        capData.writeUInt32LE(high(v), 12 + i * 4);
      }
      if ((c.capset(capHeaderSelf(), capData) as number) < 0) fail('capset');
    },
    schedYield() {
      // Cannot fail on Linux (it always returns 0).
      c.schedYield();
    },
    getrlimit(resource) {
      if ((c.getrlimit(resource, rlim) as number) < 0) fail(`getrlimit ${resource}`);
      return { cur: rlim.readBigUInt64LE(0), max: rlim.readBigUInt64LE(8) };
    },
    setrlimit(resource, limit: Rlimit) {
      rlim.writeBigUInt64LE(limit.cur, 0);
      rlim.writeBigUInt64LE(limit.max, 8);
      if ((c.setrlimit(resource, rlim) as number) < 0) fail(`setrlimit ${resource}`);
    },
    view(addr, length) {
      if (!Number.isSafeInteger(length) || length <= 0 || length > MAX_VIEW_BYTES) {
        throw new SysArgError(`a view is 1 byte to 4 GiB - 1 (koffi.view aborts above); got ${length}: map in pieces`, 'view');
      }
      if (addr === 0n) throw new SysArgError('a view of address 0', 'view');
      return koffi.view(addr, length);
    },
  };
  return sys;
}
