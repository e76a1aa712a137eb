/**
 * The real seam (koffi over libc) on this machine: no VFIO needed for these calls. seccomp and
 * prctl run in a child process, since they cannot be undone.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import 'vfio-bindings'; // registers the VFIO ioctl names the seam's errors use
import {
  defaultSys,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  MAP_SHARED,
  MFD_CLOEXEC,
  O_RDONLY,
  PROT_READ,
  PROT_WRITE,
  RLIMIT_MEMLOCK,
  SyscallError,
  type SysArgError,
  AF_UNIX,
  F_GETFD,
  F_SETFD,
  FD_CLOEXEC,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  O_CLOEXEC,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
} from 'linux-sys';

/** Run an ESM snippet in a child node with the same loader flags (tsx in the dev loop, none over dist). */
function child(code: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', code], { encoding: 'utf8', cwd: process.cwd(), timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('importing linux-sys or vfio-bindings does not load koffi; the first defaultSys() does', () => {
  const r = child(`
    import { createRequire } from 'node:module';
    const req = createRequire(import.meta.url);
    await import('vfio-bindings');
    const v = await import('linux-sys');
    const loaded = () => Object.keys(req.cache).some((k) => k.includes('/koffi/'));
    const before = loaded();
    v.defaultSys();
    console.log(JSON.stringify({ before, after: loaded() }));
  `);
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim()), { before: false, after: true });
});

test('a failing call raises SyscallError with errno number and name read right after it', () => {
  const sys = defaultSys();
  try {
    sys.open('/nonexistent/dmabox', O_RDONLY);
    assert.unreachable('open should fail');
  } catch (e) {
    assert.instance(e, SyscallError);
    const err = e as SyscallError;
    assert.is(err.errno, 2);
    assert.is(err.errnoName, 'ENOENT');
    assert.is(err.code, 'ERR_SYSCALL');
    assert.match(err.message, /open \/nonexistent\/dmabox: failed \(ENOENT\)/);
  }
});

test('memfd + ftruncate + mmap + view alias the same memory; pread/pwrite see it; ioctl on a memfd is ENOTTY', () => {
  const sys = defaultSys();
  const fd = sys.memfdCreate('dmabox-test', MFD_CLOEXEC);
  try {
    sys.ftruncate(fd, 8192);
    const addr = sys.mmap(0n, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n);
    assert.is(addr % 4096n, 0n);
    const u8 = new Uint8Array(sys.view(addr, 8192));
    u8[4096] = 0x5a;
    const b = new Uint8Array(1);
    assert.is(sys.pread(fd, b, 4096n), 1);
    assert.is(b[0], 0x5a);
    sys.pwrite(fd, new Uint8Array([0xa5]), 10n);
    assert.is(u8[10], 0xa5);
    try {
      sys.ioctl(fd, 0x3b64);
      assert.unreachable('ioctl on a memfd');
    } catch (e) {
      assert.is((e as SyscallError).errnoName, 'ENOTTY');
      assert.match((e as Error).message, /VFIO_GET_API_VERSION/);
    }
    sys.munmap(addr, 8192);
  } finally {
    sys.close(fd);
  }
});

test('view refuses 4 GiB and more instead of letting koffi abort the process', () => {
  const sys = defaultSys();
  try {
    sys.view(0x7f0000000000n, 2 ** 32);
    assert.unreachable('view of 4 GiB');
  } catch (e) {
    assert.is((e as SysArgError).code, 'ERR_SYS_ARG');
    assert.match((e as Error).message, /in pieces/);
  }
});

test('eventfd: write/read of the 8-byte counter, 0n when empty (non-blocking), poll wakes in the event loop', async () => {
  const sys = defaultSys();
  const fd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  try {
    sys.eventfdWrite(fd, 3n);
    assert.is(sys.eventfdRead(fd), 3n);
    assert.is(sys.eventfdRead(fd), 0n);
    const woke = new Promise<bigint>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('poll did not wake within 2 s')), 2000);
      const h = sys.poll(fd, () => {
        clearTimeout(t);
        h.close();
        resolve(sys.eventfdRead(fd));
      });
    });
    setTimeout(() => sys.eventfdWrite(fd, 1n), 10);
    assert.is(await woke, 1n);
  } finally {
    sys.close(fd);
  }
});

test('sched_yield returns (the give-way of pollers; it cannot fail on Linux)', () => {
  const sys = defaultSys();
  const t0 = performance.now();
  for (let i = 0; i < 1000; i++) sys.schedYield();
  assert.ok(performance.now() - t0 < 5000);
});

test('getrlimit/setrlimit RLIMIT_MEMLOCK', () => {
  const sys = defaultSys();
  const l = sys.getrlimit(RLIMIT_MEMLOCK);
  assert.ok(typeof l.cur === 'bigint' && typeof l.max === 'bigint');
  assert.ok(l.cur <= l.max);
  sys.setrlimit(RLIMIT_MEMLOCK, l);
  assert.equal(sys.getrlimit(RLIMIT_MEMLOCK), l);
});

test('prctl(PR_SET_NO_NEW_PRIVS) and a TSYNC seccomp filter (getppid -> EPERM) take effect, in a child', () => {
  const r = child(`
    import * as v from 'linux-sys';
    const sys = v.defaultSys();
    const before = process.ppid;
    sys.prctl(v.PR_SET_NO_NEW_PRIVS, 1);
    const nnp = sys.prctl(v.PR_GET_NO_NEW_PRIVS, 0);
    // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; } x 5 (linux/filter.h, linux/seccomp.h)
    const ins = [
      [0x20, 0, 0, 4],            // ld [4]: arch
      [0x15, 1, 0, 0xc000003e],   // jeq AUDIT_ARCH_X86_64 ? next+1 : next
      [0x06, 0, 0, 0x7fff0000],   // ret ALLOW (another arch: leave it alone)
      [0x20, 0, 0, 0],            // ld [0]: nr
      [0x15, 0, 1, 110],          // jeq __NR_getppid
      [0x06, 0, 0, 0x00050001],   // ret ERRNO(EPERM)
      [0x06, 0, 0, 0x7fff0000],   // ret ALLOW
    ];
    const prog = new Uint8Array(8 * ins.length);
    const dv = new DataView(prog.buffer);
    ins.forEach(([c, jt, jf, k], i) => { dv.setUint16(8*i, c, true); dv.setUint8(8*i+2, jt); dv.setUint8(8*i+3, jf); dv.setUint32(8*i+4, k, true); });
    sys.seccomp(v.SECCOMP_SET_MODE_FILTER, v.SECCOMP_FILTER_FLAG_TSYNC, prog);
    let bad = 'none';
    try { sys.seccomp(v.SECCOMP_SET_MODE_FILTER, 0, new Uint8Array(3)); } catch (e) { bad = e.code; }
    console.log(JSON.stringify({ before, nnp, after: process.ppid, bad }));
  `);
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim()) as { before: number; nnp: number; after: number; bad: string };
  assert.ok(out.before > 0);
  assert.is(out.nnp, 1);
  assert.ok(out.after !== out.before, `getppid still answered ${out.after} under the filter`);
  assert.is(out.bad, 'ERR_SYS_ARG');
});

test('fcntl, pipe2, socketpair, and fds passed with SCM_RIGHTS arrive as working, close-on-exec fds', () => {
  const sys = defaultSys();
  const [r, w] = sys.pipe2(O_CLOEXEC);
  assert.is(sys.fcntl(r, F_GETFD, 0) & FD_CLOEXEC, FD_CLOEXEC);
  sys.fcntl(r, F_SETFD, 0);
  assert.is(sys.fcntl(r, F_GETFD, 0) & FD_CLOEXEC, 0);
  const [a, b] = sys.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const efd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  assert.is(sys.sendFds(a, new Uint8Array([7, 8]), [efd, w], MSG_NOSIGNAL), 2);
  const data = new Uint8Array(16);
  const got = sys.recvFds(b, data, 4, MSG_DONTWAIT);
  assert.is(got.bytes, 2);
  assert.equal([...data.subarray(0, 2)], [7, 8]);
  assert.is(got.fds.length, 2);
  assert.is(got.truncated, false);
  for (const f of got.fds) assert.is(sys.fcntl(f, F_GETFD, 0) & FD_CLOEXEC, FD_CLOEXEC, 'received fds are close-on-exec');
  // The received eventfd is the same object: a write through it is read through the original.
  sys.eventfdWrite(got.fds[0]!, 5n);
  assert.is(sys.eventfdRead(efd), 5n);
  // More fds than room: the rest are closed by the kernel and the result says so.
  sys.sendFds(a, new Uint8Array([1]), [efd, efd, efd], 0);
  const cut = sys.recvFds(b, data, 1, MSG_DONTWAIT);
  assert.is(cut.fds.length, 1);
  assert.is(cut.truncated, true);
  // Nothing waiting: EAGAIN, as a SyscallError.
  try {
    sys.recvFds(b, data, 1, MSG_DONTWAIT);
    assert.unreachable('recvmsg on an empty socket returned');
  } catch (e) {
    assert.instance(e, SyscallError);
    assert.is((e as SyscallError).errno, 11);
  }
  for (const f of [r, w, a, b, efd, ...got.fds, ...cut.fds]) sys.close(f);
});

test('datagram unix sockets: bind and sendto a path and an abstract name, recv, and the errors', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const sys = defaultSys();
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-dgram-'));
  const rx = sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const rx2 = sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const tx = sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  try {
    const path = join(dir, 'rx.sock');
    const abstract = `@dmabox-test-${process.pid}`;
    sys.bindUnix(rx, path);
    sys.bindUnix(rx2, abstract);
    assert.is(sys.sendToUnix(tx, Buffer.from('READY=1'), path, MSG_NOSIGNAL), 7);
    assert.is(sys.sendToUnix(tx, Buffer.from('STATUS=abstract'), abstract, MSG_NOSIGNAL), 15);
    const buf = new Uint8Array(64);
    let n = sys.recv(rx, buf, MSG_DONTWAIT);
    assert.is(Buffer.from(buf.subarray(0, n)).toString(), 'READY=1');
    n = sys.recv(rx2, buf, MSG_DONTWAIT);
    assert.is(Buffer.from(buf.subarray(0, n)).toString(), 'STATUS=abstract');
    // Connected: send without an address.
    const tx2 = sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    try {
      sys.connectUnix(tx2, abstract);
      assert.is(sys.send(tx2, Buffer.from('WATCHDOG=1'), MSG_NOSIGNAL), 10);
      n = sys.recv(rx2, buf, MSG_DONTWAIT);
      assert.is(Buffer.from(buf.subarray(0, n)).toString(), 'WATCHDOG=1');
      assert.throws(
        () => sys.connectUnix(tx2, join(dir, 'none')),
        (e: SyscallError) => e.errnoName === 'ENOENT',
      );
      assert.throws(
        () => sys.send(tx, Buffer.from('x'), MSG_NOSIGNAL),
        (e: SyscallError) => /send on fd/.test(e.message),
      );
    } finally {
      sys.close(tx2);
    }
    // Nothing left: EAGAIN. Nobody at the name: ECONNREFUSED or ENOENT, with the call named.
    assert.throws(
      () => sys.recv(rx, buf, MSG_DONTWAIT),
      (e: SyscallError) => e instanceof SyscallError && e.errnoName === 'EAGAIN',
    );
    assert.throws(
      () => sys.sendToUnix(tx, Buffer.from('x'), `@dmabox-nobody-${process.pid}`, MSG_NOSIGNAL),
      (e: SyscallError) => e.errnoName === 'ECONNREFUSED',
    );
    assert.throws(
      () => sys.sendToUnix(tx, Buffer.from('x'), join(dir, 'none'), MSG_NOSIGNAL),
      (e: SyscallError) => /sendto .*none/.test(e.message) && e.errnoName === 'ENOENT',
    );
    // Refused before the kernel: too long, empty abstract, a NUL.
    assert.throws(
      () => sys.bindUnix(tx, `/${'x'.repeat(200)}`),
      (e: SysArgError) => e.code === 'ERR_SYS_ARG',
    );
    assert.throws(
      () => sys.sendToUnix(tx, Buffer.from('x'), '@', 0),
      (e: SysArgError) => e.code === 'ERR_SYS_ARG',
    );
    assert.throws(
      () => sys.bindUnix(tx, '/a\0b'),
      (e: SysArgError) => e.code === 'ERR_SYS_ARG',
    );
    assert.throws(
      () => sys.socket(AF_UNIX, 999, 0),
      (e: SyscallError) => e.errnoName === 'EINVAL',
    );
  } finally {
    for (const fd of [rx, rx2, tx]) sys.close(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
