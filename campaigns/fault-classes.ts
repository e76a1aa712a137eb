/**
 * The fault classes a campaign can inject, as data: the spec's schema (schema.ts), the trial plan
 * (plan.ts) and the reports all read this one list. Each class says on which side it is injected:
 * `driver` (campaigns/inject/, wrapped around the driver's Platform) or `device` (the simulated
 * device models' fault plans, sim/faults, registered by campaigns/device-classes.ts; a class is a
 * key of `faults:` either way).
 */

import type { FaultDevice } from '../sim/faults/classes.js';
import type { ParamSpec } from '../sim/faults/params.js';
import { DEVICE_FAULT_CLASSES } from './device-classes.js';
import type { Field } from '../policies/schema-dsl.js';
import { MUTATION_OPERATORS } from './mutate/operators.js';
import { EXHAUSTION_RESOURCES, HOSTILE_ABI_ATTACKS } from './inject/hostile.js';

export type FaultSide = 'driver' | 'device';

export interface FaultClassInfo {
  readonly name: string;
  readonly side: FaultSide;
  readonly doc: string;
  /** Device classes: the simulated model they apply to (sim/faults). */
  readonly device?: FaultDevice;
  /** Device classes: the class's own typed parameters, from the sim/faults registry. */
  readonly params?: readonly ParamSpec[];
  /** The campaign modes it means something in (spec `mode`); default: every mode. */
  readonly modes?: readonly CampaignMode[];
  /** A class-specific list parameter: which variants a trial may draw from. */
  readonly variants?: { readonly key: string; readonly values: readonly string[]; readonly doc: string };
  /** Driver classes: parameters of this class alone (beside the common ones and `variants`), in the spec's schema language. */
  readonly fields?: Readonly<Record<string, Field>>;
}

/** Where a trial runs its target: in the runner's process, or through the real sandbox (campaigns/container/). */
export const CAMPAIGN_MODES = ['in-process', 'container'] as const;
export type CampaignMode = (typeof CAMPAIGN_MODES)[number];

export const SIGNALS = ['sigkill', 'sigsegv'] as const;

export const WILD_TARGETS = ['unmapped', 'read-only', 'rings', 'neighbour', 'canary'] as const;
export type WildTarget = (typeof WILD_TARGETS)[number];

export const MUTATIONS = ['bit-flip', 'prp', 'lba', 'cid'] as const;
export type Mutation = (typeof MUTATIONS)[number];

export const ERROR_SITES = ['dma-alloc', 'register-read'] as const;
export type ErrorSite = (typeof ERROR_SITES)[number];

export const DRIVER_FAULT_CLASSES: readonly FaultClassInfo[] = [
  {
    name: 'crash',
    side: 'driver',
    doc: 'The driver dies at a random point of its work (an exception thrown out of a register access; from then on every platform call fails, as for a dead process): the supervisor restarts it.',
  },
  {
    name: 'hang',
    side: 'driver',
    doc: 'The driver stops at a random point: no more register writes reach the device and no request completes; the supervisor sees no progress for `recovery.hangMs`, kills and restarts it.',
  },
  {
    name: 'wild-dma',
    side: 'driver',
    doc: 'The driver programs its device to write at a random address (an I/O read command whose PRP1 is replaced before the doorbell): the IOMMU must refuse it, and with `--iommu off` it lands.',
    variants: {
      key: 'targets',
      values: WILD_TARGETS,
      doc: 'Where the DMA goes: an unmapped IOVA, a window the device may only read, the driver’s own completion ring, another sandbox’s window (its physical address), a canary page outside every window.',
    },
  },
  {
    name: 'corrupt-work',
    side: 'driver',
    doc: 'A submission entry of an I/O read is corrupted before the doorbell: a bit flipped in its data-pointer or LBA dwords, a wrong PRP, a wrong LBA, a stale command id.',
    variants: { key: 'mutations', values: MUTATIONS, doc: 'Which corruptions a trial may draw.' },
  },
  {
    name: 'error-return',
    side: 'driver',
    doc: 'LFI-style error returns at the driver contract: a DMA allocation fails, or a register read answers all-ones (a device that fell off the bus).',
    variants: { key: 'sites', values: ERROR_SITES, doc: 'Which contract calls fail.' },
  },
  {
    name: 'mutation',
    side: 'driver',
    modes: ['in-process'],
    doc: 'SWIFI for a JavaScript driver: one mutant of the driver’s own code per trial (a comparison or check flipped, a constant or an index shifted, a statement, return or break dropped), built from the target’s module (built-in or external), loops guarded, and run in place of the driver; restarts run the same mutant (campaigns/mutate/). `within`, `probability`, `interval` and `times` do not apply.',
    variants: { key: 'operators', values: MUTATION_OPERATORS, doc: 'Which mutation operators a trial may draw (campaigns/mutate/operators.ts).' },
    fields: {
      files: {
        schema: {
          t: 'array',
          items: { t: 'string', hint: 'a path relative to the driver module’s folder; * and ** allowed', pattern: '^[^\\s]+\\.m?js$' },
          minItems: 1,
          maxItems: 64,
        },
        default: ['*.js'],
        doc: 'Which of the driver’s modules are mutated, relative to the folder of the module the policy names (default: that folder’s files, the driver’s own code).',
      },
    },
  },
  {
    name: 'signal',
    side: 'driver',
    modes: ['container'],
    doc: 'The host signals the driver container while requests are in flight (SIGKILL, or SIGSEGV: a segfault as the process sees it): a real process death the supervisor must see, quarantine and restart from, replaying what was in flight.',
    variants: { key: 'signals', values: SIGNALS, doc: 'Which signals a trial may draw.' },
  },
  {
    name: 'hostile-abi',
    side: 'driver',
    modes: ['container'],
    doc: 'Container mode only: at a block request in flight the driver’s code turns on the manager’s ABI, once (campaigns/inject/hostile.ts): bytes that are no hypercall frame on its hypercall socket, the register ring’s tail forged far beyond the ring, or a flood of LOG hypercalls. The manager must see a violation and kill it; the supervisor restarts it and replays what was in flight.',
    variants: { key: 'attacks', values: HOSTILE_ABI_ATTACKS, doc: 'Which attacks a trial may draw.' },
  },
  {
    name: 'exhaustion',
    side: 'driver',
    modes: ['container'],
    doc: 'Container mode only: at a block request in flight the driver’s code exhausts a resource (campaigns/inject/hostile.ts): it holds JavaScript heap until the container’s heap limit or its cgroup’s memory limit ends it, or spins forever so that its heartbeats stop and the supervisor’s hang detection kills it. The manager’s own memory must stay bounded.',
    variants: { key: 'resources', values: EXHAUSTION_RESOURCES, doc: 'Which resource a trial may exhaust.' },
  },
];

/** Every class a spec may name: the driver side's, then the device models' (campaigns/device-classes.ts). */
export const FAULT_CLASSES: readonly FaultClassInfo[] = [...DRIVER_FAULT_CLASSES, ...DEVICE_FAULT_CLASSES];
