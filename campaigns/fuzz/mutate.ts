/**
 * Mutators over inputs (input.ts), structure-aware as VIA's and syzkaller's are: a new directive is
 * aimed at an event the parent's execution saw (a register the driver read, and how often; a
 * completion that was posted; an Identify that was sent), with values drawn from the interesting
 * ones (0, all ones, sign bits, small numbers) or at random; the others edit, drop, duplicate or
 * splice directives, or flip raw bytes. Each returns a new input; the parent is never changed.
 */
import type { Rng } from '../../common/prng.js';
import { decode, DIRECTIVE_BYTES, encode, EVERY, Kind, MAX_DIRECTIVES, OPS, type Directive, type Observed } from './input.js';

const INTERESTING = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

export const MUTATORS = ['add', 'edit', 'drop', 'duplicate', 'splice', 'byte'] as const;
export type MutatorName = (typeof MUTATORS)[number];

function value(rng: Rng): number {
  return rng.below(2) === 0 ? INTERESTING[rng.below(INTERESTING.length)]! : rng.u32();
}

/** A directive aimed at an event `observed` says happened (anywhere, when nothing was observed). */
export function aimed(rng: Rng, observed: Observed): Directive {
  const op = rng.below(OPS);
  const v = value(rng);
  const kinds: number[] = [];
  if (observed.registers.length) kinds.push(Kind.REGISTER, Kind.REGISTER);
  if (observed.completions) kinds.push(Kind.COMPLETION, Kind.COMPLETION);
  if (observed.identifies) kinds.push(Kind.IDENTIFY);
  const kind = kinds.length ? kinds[rng.below(kinds.length)]! : rng.below(3);
  if (kind === Kind.REGISTER) {
    const [sel, reads] = observed.registers.length ? observed.registers[rng.below(observed.registers.length)]! : [rng.below(16), 1];
    return { kind, sel, nth: rng.below(4) === 0 ? EVERY : rng.below(reads), op, value: v };
  }
  if (kind === Kind.COMPLETION) return { kind, sel: rng.below(4), nth: rng.below(Math.max(1, observed.completions)), op, value: v };
  return { kind, sel: rng.below(4096), nth: rng.below(Math.max(1, observed.identifies)), op, value: v };
}

/** One mutation of `parent` (by `which`, or a random mutator); `other` is a corpus entry to splice with. */
export function mutate(parent: Uint8Array, rng: Rng, observed: Observed, other?: Uint8Array, which?: MutatorName): Uint8Array {
  const ds = decode(parent);
  const m = which ?? (ds.length === 0 ? 'add' : MUTATORS[rng.below(MUTATORS.length)]!);
  switch (m) {
    case 'add':
      if (ds.length < MAX_DIRECTIVES) ds.splice(rng.below(ds.length + 1), 0, aimed(rng, observed));
      break;
    case 'edit': {
      if (!ds.length) return mutate(parent, rng, observed, other, 'add');
      const d = ds[rng.below(ds.length)]!;
      const f = rng.below(4);
      if (f === 0) d.value = rng.below(2) ? (d.value ^ (1 << rng.below(32))) >>> 0 : value(rng);
      else if (f === 1) d.op = rng.below(OPS);
      else if (f === 2) d.nth = d.nth === EVERY ? rng.below(4) : Math.max(0, d.nth + (rng.below(2) ? 1 : -1));
      else Object.assign(d, aimed(rng, observed), { op: d.op, value: d.value });
      break;
    }
    case 'drop':
      if (ds.length) ds.splice(rng.below(ds.length), 1);
      break;
    case 'duplicate':
      if (ds.length && ds.length < MAX_DIRECTIVES) {
        const d = { ...ds[rng.below(ds.length)]! };
        d.nth = d.nth === EVERY ? EVERY : d.nth + 1;
        ds.push(d);
      }
      break;
    case 'splice': {
      const o = other ? decode(other) : [];
      if (!o.length) return mutate(parent, rng, observed, undefined, 'add');
      const cut = rng.below(ds.length + 1);
      const from = rng.below(o.length);
      return encode([...ds.slice(0, cut), ...o.slice(from)].slice(0, MAX_DIRECTIVES));
    }
    default: {
      const b = parent.length >= DIRECTIVE_BYTES ? parent.slice(0, Math.min(parent.length, MAX_DIRECTIVES * DIRECTIVE_BYTES)) : encode([aimed(rng, observed)]);
      const at = rng.below(b.length);
      b[at] = (b[at]! ^ (1 << rng.below(8))) & 0xff;
      return b;
    }
  }
  return encode(ds);
}
