/**
 * A classic-BPF assembler for seccomp filters (Linux Documentation/userspace-api/seccomp_filter.rst).
 *
 * The filter sees `struct seccomp_data` (linux/seccomp.h):
 *   int nr @0; __u32 arch @4; __u64 instruction_pointer @8; __u64 args[6] @16.
 * Each instruction is `struct sock_filter` (linux/filter.h): u16 code, u8 jt, u8 jf, u32 k = 8 bytes.
 *
 * The program built here is deliberately simple to audit: check the architecture (kill on any other,
 * so the x32 and i386 syscall tables cannot be used to slip past the list), load the syscall number,
 * refuse x32 numbers, then one `jeq nr / ret action` pair per rule, then the default action.
 * Pairs keep every jump offset at 0 or 1, so no list length can overflow the 8-bit offsets.
 *
 * A rule may also test one argument against a set of values. Classic BPF loads 32 bits at a time,
 * and an argument is 64 bits: a 64-bit compare (`eq64`) needs both halves. Which width is right
 * depends on what the kernel reads: for an argument the kernel takes as an int (a pid, an fcntl or
 * ioctl command), only the low half matters to it, so a *refusal* must compare the low half alone
 * (`F_SETOWN | 1 << 32` is F_SETOWN to the kernel), while an *allowance* may compare all 64 bits
 * (stricter: a value with the upper half set is simply not allowed).
 */
import { SeccompError } from './errors.js';

// linux/bpf_common.h
export const BPF_LD = 0x00,
  BPF_JMP = 0x05,
  BPF_RET = 0x06,
  BPF_ALU = 0x04;
export const BPF_W = 0x00,
  BPF_ABS = 0x20,
  BPF_K = 0x00;
export const BPF_JEQ = 0x10,
  BPF_JGE = 0x30,
  BPF_AND = 0x50;

// linux/audit.h: EM_X86_64 (62) | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
export const AUDIT_ARCH_X86_64 = 0xc000003e;
// asm/unistd_x32.h: __X32_SYSCALL_BIT
export const X32_SYSCALL_BIT = 0x40000000;

// linux/seccomp.h
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;

/** Offsets in struct seccomp_data. */
export const SECCOMP_DATA_NR = 0;
export const SECCOMP_DATA_ARCH = 4;
/** Low 32 bits of args[i] on a little-endian machine. */
export const seccompDataArgLo = (i: number): number => 16 + 8 * i;
/** High 32 bits of args[i] on a little-endian machine. */
export const seccompDataArgHi = (i: number): number => 20 + 8 * i;

export const SOCK_FILTER_SIZE = 8;
/** BPF_MAXINSNS (linux/bpf_common.h): the kernel refuses longer classic programs. */
export const BPF_MAXINSNS = 4096;

export type Action = { kind: 'allow' } | { kind: 'errno'; errno: number } | { kind: 'kill' } | { kind: 'log' } | { kind: 'trap' };

export function actionValue(a: Action): number {
  switch (a.kind) {
    case 'allow':
      return SECCOMP_RET_ALLOW;
    case 'errno':
      if (!Number.isInteger(a.errno) || a.errno < 1 || a.errno > 4095) {
        throw new SeccompError('ERR_SECCOMP_ERRNO', `seccomp errno action needs an errno in 1..4095, got ${a.errno}`);
      }
      return (SECCOMP_RET_ERRNO | a.errno) >>> 0;
    case 'kill':
      return SECCOMP_RET_KILL_PROCESS;
    case 'log':
      return SECCOMP_RET_LOG;
    case 'trap':
      return SECCOMP_RET_TRAP;
  }
}

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const stmt = (code: number, k: number): Insn => ({ code, jt: 0, jf: 0, k: k >>> 0 });
const jump = (code: number, k: number, jt: number, jf: number): Insn => ({ code, jt, jf, k: k >>> 0 });

/**
 * The rule applies only when argument `arg` is one of `values`. `width` 32 (the default) compares
 * the low half only (what the kernel reads of an int argument); 64 compares both halves. A value
 * is a 64-bit pattern: a negative number stands for its two's complement (-100 is AT_FDCWD).
 */
export interface ArgIn {
  arg: number;
  values: readonly (number | bigint)[];
  width?: 32 | 64;
}

/** One rule: a syscall number, optionally only when one argument is in a set. */
export interface Rule {
  nr: number;
  action: Action;
  argIn?: ArgIn;
}

/** Instructions per value of a 64-bit argument set (see `eq64`). */
export const EQ64_LENGTH = 5;

/** A 64-bit pattern from a number (two's complement when negative) or a bigint. */
export function u64(v: number | bigint): bigint {
  if (typeof v === 'number' && !Number.isSafeInteger(v)) {
    throw new SeccompError('ERR_SECCOMP_RULE', `seccomp argument value ${v} is not an exact integer; pass a bigint`);
  }
  const b = BigInt(v);
  if (b < -(1n << 63n) || b >= 1n << 64n) throw new SeccompError('ERR_SECCOMP_RULE', `seccomp argument value ${v} does not fit in 64 bits`);
  return BigInt.asUintN(64, b);
}

/**
 * `return ret` when args[arg] equals `value` in all 64 bits, else fall through to the next
 * instruction (the accumulator then holds a half of the argument, not the syscall number):
 *   ld hi(arg); jeq hi(value) ? next : +3; ld lo(arg); jeq lo(value) ? next : +1; ret
 */
export function eq64(arg: number, value: number | bigint, ret: number): Insn[] {
  const v = u64(value);
  const hi = Number(v >> 32n);
  const lo = Number(v & 0xffff_ffffn);
  return [
    stmt(BPF_LD | BPF_W | BPF_ABS, seccompDataArgHi(arg)),
    jump(BPF_JMP | BPF_JEQ | BPF_K, hi, 0, 3),
    stmt(BPF_LD | BPF_W | BPF_ABS, seccompDataArgLo(arg)),
    jump(BPF_JMP | BPF_JEQ | BPF_K, lo, 0, 1),
    stmt(BPF_RET | BPF_K, ret),
  ];
}

export interface FilterSpec {
  rules: readonly Rule[];
  /** What every syscall not named by a rule gets. */
  defaultAction: Action;
}

/** Assemble a filter into the instructions the kernel will run. */
export function assemble(spec: FilterSpec): Insn[] {
  const p: Insn[] = [];
  const kill = SECCOMP_RET_KILL_PROCESS;
  p.push(stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_ARCH));
  p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  p.push(stmt(BPF_RET | BPF_K, kill));
  p.push(stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR));
  p.push(jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1));
  p.push(stmt(BPF_RET | BPF_K, kill));
  for (const r of spec.rules) {
    if (!Number.isInteger(r.nr) || r.nr < 0 || r.nr >= X32_SYSCALL_BIT) {
      throw new SeccompError('ERR_SECCOMP_RULE', `seccomp rule names syscall number ${r.nr}, which is not a valid x86_64 number`);
    }
    const ret = actionValue(r.action);
    if (!r.argIn) {
      p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, r.nr, 0, 1));
      p.push(stmt(BPF_RET | BPF_K, ret));
      continue;
    }
    const { arg, values, width = 32 } = r.argIn;
    if (!Number.isInteger(arg) || arg < 0 || arg > 5) {
      throw new SeccompError('ERR_SECCOMP_RULE', `seccomp rule for syscall ${r.nr} filters argument ${arg}; arguments are 0..5`);
    }
    if (width !== 32 && width !== 64) {
      throw new SeccompError('ERR_SECCOMP_RULE', `seccomp rule for syscall ${r.nr} compares ${String(width)} bits; 32 or 64`);
    }
    // 8-bit jump offsets: the skip over the block must stay below 256 instructions.
    const perValue = width === 64 ? EQ64_LENGTH : 2;
    const most = Math.floor((255 - 2) / perValue);
    if (values.length === 0 || values.length > most) {
      throw new SeccompError('ERR_SECCOMP_RULE', `seccomp rule for syscall ${r.nr} needs 1..${most} argument values, got ${values.length}`);
    }
    // if (nr != r.nr) skip the block; else compare the argument with each value, and on no match
    // reload nr and fall through to the following rules.
    const block = (width === 64 ? 0 : 1) + values.length * perValue + 1;
    p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, r.nr, 0, block));
    if (width === 64) {
      for (const v of values) p.push(...eq64(arg, v, ret));
    } else {
      p.push(stmt(BPF_LD | BPF_W | BPF_ABS, seccompDataArgLo(arg)));
      for (const v of values) {
        p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, Number(u64(v) & 0xffff_ffffn), 0, 1));
        p.push(stmt(BPF_RET | BPF_K, ret));
      }
    }
    p.push(stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR));
  }
  p.push(stmt(BPF_RET | BPF_K, actionValue(spec.defaultAction)));
  if (p.length > BPF_MAXINSNS) {
    throw new SeccompError('ERR_SECCOMP_TOO_LONG', `seccomp filter has ${p.length} instructions; the kernel takes at most ${BPF_MAXINSNS}`);
  }
  return p;
}

/** Encode instructions as the `struct sock_filter` array the kernel reads. */
export function encode(insns: readonly Insn[]): Buffer {
  const b = Buffer.alloc(insns.length * SOCK_FILTER_SIZE);
  insns.forEach((i, n) => {
    const o = n * SOCK_FILTER_SIZE;
    b.writeUInt16LE(i.code, o);
    b.writeUInt8(i.jt, o + 2);
    b.writeUInt8(i.jf, o + 3);
    b.writeUInt32LE(i.k, o + 4);
  });
  return b;
}

/**
 * Run a program on one seccomp_data, as the kernel would (only the instructions `assemble` emits).
 * Used by tests and by `dmabox policy show` to explain what a profile does to a given call.
 */
export function evaluate(insns: readonly Insn[], data: { nr: number; arch?: number; args?: readonly (number | bigint)[] }): number {
  let acc = 0;
  const load = (off: number): number => {
    if (off === SECCOMP_DATA_NR) return data.nr >>> 0;
    if (off === SECCOMP_DATA_ARCH) return (data.arch ?? AUDIT_ARCH_X86_64) >>> 0;
    if (off < 16 || off >= 64 || off % 4 !== 0) {
      throw new SeccompError('ERR_SECCOMP_INSN', `load from offset ${off} of struct seccomp_data, which the interpreter does not model`);
    }
    const v = u64(data.args?.[Math.floor((off - 16) / 8)] ?? 0);
    return Number((off - 16) % 8 === 0 ? v & 0xffff_ffffn : v >> 32n);
  };
  for (let pc = 0; pc < insns.length; pc++) {
    const i = insns[pc]!;
    switch (i.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        acc = load(i.k);
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += acc === i.k ? i.jt : i.jf;
        break;
      case BPF_JMP | BPF_JGE | BPF_K:
        pc += acc >= i.k ? i.jt : i.jf;
        break;
      case BPF_RET | BPF_K:
        return i.k;
      default:
        throw new SeccompError('ERR_SECCOMP_INSN', `unknown BPF instruction 0x${i.code.toString(16)} at ${pc}`);
    }
  }
  throw new SeccompError('ERR_SECCOMP_INSN', 'BPF program fell off its end without a return');
}
