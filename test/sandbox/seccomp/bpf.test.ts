import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  assemble,
  encode,
  evaluate,
  AUDIT_ARCH_X86_64,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SOCK_FILTER_SIZE,
  X32_SYSCALL_BIT,
} from '../../../sandbox/seccomp/bpf.js';

const EPERM = 1;
const spec = {
  rules: [
    { nr: 0, action: { kind: 'allow' as const } },
    { nr: 1, action: { kind: 'allow' as const } },
    { nr: 257, action: { kind: 'errno' as const, errno: EPERM } },
    { nr: 16, action: { kind: 'allow' as const }, argIn: { arg: 1, values: [0x3b6b, 0x5421] } },
    { nr: 59, action: { kind: 'kill' as const } },
  ],
  defaultAction: { kind: 'errno' as const, errno: 38 },
};

test('allowed, errno and killed calls get their actions; everything else the default', () => {
  const p = assemble(spec);
  assert.is(evaluate(p, { nr: 0 }), SECCOMP_RET_ALLOW);
  assert.is(evaluate(p, { nr: 1 }), SECCOMP_RET_ALLOW);
  assert.is(evaluate(p, { nr: 257 }), (SECCOMP_RET_ERRNO | EPERM) >>> 0);
  assert.is(evaluate(p, { nr: 59 }), SECCOMP_RET_KILL_PROCESS);
  assert.is(evaluate(p, { nr: 2 }), (SECCOMP_RET_ERRNO | 38) >>> 0);
});

test('an argument-filtered rule allows only the listed values and falls through otherwise', () => {
  const p = assemble(spec);
  assert.is(evaluate(p, { nr: 16, args: [3, 0x3b6b] }), SECCOMP_RET_ALLOW);
  assert.is(evaluate(p, { nr: 16, args: [3, 0x5421] }), SECCOMP_RET_ALLOW);
  assert.is(evaluate(p, { nr: 16, args: [3, 0x3b71] }), (SECCOMP_RET_ERRNO | 38) >>> 0, 'VFIO_IOMMU_MAP_DMA must not pass');
  // rules after an argument-filtered one still work (nr reloaded)
  assert.is(evaluate(p, { nr: 59 }), SECCOMP_RET_KILL_PROCESS);
});

test('another architecture and the x32 syscall table are killed before any rule', () => {
  const p = assemble(spec);
  assert.is(evaluate(p, { nr: 0, arch: 0x40000003 /* AUDIT_ARCH_I386 */ }), SECCOMP_RET_KILL_PROCESS);
  assert.is(evaluate(p, { nr: X32_SYSCALL_BIT | 0 }), SECCOMP_RET_KILL_PROCESS);
  assert.is(evaluate(p, { nr: 0, arch: AUDIT_ARCH_X86_64 }), SECCOMP_RET_ALLOW);
});

test('encode writes struct sock_filter: u16 code, u8 jt, u8 jf, u32 k, little-endian', () => {
  const p = assemble(spec);
  const b = encode(p);
  assert.is(b.length, p.length * SOCK_FILTER_SIZE);
  for (let n = 0; n < p.length; n++) {
    assert.is(b.readUInt16LE(n * 8), p[n]!.code);
    assert.is(b[n * 8 + 2], p[n]!.jt);
    assert.is(b[n * 8 + 3], p[n]!.jf);
    assert.is(b.readUInt32LE(n * 8 + 4), p[n]!.k);
  }
});

test('bad rules are refused with a stable code', () => {
  assert.throws(
    () => assemble({ rules: [{ nr: -1, action: { kind: 'allow' } }], defaultAction: { kind: 'kill' } }),
    (e: { code: string }) => e.code === 'ERR_SECCOMP_RULE',
  );
  assert.throws(
    () => assemble({ rules: [{ nr: 16, action: { kind: 'allow' }, argIn: { arg: 7, values: [1] } }], defaultAction: { kind: 'kill' } }),
    (e: { code: string }) => e.code === 'ERR_SECCOMP_RULE',
  );
  assert.throws(
    () => assemble({ rules: [], defaultAction: { kind: 'errno', errno: 0 } }),
    (e: { code: string }) => e.code === 'ERR_SECCOMP_ERRNO',
  );
  const huge = Array.from({ length: 2100 }, (_, i) => ({ nr: i, action: { kind: 'allow' as const } }));
  assert.throws(
    () => assemble({ rules: huge, defaultAction: { kind: 'kill' } }),
    (e: { code: string }) => e.code === 'ERR_SECCOMP_TOO_LONG',
  );
});

test.run();
