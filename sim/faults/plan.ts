/**
 * A fault plan: one fault class, its parameter values (every declared one, checked), and the seed
 * its random draws come from. Built from values (`makePlan`) or from the text form a CLI or a
 * campaign spec uses (`parsePlan`):
 *
 *   nvme.wrong-phase                              the class with its defaults, seed 1
 *   nvme.status:type=media,on=read,probability=0.1,times=3@0x2a
 *
 * `formatPlan` gives the text back (defaults left out), so a report's replay line rebuilds the same
 * plan. `trialPlan` picks one plan per campaign trial as a pure function of (seed, trial).
 */
import { mixSeed, Rng } from '../../common/prng.js';
import type { FaultClass } from './classes.js';
import { FaultError } from './errors.js';
import { checkParam, COMMON_PARAMS, parseParam, type ParamSpec, type ParamValues } from './params.js';
import { faultClass } from './registry.js';

export interface FaultPlan {
  readonly cls: FaultClass;
  readonly params: ParamValues;
  /** The seed of the plan's own draws (probability, class-specific choices). */
  readonly seed: number;
}

/** A plan given to a device model: ERR_FAULT_CLASS unless its class is for `device` (the model's). */
export function requireDevice(plan: FaultPlan, device: FaultClass['device'], model: string): void {
  if (plan.cls.device !== device) {
    throw new FaultError('ERR_FAULT_CLASS', `fault ${plan.cls.name} is for the ${plan.cls.device} model, not the ${model}`, {
      fix: `give the ${model} a ${device}.* fault plan`,
    });
  }
}

/** The parameters of `cls`: the common ones, then its own. */
export function paramsOf(cls: FaultClass): readonly ParamSpec[] {
  return [...COMMON_PARAMS, ...cls.params];
}

/** A plan from values: unknown parameters and out-of-range values are refused (ERR_FAULT_PARAM). */
export function makePlan(name: string, values: Readonly<Record<string, unknown>> = {}, seed = 1): FaultPlan {
  const cls = faultClass(name);
  const specs = paramsOf(cls);
  for (const k of Object.keys(values)) if (!specs.some((s) => s.name === k)) throw unknownParam(cls, k);
  const params: Record<string, number | string> = {};
  for (const s of specs) params[s.name] = k(values, s.name) ? checkParam(cls.name, s, values[s.name]) : s.default;
  return { cls, params, seed: checkSeed(seed, String(seed)) };
}

/** A plan from its text form `class[:name=value,...][@seed]`. */
export function parsePlan(text: string): FaultPlan {
  const src = text.trim();
  const m = /^([a-z0-9]+\.[a-z0-9-]+)(?::([^@]*))?(?:@(.*))?$/.exec(src);
  if (m === null) {
    throw new FaultError('ERR_FAULT_SYNTAX', `fault plan ${JSON.stringify(text)} is not of the form class[:name=value,...][@seed]`, {
      fix: 'write e.g. nvme.wrong-phase:probability=0.1,times=3@42 (see the fault class listing for names)',
    });
  }
  const cls = faultClass(m[1]!);
  const specs = paramsOf(cls);
  const values: Record<string, number | string> = {};
  if (m[2] !== undefined && m[2].trim() !== '') {
    for (const item of m[2].split(',')) {
      const eq = item.indexOf('=');
      if (eq <= 0) {
        throw new FaultError('ERR_FAULT_SYNTAX', `fault plan ${JSON.stringify(text)}: ${JSON.stringify(item)} is not name=value`, {
          fix: 'separate parameters with commas, each as name=value',
        });
      }
      const name = item.slice(0, eq).trim();
      const spec = specs.find((s) => s.name === name);
      if (spec === undefined) throw unknownParam(cls, name);
      if (k(values, name)) {
        throw new FaultError('ERR_FAULT_SYNTAX', `fault plan ${JSON.stringify(text)}: ${name} is given twice`, { fix: `give ${name} once` });
      }
      values[name] = parseParam(cls.name, spec, item.slice(eq + 1).trim());
    }
  }
  const seed = m[3] === undefined ? 1 : checkSeed(/^(0x[0-9a-f]+|[0-9]+)$/i.test(m[3].trim()) ? Number(m[3].trim()) : NaN, m[3]);
  return makePlan(cls.name, values, seed);
}

/** The text form of a plan, parameters at their default left out: `parsePlan(formatPlan(p))` is `p`. */
export function formatPlan(p: FaultPlan): string {
  const parts: string[] = [];
  for (const s of paramsOf(p.cls)) if (p.params[s.name] !== s.default) parts.push(`${s.name}=${p.params[s.name]}`);
  return `${p.cls.name}${parts.length > 0 ? `:${parts.join(',')}` : ''}@${p.seed}`;
}

/**
 * The plan of trial `trial` of a campaign seeded `seed`: one of `plans` picked uniformly, with its
 * seed replaced by one derived from (seed, trial), so every trial draws differently and any trial
 * replays alone.
 */
export function trialPlan(plans: readonly FaultPlan[], seed: number, trial: number): FaultPlan {
  if (plans.length === 0) {
    throw new FaultError('ERR_FAULT_CLASS', `trial ${trial}: no fault plans to choose from`, { fix: 'give at least one fault plan' });
  }
  const s = mixSeed(seed, trial);
  const p = new Rng(s).pick(plans);
  return { cls: p.cls, params: p.params, seed: s };
}

function k(values: object, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(values, name);
}

function checkSeed(seed: number, text: string): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new FaultError('ERR_FAULT_SYNTAX', `fault plan seed ${JSON.stringify(text)} is not an unsigned 32-bit integer`, {
      fix: 'give the seed as a decimal or 0x hexadecimal number below 2^32',
    });
  }
  return seed;
}

function unknownParam(cls: FaultClass, name: string): FaultError {
  return new FaultError('ERR_FAULT_PARAM', `fault ${cls.name} has no parameter ${JSON.stringify(name)}`, {
    fix: `use ${paramsOf(cls)
      .map((s) => s.name)
      .join(', ')}`,
  });
}
