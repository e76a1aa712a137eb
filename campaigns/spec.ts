/**
 * Reading a campaign spec: YAML with source positions (the policies' reader), checked against
 * campaigns/schema.ts, then the rules one field cannot say alone (at least one class with weight, a
 * target policy this runner can drive). Every problem at once, as `file:line: field: message`.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { loadPolicyFiles, PolicyError, yamlToPNode, formatProblem, type PolicyProblem } from '../policies/loader.js';
import { INVALID, validate, type Context } from '../policies/schema-dsl.js';
import type { Policy } from '../policies/types.js';
import { CampaignError } from './errors.js';
import { ownParams, refusal } from './device-classes.js';
import { FAULT_CLASSES, type CampaignMode, type FaultSide } from './fault-classes.js';
import { campaignSchema } from './schema.js';

export interface FaultParams {
  readonly weight: number;
  readonly probability: number;
  readonly interval: number;
  readonly times: number;
  readonly within: number;
  /** The class's variant list (targets, mutations, sites), when it has one. */
  readonly variants: readonly string[];
  /** Which side the class is injected on (absent: driver). */
  readonly side?: FaultSide;
  /** A device class's own parameter values (sim/faults registry), checked by the registry. */
  readonly own?: Readonly<Record<string, number | string>>;
  /** The class's own parameters (`params` in fault-classes.ts), by name. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

export interface CampaignSpec {
  readonly version: 1;
  readonly name: string;
  /** Where trials run (default in-process). */
  readonly mode: CampaignMode;
  /** Absolute path of the target policy file. */
  readonly policy: string;
  readonly policyName: string | undefined;
  readonly seed: number;
  readonly trials: number;
  /** Milliseconds. */
  readonly budget: number;
  readonly workload: { blocks: number; operations: number; writePercent: number; maxBlocks: number; depth: number };
  readonly recovery: { hangMs: number; startMs: number; liveness: number };
  /** Classes with weight > 0, in registry order. */
  readonly faults: Readonly<Record<string, FaultParams>>;
}

function problemsError(problems: PolicyProblem[]): CampaignError {
  return new CampaignError(
    'ERR_CAMPAIGN_SPEC',
    `${problems.length} problem${problems.length === 1 ? '' : 's'} in campaign:\n${problems.map(formatProblem).join('\n')}`,
    {
      fix: 'correct the fields named above (campaigns/README.md lists every field)',
    },
  );
}

/** Parse one campaign spec; throws CampaignError (ERR_CAMPAIGN_SPEC) listing every problem. */
export function parseCampaign(source: string, file: string): CampaignSpec {
  const problems: PolicyProblem[] = [];
  const lc = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number) => Math.max(1, lc.linePos(offset).line);
  for (const e of doc.errors) problems.push({ file, line: lineOf(e.pos[0]), path: '', message: `YAML: ${e.message.split('\n')[0]}` });
  if (problems.length) throw problemsError(problems);
  if (doc.contents === null) throw problemsError([{ file, line: 1, path: '', message: 'empty: expected a mapping with version, name, policy and faults' }]);
  const root = yamlToPNode(doc.contents as YamlNode, lineOf, (line, message) => problems.push({ file, line, path: '', message }));
  if (problems.length) throw problemsError(problems);
  const ctx: Context = { problems: [], lines: new Map() };
  const value = validate(campaignSchema, root, '', ctx);
  for (const p of ctx.problems) problems.push({ file, ...p });
  if (value === INVALID || problems.length) throw problemsError(problems);
  const raw = value as Record<string, unknown> & { faults: Record<string, Record<string, unknown> | undefined> };
  const faults: Record<string, FaultParams> = {};
  const mode = (raw.mode as CampaignMode | undefined) ?? 'in-process';
  for (const c of FAULT_CLASSES) {
    const f = raw.faults[c.name];
    if (!f || (f.weight as number) === 0) continue;
    // Device classes live in the simulated models the runner's own process drives.
    const modes = c.modes ?? (c.side === 'device' ? (['in-process'] as const) : undefined);
    if (modes && !modes.includes(mode)) {
      problems.push({
        file,
        line: ctx.lines.get(`faults.${c.name}`) ?? ctx.lines.get('faults') ?? 1,
        path: `faults.${c.name}`,
        message: `means nothing in mode '${mode}': it runs only in mode ${modes.map((m) => `'${m}'`).join(' or ')} (set \`mode: ${modes[0]}\`, or give it weight 0)`,
      });
      continue;
    }
    faults[c.name] = {
      weight: f.weight as number,
      probability: f.probability as number,
      interval: f.interval as number,
      times: f.times as number,
      within: f.within as number,
      variants: c.variants ? (f[c.variants.key] as string[]) : [],
      ...(c.side === 'device' ? { side: c.side, own: ownParams(c.params ?? [], f) } : {}),
      ...(c.fields ? { extra: Object.fromEntries(Object.keys(c.fields).map((k) => [k, f[k]])) } : {}),
    };
    if (c.side === 'device') {
      const why = refusal({
        fault: c.name,
        probability: f.probability as number,
        interval: f.interval as number,
        times: f.times as number,
        own: faults[c.name]!.own!,
      });
      if (why) problems.push({ file, line: ctx.lines.get(`faults.${c.name}`) ?? 1, path: `faults.${c.name}`, message: why });
    }
  }
  if (Object.keys(faults).length === 0)
    problems.push({
      file,
      line: ctx.lines.get('faults') ?? 1,
      path: 'faults',
      message: `expected at least one class with weight > 0 (${FAULT_CLASSES.map((c) => c.name).join(', ')})`,
    });
  if (problems.length) throw problemsError(problems);
  return {
    version: 1,
    name: raw.name as string,
    mode,
    policy: resolve(dirname(file), raw.policy as string),
    policyName: raw.policyName as string | undefined,
    seed: raw.seed as number,
    trials: raw.trials as number,
    budget: raw.budget as number,
    workload: raw.workload as CampaignSpec['workload'],
    recovery: raw.recovery as CampaignSpec['recovery'],
    faults,
  };
}

export function loadCampaign(file: string): CampaignSpec {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CampaignError('ERR_CAMPAIGN_SPEC', `campaign ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      fix: 'name a campaign YAML file, e.g. campaigns/examples/sim-nvme.yaml',
    });
  }
  return parseCampaign(source, file);
}

/**
 * The target policy: loaded and checked like `dmabox policy check`, then held to what this runner
 * drives: a simulated NVMe device (the simulator's IOMMU and memory make the oracle exact).
 */
export function targetPolicy(spec: CampaignSpec): Policy {
  let policies;
  try {
    policies = loadPolicyFiles([spec.policy]).policies;
  } catch (e) {
    if (e instanceof PolicyError)
      throw new CampaignError('ERR_CAMPAIGN_TARGET', `campaign ${spec.name}: its target policy is invalid:\n${e.message}`, { cause: e });
    throw e;
  }
  const lp = spec.policyName === undefined ? policies[0] : policies.find((p) => p.policy.name === spec.policyName);
  if (!lp)
    throw new CampaignError('ERR_CAMPAIGN_TARGET', `campaign ${spec.name}: no policy '${spec.policyName ?? ''}' in ${spec.policy}`, {
      fix: `name one of: ${policies.map((p) => p.policy.name).join(', ')}`,
    });
  const d = lp.policy.device;
  if (spec.mode === 'container') {
    // The real sandbox: a simulated NVMe or a PCI device on VFIO (the lab), exported over NBD; or a
    // simulated 82574L with its echo peer, its frames through the TAP linkback's bridge.
    if ('sim' in d && d.sim === 'e1000e') {
      if (d.peer !== 'echo')
        throw new CampaignError(
          'ERR_CAMPAIGN_TARGET',
          `campaign ${spec.name}: policy ${lp.policy.name} has the peer '${d.peer}'; a NIC campaign's frames come back from the echo peer`,
          { fix: 'set `device: { sim: e1000e, peer: echo }`' },
        );
      return lp.policy;
    }
    if (('sim' in d && d.sim !== 'nvme') || !lp.policy.linkback || !('nbd' in lp.policy.linkback))
      throw new CampaignError(
        'ERR_CAMPAIGN_TARGET',
        `campaign ${spec.name}: policy ${lp.policy.name} must drive a disk (sim: nvme, or an NVMe on VFIO) with an nbd linkback, or a simulated 82574L (sim: e1000e, peer: echo): container mode's workload is an NBD client or frames through the TAP bridge`,
        {
          fix: 'target a block policy with `linkback: { nbd: { socket: ..., export: ... } }` (campaigns/examples/container-nvme.yaml), or a NIC one (container-e1000e.yaml)',
        },
      );
    return lp.policy;
  }
  const nic = 'sim' in d && d.sim === 'e1000e';
  if (!('sim' in d) || (d.sim !== 'nvme' && !nic))
    throw new CampaignError(
      'ERR_CAMPAIGN_TARGET',
      `campaign ${spec.name}: policy ${lp.policy.name} drives ${JSON.stringify(d)}; campaigns run on a simulated NVMe device (sim: nvme) or 82574L (sim: e1000e) only`,
      {
        fix: 'target a policy with `device: { sim: nvme }` or `device: { sim: e1000e }` (the lab, an NVMe on VFIO, runs with `mode: container`: campaigns/README.md)',
      },
    );
  if (nic && d.peer !== 'echo')
    throw new CampaignError(
      'ERR_CAMPAIGN_TARGET',
      `campaign ${spec.name}: policy ${lp.policy.name} has the peer '${d.peer}'; a NIC campaign's frames come back from the echo peer`,
      {
        fix: 'target a policy with `device: { sim: e1000e, peer: echo }` (the default peer)',
      },
    );
  return lp.policy;
}
