/**
 * Typed fault parameters: each class declares its parameters as data (kind, range or values,
 * default, meaning), and a plan's values are checked against them once, when the plan is built.
 *
 * Every class takes the Linux fault-injection vocabulary (Documentation/fault-injection):
 * `probability` (here a fraction 0..1, not a percentage), `interval` (only every Nth eligible event
 * may fire), `times` (how often it may fire at most; -1 = no limit) and `after` (eligible events
 * skipped first, Linux's `space` counted in events), then its own.
 */
import { FaultError } from './errors.js';

export type ParamSpec =
  | { readonly name: string; readonly kind: 'float'; readonly min: number; readonly max: number; readonly default: number; readonly doc: string }
  | { readonly name: string; readonly kind: 'int'; readonly min: number; readonly max: number; readonly default: number; readonly doc: string }
  | { readonly name: string; readonly kind: 'enum'; readonly values: readonly string[]; readonly default: string; readonly doc: string };

/** A plan's parameter values, by name; every declared parameter is present once a plan is built. */
export type ParamValues = Readonly<Record<string, number | string>>;

/** The parameters every class takes (Linux fault-injection's, in events). */
export const COMMON_PARAMS: readonly ParamSpec[] = [
  { name: 'probability', kind: 'float', min: 0, max: 1, default: 1, doc: 'chance that an eligible event fires (0..1)' },
  { name: 'interval', kind: 'int', min: 1, max: 2 ** 31, default: 1, doc: 'only every Nth eligible event may fire' },
  { name: 'times', kind: 'int', min: -1, max: 2 ** 31, default: 1, doc: 'fire at most this often (-1: no limit)' },
  { name: 'after', kind: 'int', min: 0, max: 2 ** 31, default: 0, doc: 'eligible events let through before the first may fire' },
];

/** Check one value given as text (a CLI's or a spec's) against its declaration. */
export function parseParam(cls: string, spec: ParamSpec, text: string): number | string {
  if (spec.kind === 'enum') {
    if (!spec.values.includes(text)) throw badValue(cls, spec, text);
    return text;
  }
  const v = text.trim() === '' ? NaN : Number(text);
  return checkNumber(cls, spec, v, text);
}

/** Check one value given as a value (a campaign spec's YAML or JSON) against its declaration. */
export function checkParam(cls: string, spec: ParamSpec, value: unknown): number | string {
  if (spec.kind === 'enum') {
    if (typeof value !== 'string' || !spec.values.includes(value)) throw badValue(cls, spec, String(value));
    return value;
  }
  if (typeof value === 'string') return parseParam(cls, spec, value);
  return checkNumber(cls, spec, typeof value === 'number' ? value : NaN, String(value));
}

function checkNumber(cls: string, spec: ParamSpec & { kind: 'float' | 'int' }, v: number, text: string): number {
  if (!Number.isFinite(v) || v < spec.min || v > spec.max || (spec.kind === 'int' && !Number.isInteger(v))) throw badValue(cls, spec, text);
  return v;
}

/** How a parameter is written in a listing: `times=int -1..2147483648 (1)`. */
export function describeParam(spec: ParamSpec): string {
  const range = spec.kind === 'enum' ? spec.values.join('|') : `${spec.kind} ${spec.min}..${spec.max}`;
  return `${spec.name}=${range} (default ${spec.default}): ${spec.doc}`;
}

function badValue(cls: string, spec: ParamSpec, text: string): FaultError {
  const expected = spec.kind === 'enum' ? `one of ${spec.values.join(', ')}` : `${spec.kind === 'int' ? 'an integer' : 'a number'} in ${spec.min}..${spec.max}`;
  return new FaultError('ERR_FAULT_PARAM', `fault ${cls}: ${spec.name}=${JSON.stringify(text)} is not ${expected}`, {
    fix: `give ${spec.name} ${expected} (${spec.doc})`,
  });
}
