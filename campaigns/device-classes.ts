/**
 * Device-side fault classes of campaigns: every class the simulated device models implement
 * (sim/faults registry: `nvme.status`, `e1000e.link-flap`, ...) becomes a campaign class with
 * `side: 'device'`, keyed by its registry name. Its own parameters (`on`, `type`, `mode`, `field`,
 * `count`, `report`, ...) come from the registry's typed declarations; the parameters every
 * campaign class shares keep the campaign's vocabulary (`probability` in percent, `interval`,
 * `times`, `within`), and are translated into the registry's (`probability` 0..1, `after` = the
 * trial's first point drawn from `within`). A trial's plan is then built by the registry's own
 * `makePlan`, seeded from (campaign seed, trial index), so replay rebuilds the same misbehaviour.
 */
import type { Policy } from '../policies/types.js';
import type { FaultDevice } from '../sim/faults/classes.js';
import { FaultError } from '../sim/faults/errors.js';
import type { ParamSpec } from '../sim/faults/params.js';
import { formatPlan, makePlan, type FaultPlan } from '../sim/faults/plan.js';
import { faultClasses } from '../sim/faults/registry.js';
import { CampaignError } from './errors.js';
import type { FaultClassInfo } from './fault-classes.js';

export const DEVICE_FAULT_CLASSES: readonly FaultClassInfo[] = faultClasses().map((c) => ({
  name: c.name,
  side: 'device' as const,
  device: c.device,
  doc: `The device misbehaves: ${c.doc} (event: ${c.event}).`,
  params: c.params,
}));

/** The class's own parameter values from a spec's fault entry (the shared ones left out). */
export function ownParams(params: readonly ParamSpec[], entry: Readonly<Record<string, unknown>>): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const p of params) if (entry[p.name] !== undefined) out[p.name] = entry[p.name] as number | string;
  return out;
}

/** What a trial needs to build its device plan: the spec's shared parameters and the class's own values. */
export interface DevicePlanInput {
  readonly fault: string;
  readonly probability: number;
  readonly interval: number;
  readonly times: number;
  readonly own: Readonly<Record<string, number | string>>;
}

/**
 * The device fault plan of one trial: the registry's plan for the class, its common parameters
 * from the spec (percent to fraction, `after` = the trial's first point), seeded with the trial's
 * own seed. Throws FaultError for values the registry refuses (the spec reader turns that into a
 * line-pointing problem before any trial runs).
 */
export function devicePlan(input: DevicePlanInput, first: number, seed: number): FaultPlan {
  return makePlan(input.fault, { ...input.own, probability: input.probability / 100, interval: input.interval, times: input.times, after: first }, seed >>> 0);
}

/** The plan's text form (sim/faults `formatPlan`), for a trial's log and record. */
export function describePlan(plan: FaultPlan): string {
  return formatPlan(plan);
}

/** Check one spec entry against the registry now (a FaultError message, or undefined). */
export function refusal(input: DevicePlanInput): string | undefined {
  try {
    devicePlan(input, 0, 1);
    return undefined;
  } catch (e) {
    if (e instanceof FaultError) return e.message;
    throw e;
  }
}

/** The model a policy drives on the simulator, if any. */
function simModel(policy: Policy): FaultDevice | undefined {
  const d = policy.device;
  return 'sim' in d ? d.sim : undefined;
}

/** Refuse device classes of another model than the target's (an NVMe campaign naming `e1000e.*`), before any trial runs. */
export function checkDeviceClasses(name: string, faults: Readonly<Record<string, { side?: string }>>, policy: Policy): void {
  const model = simModel(policy);
  for (const c of DEVICE_FAULT_CLASSES) {
    if (faults[c.name] === undefined || c.device === model) continue;
    throw new CampaignError(
      'ERR_CAMPAIGN_TARGET',
      `campaign ${name}: fault class ${c.name} is for the simulated ${c.device ?? '?'} model, but policy ${policy.name} drives ${model ? `the simulated ${model}` : 'no simulated device'}`,
      { fix: `name only ${model ?? 'device'}.* device classes for this target (campaigns/README.md, "Device classes"), or give ${c.name} weight 0` },
    );
  }
}
