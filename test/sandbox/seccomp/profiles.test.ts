import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, existsSync } from 'node:fs';
import { IOCTL } from 'vfio-bindings';
import { evaluate, assemble, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS } from '../../../sandbox/seccomp/bpf.js';
import { filterSpec, profile, compile } from '../../../sandbox/seccomp/profiles.js';
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
  const p = assemble(filterSpec(profile('driver')));
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

test('an unknown profile is a clear error', () => {
  assert.throws(
    () => profile('nope'),
    (e: { code: string; message: string }) => e.code === 'ERR_SECCOMP_PROFILE' && e.message.includes('driver'),
  );
});

test('compile gives whole struct sock_filter records', () => {
  const b = compile(profile('driver'));
  assert.is(b.length % 8, 0);
  assert.ok(b.length / 8 < 4096);
});

test.run();
