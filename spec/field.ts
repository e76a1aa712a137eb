/**
 * How spec/ declares hardware: every register, every field of a register and every member of an
 * in-memory structure is declared once, in one style, with the section of the specification that
 * defines it, after Fuchsia's hwreg (`DEF_FIELD(hi, lo, name)`, `DEF_BIT(n, name)`).
 *
 *   export const CC = reg32(0x14, 'NVMe 1.4 §3.1.5, Figure 82', {
 *     EN: bit(0),                 // a one-bit field
 *     MPS: bits(10, 7),           // bits 10:7, inclusive, as the spec writes them
 *     SHN: bits(15, 14, '§3.1.5 SHN'),  // a field may cite its own section
 *   });
 *   bar.write32(CC.offset, setField(0, CC.EN, 1));
 *   if (isSet(csts, CSTS.RDY)) ...
 *
 *   export const RXD = struct(16, '82574 §7.1.4', { BUFFER_ADDR: u64(0), LENGTH: u16(8), STATUS: u8(12) });
 *   view.getUint16(at + RXD.LENGTH.offset, true);
 *
 * Declarations are frozen plain objects built once at load: hot paths read `.offset` and `.mask`
 * from module-level constants (or copy them into locals), never build anything per access.
 * Field values are numbers for fields inside one 32-bit dword; a 64-bit register's fields above
 * bit 31 are read with `getField64` from a bigint.
 */
import { SpecError } from './errors.js';

/** A bit field of a register: bits `hi:lo` inclusive (`bits === 1` for a flag). */
export interface BitField {
  /** Lowest bit. */
  readonly lo: number;
  /** Width in bits. */
  readonly bits: number;
  /** The field's bits in place, for 32-bit registers (`value & mask`); 0 for fields above bit 31. */
  readonly mask: number;
  /** The largest value the field holds (`2^bits - 1`). */
  readonly max: number;
  /** The section defining it, when it is not the register's. */
  readonly spec?: string;
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new SpecError('ERR_SPEC_DECLARATION', `spec: ${what}`, { fix: 'correct the declaration against the specification it cites' });
}

function doesNotFit(v: number, f: BitField): SpecError {
  return new SpecError('ERR_SPEC_FIELD_VALUE', `spec: value ${v} does not fit in ${f.bits} bit(s) at bit ${f.lo}`, {
    fix: `write an integer from 0 to ${f.max}`,
  });
}

/** Bits `hi:lo` of a register (inclusive, as specifications write them), at most 32 wide. */
export function bits(hi: number, lo: number, spec?: string): BitField {
  check(
    Number.isInteger(hi) && Number.isInteger(lo) && lo >= 0 && hi >= lo && hi < 64 && hi - lo < 32,
    `bits(${hi}, ${lo}) is not a field of at most 32 bits inside 64`,
  );
  const width = hi - lo + 1;
  // Integers below 2^31 are kept as such (`| 0`), so hot paths that mix them with other integers
  // stay in integer arithmetic; only a field reaching bit 31 has a mask or max above it.
  const max = width >= 31 ? 2 ** width - 1 : ((1 << width) - 1) | 0;
  const wide = hi < 32 ? (max * 2 ** lo) >>> 0 : 0;
  const mask = wide < 0x8000_0000 ? wide | 0 : wide;
  return Object.freeze(spec === undefined ? { lo, bits: width, mask, max } : { lo, bits: width, mask, max, spec });
}

/** Bit `n` of a register: a one-bit field. */
export function bit(n: number, spec?: string): BitField {
  return bits(n, n, spec);
}

/** The field's value in a 32-bit register value. */
export function getField(value: number, f: BitField): number {
  return (value >>> f.lo) & f.max;
}

/** `value` with field `f` replaced by `v` (checked: `v` must fit the field). */
export function setField(value: number, f: BitField, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > f.max) throw doesNotFit(v, f);
  return ((value & ~f.mask) | (v * 2 ** f.lo)) >>> 0;
}

/** True when any bit of the field is set (for a flag: the flag is set). */
export function isSet(value: number, f: BitField): boolean {
  return (value & f.mask) !== 0;
}

/** The field's value in a 64-bit register value (any field, also above bit 31). */
export function getField64(value: bigint, f: BitField): number {
  return Number((value >> BigInt(f.lo)) & BigInt(f.max));
}

/** `value` with field `f` of a 64-bit register replaced by `v` (checked). */
export function setField64(value: bigint, f: BitField, v: number): bigint {
  if (!Number.isInteger(v) || v < 0 || v > f.max) throw doesNotFit(v, f);
  const m = BigInt(f.max) << BigInt(f.lo);
  return (value & ~m) | (BigInt(v) << BigInt(f.lo));
}

/** A register: where it is, how wide, the section that defines it, and its fields by mnemonic. */
export interface Register {
  /** Byte offset in its space (a BAR, configuration space, a capability). */
  readonly offset: number;
  /** Access width in bits. */
  readonly width: 8 | 16 | 32 | 64;
  readonly spec: string;
}

function register<F extends Record<string, BitField>>(offset: number, width: Register['width'], spec: string, fields: F): Register & Readonly<F> {
  check(Number.isInteger(offset) && offset >= 0 && offset % (width / 8) === 0, `register at ${offset} is not a naturally aligned ${width}-bit offset`);
  for (const [name, f] of Object.entries(fields)) {
    check(f.lo + f.bits <= width, `field ${name} (bits ${f.lo + f.bits - 1}:${f.lo}) does not fit a ${width}-bit register (${spec})`);
    check(name !== 'offset' && name !== 'width' && name !== 'spec', `field name ${name} is reserved`);
  }
  return Object.freeze({ ...fields, offset, width, spec });
}

export function reg8<F extends Record<string, BitField> = Record<never, BitField>>(offset: number, spec: string, fields: F = {} as F): Register & Readonly<F> {
  return register(offset, 8, spec, fields);
}
export function reg16<F extends Record<string, BitField> = Record<never, BitField>>(offset: number, spec: string, fields: F = {} as F): Register & Readonly<F> {
  return register(offset, 16, spec, fields);
}
export function reg32<F extends Record<string, BitField> = Record<never, BitField>>(offset: number, spec: string, fields: F = {} as F): Register & Readonly<F> {
  return register(offset, 32, spec, fields);
}
export function reg64<F extends Record<string, BitField> = Record<never, BitField>>(offset: number, spec: string, fields: F = {} as F): Register & Readonly<F> {
  return register(offset, 64, spec, fields);
}

/** A member of an in-memory structure (a descriptor, a queue entry, an Identify page). */
export interface Member {
  /** Byte offset in the structure. */
  readonly offset: number;
  /** Size in bytes. */
  readonly size: number;
  readonly spec?: string;
}

function member(offset: number, size: number, spec?: string): Member {
  check(Number.isInteger(offset) && offset >= 0 && Number.isInteger(size) && size > 0, `member at ${offset} of ${size} bytes`);
  return Object.freeze(spec === undefined ? { offset, size } : { offset, size, spec });
}
export const u8 = (offset: number, spec?: string): Member => member(offset, 1, spec);
export const u16 = (offset: number, spec?: string): Member => member(offset, 2, spec);
export const u32 = (offset: number, spec?: string): Member => member(offset, 4, spec);
export const u64 = (offset: number, spec?: string): Member => member(offset, 8, spec);
/** A run of bytes (an ASCII string, a reserved area, an array). */
export const bytes = (offset: number, size: number, spec?: string): Member => member(offset, size, spec);

/** A fixed-size in-memory structure: its size, its section, and its members by name. */
export interface Struct {
  readonly size: number;
  readonly spec: string;
}

/** Declare a structure; members must lie inside it and must not overlap. */
export function struct<M extends Record<string, Member>>(size: number, spec: string, members: M): Struct & Readonly<M> {
  check(Number.isInteger(size) && size > 0, `struct size ${size}`);
  const taken = new Uint8Array(size);
  for (const [name, m] of Object.entries(members)) {
    check(m.offset + m.size <= size, `member ${name} (${m.offset}+${m.size}) lies outside the ${size}-byte structure (${spec})`);
    for (let i = m.offset; i < m.offset + m.size; i++) {
      check(taken[i] === 0, `member ${name} overlaps another at byte ${i} (${spec})`);
      taken[i] = 1;
    }
    check(name !== 'size' && name !== 'spec', `member name ${name} is reserved`);
  }
  return Object.freeze({ ...members, size, spec });
}
