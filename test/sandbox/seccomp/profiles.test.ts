import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, existsSync } from 'node:fs';
import { IOCTL } from 'vfio-bindings';
import { evaluate, assemble, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS } from '../../../sandbox/seccomp/bpf.js';
import { filterSpec, profile, compile, PROFILES } from '../../../sandbox/seccomp/profiles.js';
import { SYSCALLS_X86_64 } from '../../../sandbox/seccomp/syscalls.js';

const HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';

test("every syscall number we name matches the machine's asm/unistd_64.h", () => {
  assert.ok(existsSync(HEADER), `${HEADER} is missing: apt-get install linux-libc-dev`);
  const text = readFileSync(HEADER, 'utf8');
  const fromHeader = new Map<string, number>();
  for (const m of text.matchAll(/^#define __NR_(\w+) (\d+)$/gm)) fromHeader.set(m[1]!, Number(m[2]));
  for (const [name, nr] of Object.entries(SYSCALLS_X86_64)) {
    assert.is(fromHeader.get(name), nr, `__NR_${name}`);
  }
});

test('the driver profile: event loop allowed, files refused, exec and ptrace killed, MAP_DMA refused', () => {
  const p = assemble(filterSpec(profile('driver'), { pid: 4242 }));
  const n = SYSCALLS_X86_64;
  for (const s of ['read', 'write', 'futex', 'epoll_pwait', 'mmap', 'pread64', 'exit_group'] as const) {
    assert.is(evaluate(p, { nr: n[s] }), SECCOMP_RET_ALLOW, s);
  }
  assert.is(evaluate(p, { nr: n.openat }), (SECCOMP_RET_ERRNO | 1) >>> 0);
  for (const s of ['execve', 'ptrace', 'clone3', 'process_vm_writev'] as const) {
    assert.is(evaluate(p, { nr: n[s] }), SECCOMP_RET_KILL_PROCESS, s);
  }
  assert.is(evaluate(p, { nr: n.ioctl, args: [3, IOCTL.VFIO_DEVICE_SET_IRQS] }), SECCOMP_RET_ALLOW);
  for (const req of [IOCTL.VFIO_IOMMU_MAP_DMA, IOCTL.VFIO_SET_IOMMU, IOCTL.VFIO_GROUP_GET_DEVICE_FD, IOCTL.VFIO_GROUP_SET_CONTAINER]) {
    assert.is.not(evaluate(p, { nr: n.ioctl, args: [3, req] }), SECCOMP_RET_ALLOW, `ioctl 0x${req.toString(16)}`);
  }
  // a syscall no rule names
  assert.is(evaluate(p, { nr: 165 /* mount: killed */ }), SECCOMP_RET_KILL_PROCESS);
  assert.is(evaluate(p, { nr: 169 /* reboot */ }), (SECCOMP_RET_ERRNO | 1) >>> 0);
});

const EPERM_RET = (SECCOMP_RET_ERRNO | 1) >>> 0;

test('the driver profile: signals and limits only on itself, whatever the upper half of the pid', () => {
  const self = 4242;
  const p = assemble(filterSpec(profile('driver'), { pid: self }));
  const n = SYSCALLS_X86_64;
  assert.is(evaluate(p, { nr: n.tgkill, args: [self, self + 1, 6] }), SECCOMP_RET_ALLOW, 'abort() signals its own thread');
  assert.is(evaluate(p, { nr: n.tgkill, args: [self + 1, self + 1, 9] }), EPERM_RET, 'another thread group');
  assert.is(evaluate(p, { nr: n.tgkill, args: [BigInt(self) | (1n << 32n), self, 9] }), EPERM_RET, 'its pid with the upper half set');
  assert.is(evaluate(p, { nr: n.tkill, args: [self, 9] }), EPERM_RET);
  assert.is(evaluate(p, { nr: n.kill, args: [self + 1, 9] }), EPERM_RET);
  assert.is(evaluate(p, { nr: n.kill, args: [0, 9] }), EPERM_RET, 'its process group');
  assert.is(evaluate(p, { nr: n.prlimit64, args: [0, 7] }), SECCOMP_RET_ALLOW);
  assert.is(evaluate(p, { nr: n.prlimit64, args: [self, 7] }), SECCOMP_RET_ALLOW);
  assert.is(evaluate(p, { nr: n.prlimit64, args: [self + 1, 7] }), EPERM_RET);
  assert.is(evaluate(p, { nr: n.prlimit64, args: [1n << 32n, 7] }), EPERM_RET, '0 in the low half only');
});

test('the driver profile: fcntl may not name an owner, a signal or a lease; ioctl may not set an owner or type into a tty', () => {
  const p = assemble(filterSpec(profile('driver'), { pid: 4242 }));
  const n = SYSCALLS_X86_64;
  for (const [cmd, name] of [
    [8, 'F_SETOWN'],
    [15, 'F_SETOWN_EX'],
    [10, 'F_SETSIG'],
    [1024, 'F_SETLEASE'],
    [1026, 'F_NOTIFY'],
  ] as const) {
    assert.is(evaluate(p, { nr: n.fcntl, args: [3, cmd, 4243] }), EPERM_RET, name);
    assert.is(evaluate(p, { nr: n.fcntl, args: [3, BigInt(cmd) | (1n << 32n), 4243] }), EPERM_RET, `${name} with the upper half set`);
  }
  for (const [cmd, name] of [
    [1, 'F_GETFD'],
    [2, 'F_SETFD'],
    [3, 'F_GETFL'],
    [4, 'F_SETFL'],
  ] as const) {
    assert.is(evaluate(p, { nr: n.fcntl, args: [3, cmd, 0] }), SECCOMP_RET_ALLOW, name);
  }
  for (const [req, name] of [
    [0x8901, 'FIOSETOWN'],
    [0x8902, 'SIOCSPGRP'],
    [0x5412, 'TIOCSTI'],
  ] as const) {
    assert.is(evaluate(p, { nr: n.ioctl, args: [3, req] }), EPERM_RET, name);
  }
  for (const s of ['newfstatat', 'statx'] as const) assert.is(evaluate(p, { nr: n[s], args: [-100, 0, 0] }), EPERM_RET, s);
  assert.is(evaluate(p, { nr: n.fstat, args: [3] }), SECCOMP_RET_ALLOW);
});

test('every profile names each syscall once, and says why it allows or refuses it', () => {
  for (const p of Object.values(PROFILES)) {
    const seen = new Map<string, string>();
    const add = (name: string, where: string) => {
      assert.not.ok(seen.has(name), `${p.name}: ${name} is in ${seen.get(name)} and ${where}`);
      seen.set(name, where);
    };
    for (const [name, why] of Object.entries(p.allow)) {
      add(name, 'allow');
      assert.ok(why && why.length > 5, `${p.name}: allow ${name} says why`);
    }
    for (const [name, why] of Object.entries(p.refuse)) {
      add(name, 'refuse');
      assert.ok(why && why.length > 5, `${p.name}: refuse ${name} says why`);
    }
    for (const name of p.kill) add(name, 'kill');
    // an argument allowance of a call that is also allowed outright would check nothing
    for (const a of p.allowIf) {
      add(a.name, 'allowIf');
      assert.ok(a.why.length > 5);
    }
    // an argument refusal narrows an allowance: the call itself must be allowed
    for (const a of p.refuseIf) assert.ok(a.name in p.allow, `${p.name}: refuseIf ${a.name} narrows nothing`);
  }
});

test('a filter is built for a real pid', () => {
  assert.throws(
    () => filterSpec(profile('driver'), { pid: 0 }),
    (e: { code: string }) => e.code === 'ERR_SECCOMP_RULE',
  );
});

test('an unknown profile is a clear error', () => {
  assert.throws(
    () => profile('nope'),
    (e: { code: string; message: string }) => e.code === 'ERR_SECCOMP_PROFILE' && e.message.includes('driver'),
  );
});

test('compile gives whole struct sock_filter records', () => {
  const b = compile(profile('driver'), { pid: 4242 });
  assert.is(b.length % 8, 0);
  assert.ok(b.length / 8 < 4096);
});

test.run();
