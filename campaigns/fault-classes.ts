/**
 * The fault classes a campaign can inject, as data: the spec's schema (schema.ts), the trial plan
 * (plan.ts) and the reports all read this one list. Each class says on which side it is injected:
 * `driver` (campaigns/inject/, wrapped around the driver's Platform) — the only side here; device-
 * side fault models (sim/nvme/faults.ts and its successors) can be registered as `side: 'device'`
 * classes later without changing the spec format (a class is a key of `faults:`).
 */

export type FaultSide = 'driver' | 'device';

export interface FaultClassInfo {
  readonly name: string;
  readonly side: FaultSide;
  readonly doc: string;
  /** The campaign modes it means something in (spec `mode`); default: every mode. */
  readonly modes?: readonly CampaignMode[];
  /** A class-specific list parameter: which variants a trial may draw from. */
  readonly variants?: { readonly key: string; readonly values: readonly string[]; readonly doc: string };
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
    name: 'signal',
    side: 'driver',
    modes: ['container'],
    doc: 'The host signals the driver container while requests are in flight (SIGKILL, or SIGSEGV: a segfault as the process sees it): a real process death the supervisor must see, quarantine and restart from, replaying what was in flight.',
    variants: { key: 'signals', values: SIGNALS, doc: 'Which signals a trial may draw.' },
  },
];
