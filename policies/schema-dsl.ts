/**
 * A small schema language for policies, written as TypeScript data so one description drives three
 * things: validation with file:line:field messages (policies/loader.ts), defaults filled in and shown
 * (`dmabox policy show`), and the JSON Schema file for editors (policies/schema.json, kept in sync by
 * a test). Values arrive as a positional tree built from the YAML source, so every problem can name
 * its line; validation collects every problem instead of stopping at the first.
 */
import { DURATION_PATTERN, SIZE_PATTERN, formatDuration, formatSize, parseDuration, parseSize } from './units.js';

/** A value from the YAML source with the line it starts on (1-based). */
export type PNode =
  | { kind: 'map'; line: number; entries: Map<string, { keyLine: number; value: PNode }> }
  | { kind: 'seq'; line: number; items: PNode[] }
  | { kind: 'scalar'; line: number; value: string | number | boolean | null };

export interface StringSchema {
  t: 'string';
  doc?: string;
  hint: string;
  pattern?: string;
  enum?: readonly string[];
  maxLength?: number;
}
export interface IntSchema {
  t: 'int';
  doc?: string;
  min: number;
  max: number;
  values?: readonly number[];
  multipleOf?: number;
}
export interface BoolSchema {
  t: 'bool';
  doc?: string;
}
export interface SizeSchema {
  t: 'size';
  doc?: string;
  min: number;
  max: number;
  multipleOf?: number;
  multipleWhy?: string;
}
export interface DurationSchema {
  t: 'duration';
  doc?: string;
  min: number;
  max: number;
}
export interface ArraySchema {
  t: 'array';
  doc?: string;
  items: Schema;
  minItems: number;
  maxItems: number;
}
export interface Field {
  schema: Schema;
  required?: boolean;
  /** As a user would write it; validated like user input. */ default?: unknown;
  doc: string;
}
export interface ObjectSchema {
  t: 'object';
  doc?: string;
  fields: Record<string, Field>;
  /** Exactly one of these fields must be present. */ oneOf?: readonly string[];
}
export interface Variant {
  /** The field whose presence selects this variant. */ key: string;
  /** ...and the value it must have. */ equals?: string;
  schema: ObjectSchema;
}
export interface VariantSchema {
  t: 'variant';
  doc?: string;
  variants: readonly Variant[];
  /** A one-string spelling (`device: sim:nvme`) and how it expands into the mapping form. */
  shorthand?: { pattern: string; hint: string; expand(s: string): Record<string, string> };
}
export type Schema = StringSchema | IntSchema | BoolSchema | SizeSchema | DurationSchema | ArraySchema | ObjectSchema | VariantSchema;

export interface Problem {
  line: number;
  path: string;
  message: string;
}

export interface Context {
  problems: Problem[];
  /** The source line of every path that was present in the input (for later, cross-field checks). */
  lines: Map<string, number>;
}

export const INVALID: unique symbol = Symbol('invalid');
type Out = unknown;

export function describe(node: PNode | undefined): string {
  if (!node) return 'nothing';
  if (node.kind === 'map') return 'a mapping';
  if (node.kind === 'seq') return 'a list';
  const v = node.value;
  if (v === null) return 'nothing (null)';
  if (typeof v === 'string') return `'${v.length > 60 ? v.slice(0, 57) + '...' : v}'`;
  return String(v);
}

export function join(path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;
}

/** What a schema expects, in the words of an error message. */
export function expected(s: Schema): string {
  switch (s.t) {
    case 'string':
      return s.hint;
    case 'int':
      return s.values ? `one of ${s.values.join(', ')}` : `a whole number from ${s.min} to ${s.max}`;
    case 'bool':
      return 'true or false';
    case 'size':
      return `a size like '64MiB' or a number of bytes`;
    case 'duration':
      return `a duration like '500us', '100ms' or '30s', or a number of milliseconds`;
    case 'array':
      return `a list of ${expected(s.items)}`;
    case 'object':
      return `a mapping with ${s.oneOf ? `one of ${s.oneOf.join(', ')}` : Object.keys(s.fields).join(', ')}`;
    case 'variant': {
      const forms = s.variants.map((v) => (v.equals ? `${v.key}: ${v.equals}` : v.key));
      return `a mapping with ${[...new Set(forms)].join(' | ')}${s.shorthand ? ` or ${s.shorthand.hint}` : ''}`;
    }
  }
}

function scalarAt(node: PNode): (PNode & { kind: 'scalar' }) | undefined {
  return node.kind === 'scalar' ? node : undefined;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** Validate `node` against `schema`; returns the resolved value (defaults filled in) or INVALID. */
export function validate(schema: Schema, node: PNode, path: string, ctx: Context): Out {
  ctx.lines.set(path, node.line);
  const fail = (message: string, line = node.line): typeof INVALID => {
    ctx.problems.push({ line, path, message });
    return INVALID;
  };
  const got = `expected ${expected(schema)}, got ${describe(node)}`;
  switch (schema.t) {
    case 'string': {
      const v = scalarAt(node)?.value;
      if (typeof v !== 'string') return fail(got);
      if (schema.enum && !schema.enum.includes(v)) return fail(got);
      if (schema.maxLength !== undefined && Buffer.byteLength(v) > schema.maxLength)
        return fail(`expected at most ${schema.maxLength} bytes, got ${Buffer.byteLength(v)}`);
      if (schema.pattern && !new RegExp(schema.pattern).test(v)) return fail(got);
      return v;
    }
    case 'int': {
      const v = scalarAt(node)?.value;
      if (typeof v !== 'number' || !Number.isInteger(v)) return fail(got);
      if (schema.values ? !schema.values.includes(v) : v < schema.min || v > schema.max) return fail(got);
      if (schema.multipleOf && v % schema.multipleOf !== 0) return fail(`expected a multiple of ${schema.multipleOf}, got ${v}`);
      return v;
    }
    case 'bool': {
      const v = scalarAt(node)?.value;
      return typeof v === 'boolean' ? v : fail(got);
    }
    case 'size': {
      const n = node.kind === 'scalar' ? parseSize(node.value) : undefined;
      if (n === undefined) return fail(got);
      if (n < schema.min) return fail(`expected at least ${formatSize(schema.min)}, got ${formatSize(n)}`);
      if (n > schema.max) return fail(`expected at most ${formatSize(schema.max)}, got ${formatSize(n)}`);
      if (schema.multipleOf && n % schema.multipleOf !== 0) {
        return fail(`expected a multiple of ${formatSize(schema.multipleOf)}${schema.multipleWhy ? ` (${schema.multipleWhy})` : ''}, got ${formatSize(n)}`);
      }
      return n;
    }
    case 'duration': {
      const n = node.kind === 'scalar' ? parseDuration(node.value) : undefined;
      if (n === undefined) return fail(got);
      if (n < schema.min || n > schema.max)
        return fail(`expected a duration from ${formatDuration(schema.min)} to ${formatDuration(schema.max)}, got ${formatDuration(n)}`);
      return n;
    }
    case 'array': {
      if (node.kind !== 'seq') return fail(got);
      if (node.items.length < schema.minItems)
        return fail(`expected at least ${schema.minItems} ${schema.minItems === 1 ? 'entry' : 'entries'}, got ${node.items.length}`);
      if (node.items.length > schema.maxItems) return fail(`expected at most ${schema.maxItems} entries, got ${node.items.length}`);
      const out = node.items.map((item, i) => validate(schema.items, item, join(path, i), ctx));
      return out.includes(INVALID) ? INVALID : out;
    }
    case 'object':
      return validateObject(schema, node, path, ctx, got);
    case 'variant':
      return validateVariant(schema, node, path, ctx, got);
  }
}

function validateObject(schema: ObjectSchema, node: PNode, path: string, ctx: Context, got: string): Out {
  if (node.kind !== 'map') {
    ctx.problems.push({ line: node.line, path, message: got });
    return INVALID;
  }
  let ok = true;
  const known = Object.keys(schema.fields);
  for (const [key, { keyLine }] of node.entries) {
    if (key in schema.fields) continue;
    const near = known.filter((k) => editDistance(key, k) <= Math.max(1, Math.floor(k.length / 3)));
    const hint = near.length ? `did you mean '${near[0]}'?` : `known fields: ${known.join(', ')}`;
    ctx.problems.push({ line: keyLine, path: join(path, key), message: `unknown field; ${hint}` });
    ok = false;
  }
  if (schema.oneOf) {
    const present = schema.oneOf.filter((k) => node.entries.has(k));
    if (present.length === 0) {
      ctx.problems.push({ line: node.line, path, message: `expected one of the fields ${schema.oneOf.join(', ')}, got none` });
      ok = false;
    } else if (present.length > 1) {
      ctx.problems.push({ line: node.line, path, message: `${present.join(' and ')} cannot be used together: choose one` });
      ok = false;
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(schema.fields)) {
    const fieldPath = join(path, key);
    const entry = node.entries.get(key);
    let value: Out;
    if (entry) {
      value = validate(field.schema, entry.value, fieldPath, ctx);
    } else if (field.required) {
      ctx.problems.push({ line: node.line, path: fieldPath, message: `required field missing: expected ${expected(field.schema)}` });
      value = INVALID;
    } else if (field.default !== undefined) {
      value = validate(field.schema, toPNode(field.default, node.line), fieldPath, ctx);
    } else {
      continue;
    }
    if (value === INVALID) ok = false;
    else out[key] = value;
  }
  return ok ? out : INVALID;
}

function validateVariant(schema: VariantSchema, node: PNode, path: string, ctx: Context, got: string): Out {
  if (node.kind === 'scalar' && typeof node.value === 'string' && schema.shorthand) {
    if (!new RegExp(schema.shorthand.pattern).test(node.value)) {
      ctx.problems.push({ line: node.line, path, message: got });
      return INVALID;
    }
    return validateVariant(schema, toPNode(schema.shorthand.expand(node.value), node.line), path, ctx, got);
  }
  if (node.kind !== 'map') {
    ctx.problems.push({ line: node.line, path, message: got });
    return INVALID;
  }
  const keys = [...new Set(schema.variants.map((v) => v.key))];
  const present = keys.filter((k) => node.entries.has(k));
  if (present.length !== 1) {
    ctx.problems.push({
      line: node.line,
      path,
      message: present.length ? `${present.join(' and ')} cannot be used together: choose one` : got,
    });
    return INVALID;
  }
  const key = present[0]!;
  const selector = node.entries.get(key)!;
  const candidates = schema.variants.filter((v) => v.key === key);
  const chosen = candidates.find((v) => v.equals === undefined || (selector.value.kind === 'scalar' && selector.value.value === v.equals));
  if (!chosen) {
    const values = candidates.map((v) => `'${v.equals}'`).join(', ');
    ctx.problems.push({ line: selector.value.line, path: join(path, key), message: `expected one of ${values}, got ${describe(selector.value)}` });
    return INVALID;
  }
  return validateObject(chosen.schema, node, path, ctx, got);
}

/** A positional node for a default or an expanded shorthand: everything sits on `line`. */
export function toPNode(value: unknown, line: number): PNode {
  if (Array.isArray(value)) return { kind: 'seq', line, items: value.map((v) => toPNode(v, line)) };
  if (value !== null && typeof value === 'object') {
    const entries = new Map(Object.entries(value).map(([k, v]) => [k, { keyLine: line, value: toPNode(v, line) }]));
    return { kind: 'map', line, entries };
  }
  return { kind: 'scalar', line, value: value as string | number | boolean | null };
}

/** A resolved value back in the units people write (sizes as '64MiB', durations as '30s'). */
export function present(schema: Schema, value: unknown): unknown {
  switch (schema.t) {
    case 'size':
      return formatSize(value as number);
    case 'duration':
      return formatDuration(value as number);
    case 'array':
      return (value as unknown[]).map((v) => present(schema.items, v));
    case 'object':
      return presentObject(schema, value as Record<string, unknown>);
    case 'variant': {
      const obj = value as Record<string, unknown>;
      const chosen = schema.variants.find((v) => v.key in obj && (v.equals === undefined || obj[v.key] === v.equals))!;
      return presentObject(chosen.schema, obj);
    }
    default:
      return value;
  }
}

function presentObject(schema: ObjectSchema, obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(schema.fields)) if (obj[k] !== undefined) out[k] = present(f.schema, obj[k]);
  return out;
}

/** The JSON Schema (draft 2020-12) for a schema node. */
export function toJsonSchema(schema: Schema, doc?: string): Record<string, unknown> {
  const d = doc ?? schema.doc;
  const base: Record<string, unknown> = d ? { description: d } : {};
  switch (schema.t) {
    case 'string':
      return {
        ...base,
        type: 'string',
        ...(schema.enum ? { enum: schema.enum } : {}),
        ...(schema.pattern ? { pattern: schema.pattern } : {}),
        ...(schema.maxLength !== undefined ? { maxLength: schema.maxLength } : {}),
      };
    case 'int':
      return schema.values
        ? { ...base, enum: schema.values }
        : { ...base, type: 'integer', minimum: schema.min, maximum: schema.max, ...(schema.multipleOf ? { multipleOf: schema.multipleOf } : {}) };
    case 'bool':
      return { ...base, type: 'boolean' };
    case 'size':
      return {
        ...base,
        oneOf: [
          { type: 'integer', minimum: schema.min, maximum: schema.max, ...(schema.multipleOf ? { multipleOf: schema.multipleOf } : {}) },
          { type: 'string', pattern: SIZE_PATTERN },
        ],
      };
    case 'duration':
      return {
        ...base,
        oneOf: [
          { type: 'integer', minimum: schema.min, maximum: schema.max },
          { type: 'string', pattern: DURATION_PATTERN },
        ],
      };
    case 'array':
      return { ...base, type: 'array', minItems: schema.minItems, maxItems: schema.maxItems, items: toJsonSchema(schema.items) };
    case 'object':
      return { ...base, ...objectJson(schema) };
    case 'variant': {
      const forms: Record<string, unknown>[] = schema.variants.map((v) => {
        const o = objectJson(v.schema);
        if (v.equals !== undefined) (o.properties as Record<string, unknown>)[v.key] = { const: v.equals };
        return o;
      });
      if (schema.shorthand) forms.push({ type: 'string', pattern: schema.shorthand.pattern, description: schema.shorthand.hint });
      return { ...base, oneOf: forms };
    }
  }
}

function objectJson(schema: ObjectSchema): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [k, f] of Object.entries(schema.fields)) {
    properties[k] = { ...toJsonSchema(f.schema, f.doc), ...(f.default !== undefined ? { default: f.default } : {}) };
    if (f.required) required.push(k);
  }
  return {
    type: 'object',
    additionalProperties: false,
    properties,
    ...(required.length ? { required } : {}),
    ...(schema.oneOf ? { oneOf: schema.oneOf.map((k) => ({ required: [k] })) } : {}),
  };
}
