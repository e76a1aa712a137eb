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
  EQ64_LENGTH,
  eq64,
  u64,
  seccompDataArgHi,
  seccompDataArgLo,
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

test('eq64 returns only when both halves of the argument match, and falls through otherwise', () => {
  const RET = 0x1234;
  const FALL = 0x5678;
  const prog = [...eq64(2, 0x1_0000_0005n, RET), { code: 0x06, jt: 0, jf: 0, k: FALL }];
  assert.is(eq64(2, 5, RET).length, EQ64_LENGTH);
  assert.is(prog[0]!.k, seccompDataArgHi(2));
  assert.is(prog[2]!.k, seccompDataArgLo(2));
  assert.is(evaluate(prog, { nr: 0, args: [0, 0, 0x1_0000_0005n] }), RET);
  assert.is(evaluate(prog, { nr: 0, args: [0, 0, 5] }), FALL, 'the low half alone is not enough');
  assert.is(evaluate(prog, { nr: 0, args: [0, 0, 0x1_0000_0000n] }), FALL, 'the high half alone is not enough');
  assert.is(evaluate(prog, { nr: 0, args: [0, 0, 0x2_0000_0005n] }), FALL);
  // negative numbers are their two's complement, as a sign-extended int argument arrives
  const neg = [...eq64(0, -100, RET), { code: 0x06, jt: 0, jf: 0, k: FALL }];
  assert.is(evaluate(neg, { nr: 0, args: [0xffff_ffff_ffff_ff9cn] }), RET);
  assert.is(evaluate(neg, { nr: 0, args: [0xffff_ff9c] }), FALL);
  assert.is(u64(-1), 0xffff_ffff_ffff_ffffn);
  assert.throws(
    () => u64(2 ** 64),
    (e: { code: string }) => e.code === 'ERR_SECCOMP_RULE',
  );
  assert.throws(
    () => u64(1.5),
    (e: { code: string }) => e.code === 'ERR_SECCOMP_RULE',
  );
});

test('a 64-bit argument rule matches whole values; a 32-bit one reads the low half as the kernel does', () => {
  const DEFAULT = (SECCOMP_RET_ERRNO | 38) >>> 0;
  const p = assemble({
    rules: [
      { nr: 72, action: { kind: 'errno', errno: EPERM }, argIn: { arg: 1, values: [8, 10], width: 32 } },
      { nr: 72, action: { kind: 'allow' } },
      { nr: 234, action: { kind: 'allow' }, argIn: { arg: 0, values: [4242, 0x1_0000_0001n], width: 64 } },
      { nr: 59, action: { kind: 'kill' } },
    ],
    defaultAction: { kind: 'errno', errno: 38 },
  });
  // 32-bit refusal: the upper half cannot hide the command from it
  assert.is(evaluate(p, { nr: 72, args: [3, 8] }), (SECCOMP_RET_ERRNO | EPERM) >>> 0);
  assert.is(evaluate(p, { nr: 72, args: [3, 0x1_0000_0008n] }), (SECCOMP_RET_ERRNO | EPERM) >>> 0);
  assert.is(evaluate(p, { nr: 72, args: [3, 10] }), (SECCOMP_RET_ERRNO | EPERM) >>> 0);
  assert.is(evaluate(p, { nr: 72, args: [3, 4] }), SECCOMP_RET_ALLOW, 'other commands fall through to the allowance');
  // 64-bit allowance: both halves
  assert.is(evaluate(p, { nr: 234, args: [4242, 4242, 9] }), SECCOMP_RET_ALLOW);
  assert.is(evaluate(p, { nr: 234, args: [0x1_0000_1092n, 4242, 9] }), DEFAULT, 'the same low half with the high half set');
  assert.is(evaluate(p, { nr: 234, args: [0x1_0000_0001n] }), SECCOMP_RET_ALLOW);
  assert.is(evaluate(p, { nr: 234, args: [1] }), DEFAULT);
  assert.is(evaluate(p, { nr: 234, args: [4243] }), DEFAULT);
  // rules after a 64-bit block still see the syscall number
  assert.is(evaluate(p, { nr: 59 }), SECCOMP_RET_KILL_PROCESS);
  assert.throws(
    () =>
      assemble({
        rules: [{ nr: 1, action: { kind: 'allow' }, argIn: { arg: 0, values: Array.from({ length: 51 }, (_, i) => i), width: 64 } }],
        defaultAction: { kind: 'kill' },
      }),
    (e: { code: string }) => e.code === 'ERR_SECCOMP_RULE',
  );
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
