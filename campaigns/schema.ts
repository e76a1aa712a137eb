/**
 * The campaign spec's schema, written as data in the policies' schema language
 * (policies/schema-dsl.ts): one description validates with file:line:field messages and fills
 * defaults. Fault parameters follow Linux's fault-injection vocabulary (Documentation/fault-injection):
 * `probability` in percent, `interval` (only every Nth eligible point), `times` (at most this many).
 */
import type { Field, ObjectSchema, Schema } from '../policies/schema-dsl.js';
import type { ParamSpec } from '../sim/faults/params.js';
import { CAMPAIGN_MODES, FAULT_CLASSES, type FaultClassInfo } from './fault-classes.js';

export const CAMPAIGN_VERSION = 1;

const MAX_TRIALS = 10_000_000;

function int(min: number, max: number): Schema {
  return { t: 'int', min, max };
}

/** The parameters every fault class shares. */
const common: Record<string, Field> = {
  weight: { schema: int(0, 1000), default: 1, doc: 'Relative share of the trials that inject this class (0: never).' },
  probability: { schema: int(1, 100), default: 100, doc: 'Percent chance that an eligible point fires (Linux fault-injection `probability`).' },
  interval: { schema: int(1, 1000), default: 1, doc: 'Only every Nth eligible point may fire (Linux `interval`).' },
  times: { schema: int(1, 1000), default: 1, doc: 'At most this many firings per trial (Linux `times`).' },
  within: {
    schema: int(1, 100_000),
    default: 24,
    doc: 'The first eligible point is drawn uniformly from the first `within` driver operations (doorbells, register reads, allocations) or, for a device class, of its events (`after` in sim/faults): a random point of the work.',
  },
};

function classSchema(info: FaultClassInfo): Field {
  const fields: Record<string, Field> = { ...common, ...info.fields };
  if (info.variants) {
    fields[info.variants.key] = {
      schema: {
        t: 'array',
        items: { t: 'string', enum: info.variants.values, hint: info.variants.values.map((v) => `'${v}'`).join(', ') },
        minItems: 1,
        maxItems: info.variants.values.length,
      },
      default: [...info.variants.values],
      doc: info.variants.doc,
    };
  }
  for (const p of info.params ?? []) fields[p.name] = deviceParam(p);
  return { schema: { t: 'object', fields }, doc: info.doc };
}

/**
 * A device class's own parameter (sim/faults/params.ts), in this schema language: enums and
 * integers as they are declared; a fraction as text the registry checks (`makePlan`, spec.ts).
 */
function deviceParam(p: ParamSpec): Field {
  if (p.kind === 'enum') return { schema: { t: 'string', enum: p.values, hint: p.values.map((v) => `'${v}'`).join(', ') }, default: p.default, doc: p.doc };
  if (p.kind === 'int') return { schema: int(p.min, p.max), default: p.default, doc: p.doc };
  return { schema: { t: 'string', hint: `a number from ${p.min} to ${p.max}`, pattern: '^[0-9.eE+-]+$' }, default: String(p.default), doc: p.doc };
}

const faults: ObjectSchema = {
  t: 'object',
  fields: Object.fromEntries(FAULT_CLASSES.map((c) => [c.name, classSchema(c)])),
};

export const campaignSchema: ObjectSchema = {
  t: 'object',
  fields: {
    version: { schema: { t: 'int', min: 1, max: 1, values: [CAMPAIGN_VERSION] }, required: true, doc: 'The campaign format version: 1.' },
    name: {
      schema: { t: 'string', hint: 'lower-case letters, digits and dashes', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' },
      required: true,
      doc: 'The campaign name (in reports and output file names).',
    },
    policy: {
      schema: { t: 'string', hint: 'a policy file path, relative to this file', pattern: '^.+\\.ya?ml$' },
      required: true,
      doc: 'The target: a policy file (policies/README.md); its first policy, or the one `policyName` names.',
    },
    policyName: {
      schema: { t: 'string', hint: 'the name of a policy in that file', pattern: '^[a-z0-9][a-z0-9-]*$' },
      doc: 'Which policy of the file (default: the first).',
    },
    mode: {
      schema: { t: 'string', enum: CAMPAIGN_MODES, hint: CAMPAIGN_MODES.map((m) => `'${m}'`).join(', ') },
      default: 'in-process',
      doc: "Where each trial runs the target: 'in-process' (the runner's process, on the simulator) or 'container' (the real sandbox: a supervisor, its container and device, the NBD linkback and an NBD client; campaigns/container/).",
    },
    seed: { schema: int(0, 0xffffffff), default: 1, doc: 'The campaign seed: trial N is a pure function of (seed, N). `--seed` overrides it.' },
    trials: { schema: int(1, MAX_TRIALS), default: 100, doc: 'How many trials. `--trials` overrides it.' },
    budget: {
      schema: { t: 'duration', min: 1000, max: 7 * 24 * 3600 * 1000 },
      default: '10m',
      doc: 'Wall-clock budget: no trial starts after it is spent (the summary says how many ran).',
    },
    workload: {
      schema: {
        t: 'object',
        fields: {
          blocks: { schema: int(8, 65536), default: 256, doc: 'Blocks of the namespace the workload uses (from LBA 0); the namespace is made this size.' },
          operations: { schema: int(1, 100_000), default: 48, doc: 'Client requests per trial.' },
          writePercent: { schema: int(0, 100), default: 60, doc: 'Percent of requests that are writes (the rest are reads).' },
          maxBlocks: { schema: int(1, 64), default: 8, doc: 'Blocks per request at most.' },
          depth: { schema: int(1, 64), default: 4, doc: 'Requests in flight at most.' },
        },
      },
      default: {},
      doc: 'The client: requests with a shadow of every acknowledged write.',
    },
    recovery: {
      schema: {
        t: 'object',
        fields: {
          hangMs: {
            schema: { t: 'duration', min: 5, max: 60_000 },
            default: '100ms',
            doc: 'No completion for this long with requests pending: the driver hangs, it is killed and restarted.',
          },
          startMs: {
            schema: { t: 'duration', min: 5, max: 600_000 },
            default: '500ms',
            doc: 'A driver that has not started serving this long after its launch is killed and restarted (the READY deadline).',
          },
          liveness: {
            schema: { t: 'duration', min: 10, max: 600_000 },
            default: '2s',
            doc: 'After a fault, the device must serve again within this bound (oracle 3).',
          },
        },
      },
      default: {},
      doc: 'How the trial supervisor detects a hang, and the liveness bound.',
    },
    faults: { schema: faults, required: true, doc: 'The fault classes injected, each with its weight and parameters; a class not named is never injected.' },
  },
};
