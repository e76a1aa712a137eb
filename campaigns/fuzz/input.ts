/**
 * The fuzzer's input: a byte string of fixed-size directives that the NVMe model's hook
 * (sim/nvme/mutator.ts) consumes. Each directive names one device event and what to do to the
 * value the controller hands the driver there:
 *
 * | bytes | field | meaning |
 * |---|---|---|
 * | 0 | kind | `kind % 3`: 0 a BAR0 register read, 1 a completion entry, 2 Identify data |
 * | 1-2 | nth | which occurrence (u16 LE, from 0): the nth read of that register, the nth completion, the nth Identify; 0xffff: every one |
 * | 3-4 | sel | register: the dword index in BAR0 (CAP 0, CAP.hi 1, VS 2, CC 5, CSTS 7, ...); completion: the dword (`sel % 4`); Identify: the byte offset (`sel % 4096`, aligned down to a dword) |
 * | 5 | op | `op % 6`: set, xor, add, flip bit (`value % 32`), all ones, zero |
 * | 6-9 | value | u32 LE |
 *
 * A trailing partial directive is ignored, as are directives past `MAX_DIRECTIVES`. `InputMutator`
 * applies an input and records which events happened (`Observed`), which the mutators use to aim
 * new directives at events that exist.
 */
import type { NvmeMutator } from '../../sim/nvme/mutator.js';

export const DIRECTIVE_BYTES = 10;
export const MAX_DIRECTIVES = 64;
export const EVERY = 0xffff;
export const Kind = Object.freeze({ REGISTER: 0, COMPLETION: 1, IDENTIFY: 2 });
export const KINDS = 3;
export const Op = Object.freeze({ SET: 0, XOR: 1, ADD: 2, FLIP: 3, ONES: 4, ZERO: 5 });
export const OPS = 6;
const KIND_NAMES = ['register', 'completion', 'identify'];
const OP_NAMES = ['set', 'xor', 'add', 'flip', 'ones', 'zero'];
/** Register dwords counted per offset: BAR0's first 64 KiB (the registers, doorbells and MSI-X table). */
const COUNTED_DWORDS = 16384;
const IDENTIFY_BYTES = 4096;

export interface Directive {
  kind: number;
  nth: number;
  sel: number;
  op: number;
  value: number;
}

/** What an execution's device did, for aiming mutations: register dwords read (index -> reads), completions, Identify commands. */
export interface Observed {
  registers: [number, number][];
  completions: number;
  identifies: number;
}

export function decode(input: Uint8Array): Directive[] {
  const out: Directive[] = [];
  const v = new DataView(input.buffer, input.byteOffset, input.byteLength);
  for (let at = 0; at + DIRECTIVE_BYTES <= input.length && out.length < MAX_DIRECTIVES; at += DIRECTIVE_BYTES) {
    out.push({
      kind: input[at]! % KINDS,
      nth: v.getUint16(at + 1, true),
      sel: v.getUint16(at + 3, true),
      op: input[at + 5]! % OPS,
      value: v.getUint32(at + 6, true),
    });
  }
  return out;
}

export function encode(directives: readonly Directive[]): Uint8Array {
  const b = new Uint8Array(directives.length * DIRECTIVE_BYTES);
  const v = new DataView(b.buffer);
  directives.forEach((d, i) => {
    const at = i * DIRECTIVE_BYTES;
    b[at] = d.kind;
    v.setUint16(at + 1, d.nth, true);
    v.setUint16(at + 3, d.sel, true);
    b[at + 5] = d.op;
    v.setUint32(at + 6, d.value >>> 0, true);
  });
  return b;
}

/** One line per directive, for `--reproduce` and findings. */
export function describe(d: Directive): string {
  const which = d.nth === EVERY ? 'every' : `#${d.nth}`;
  const where =
    d.kind === Kind.REGISTER
      ? `register 0x${(d.sel * 4).toString(16)}`
      : d.kind === Kind.COMPLETION
        ? `completion dword ${d.sel % 4}`
        : `identify byte ${(d.sel % IDENTIFY_BYTES) & ~3}`;
  return `${KIND_NAMES[d.kind]} ${which}: ${where} ${OP_NAMES[d.op]}${d.op < Op.ONES ? ` 0x${(d.value >>> 0).toString(16)}` : ''}`;
}

export function apply(op: number, old: number, value: number): number {
  switch (op) {
    case Op.SET:
      return value >>> 0;
    case Op.XOR:
      return (old ^ value) >>> 0;
    case Op.ADD:
      return (old + value) >>> 0;
    case Op.FLIP:
      return (old ^ (1 << (value & 31))) >>> 0;
    case Op.ONES:
      return 0xffffffff;
    default:
      return 0;
  }
}

/**
 * An input applied to one controller. Directives are looked up by (event key, occurrence) in a
 * map built once; per event the cost is a counter and one map lookup. `active = false` turns it
 * off (the trial's fault-free verifier).
 */
export class InputMutator implements NvmeMutator {
  active = true;
  /** Directives fired, in order (for `--reproduce`). */
  readonly fired: string[] = [];
  private readonly regCounts = new Uint32Array(COUNTED_DWORDS);
  private completions = 0;
  private identifies = 0;
  private readonly at = new Map<number, Directive[]>();
  private readonly every = new Map<number, Directive[]>();

  constructor(input: Uint8Array) {
    for (const d of decode(input)) {
      const key = this.key(d.kind, d.kind === Kind.REGISTER ? d.sel % COUNTED_DWORDS : 0);
      const m = d.nth === EVERY ? this.every : this.at;
      const k = d.nth === EVERY ? key : key * 0x10000 + d.nth;
      const list = m.get(k);
      if (list) list.push(d);
      else m.set(k, [d]);
    }
  }

  register(offset: number, value: number): number {
    if (!this.active) return value;
    const idx = offset >>> 2;
    if (idx >= COUNTED_DWORDS) return value;
    const n = this.regCounts[idx]!++;
    return this.fire(this.key(Kind.REGISTER, idx), n, value);
  }

  completion(entries: Uint32Array, at: number): void {
    if (!this.active) return;
    const list = this.lookup(this.key(Kind.COMPLETION, 0), this.completions++);
    if (list === undefined) return;
    for (const d of list) entries[at + (d.sel % 4)] = this.applyOne(d, entries[at + (d.sel % 4)]!);
  }

  identify(_cns: number, data: Uint8Array): void {
    if (!this.active) return;
    const n = this.identifies++;
    const list = this.lookup(this.key(Kind.IDENTIFY, 0), n);
    if (list === undefined) return;
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (const d of list) {
      const off = (d.sel % IDENTIFY_BYTES) & ~3;
      if (off + 4 <= data.byteLength) v.setUint32(off, this.applyOne(d, v.getUint32(off, true)), true);
    }
  }

  observed(): Observed {
    const registers: [number, number][] = [];
    for (let i = 0; i < COUNTED_DWORDS; i++) if (this.regCounts[i]! > 0) registers.push([i, this.regCounts[i]!]);
    return { registers, completions: this.completions, identifies: this.identifies };
  }

  private key(kind: number, sel: number): number {
    return sel * KINDS + kind;
  }

  private fire(key: number, n: number, value: number): number {
    const list = this.lookup(key, n);
    if (list === undefined) return value;
    let v = value;
    for (const d of list) v = this.applyOne(d, v);
    return v;
  }

  /** The directives for occurrence `n` of event `key`: the nth-specific ones, else the every-time ones. */
  private lookup(key: number, n: number): Directive[] | undefined {
    if (this.at.size === 0 && this.every.size === 0) return undefined;
    return this.at.get(key * 0x10000 + n) ?? this.every.get(key);
  }

  private applyOne(d: Directive, old: number): number {
    if (this.fired.length < 256) this.fired.push(describe(d));
    return apply(d.op, old, d.value);
  }
}
