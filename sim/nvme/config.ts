/**
 * What a simulated NVMe controller is built from: its options, their defaults and checks, its
 * namespaces, and the counters tests and benchmarks read.
 */
import type { FaultPlan } from '../faults/plan.js';
import type { WorkMode } from '../sched.js';
import { SimError } from '../errors.js';
import type { BlockStore } from './store.js';
import type { NvmeMutator } from './mutator.js';
import { MemoryStore } from './store.js';

export interface SimNamespaceConfig {
  /** Size in logical blocks. */
  blocks: number;
  /** 512 or 4096 (any power of two from 512). Default 512. */
  blockSize?: number;
  /** Backing store; default a MemoryStore of blocks * blockSize bytes. */
  store?: BlockStore;
}

export interface SimNvmeOptions {
  serial?: string;
  model?: string;
  firmware?: string;
  namespaces?: SimNamespaceConfig[];
  /** CAP.MQES + 1: the largest queue. Default 1024. */
  maxQueueEntries?: number;
  /** CAP.DSTRD. Default 0. */
  dstrd?: number;
  /** CAP.TO in 500 ms units. Default 10 (5 s). */
  timeout?: number;
  /** Identify MDTS: 2^mdts pages per command; 0 = no limit. Default 5 (128 KiB). */
  mdts?: number;
  /** I/O queue pairs the controller grants at most. Default 8. */
  maxIoQueues?: number;
  /** MSI-X vectors. Default maxIoQueues + 1. */
  msixVectors?: number;
  /** When the model processes doorbells: 'sync' (inside the doorbell write) or 'deferred'. Default 'deferred'. */
  workMode?: WorkMode;
  /** Move data between the store and host memory (default true). False: a null data path, for the driver's own cost. */
  copyData?: boolean;
  /** A device fault plan (sim/faults, an nvme.* class): the controller misbehaves as it says. None by default. */
  faultPlan?: FaultPlan;
  /** The fuzzer's hook (mutator.ts): register reads, completion entries and Identify data pass through it. None by default. */
  mutator?: NvmeMutator;
}

export type SimNvmeConfig = Required<Omit<SimNvmeOptions, 'namespaces' | 'faultPlan' | 'mutator'>>;

export interface SimNamespace {
  readonly nsid: number;
  readonly blocks: number;
  readonly blockSize: number;
  readonly blockShift: number;
  readonly store: BlockStore;
}

/** Counters for tests and benchmarks. */
export interface SimNvmeStats {
  commands: number;
  adminCommands: number;
  dataTransferErrors: number;
  badDoorbells: number;
  cqOverflows: number;
  interrupts: number;
  fatal: number;
  fuaWrites: number;
  /** Commands refused because their PRP list looped, revisited a list page or needed more chains than their length (Invalid Field). */
  badPrpLists: number;
  /** Exceptions inside the model caught by its PCI function: each put the controller in CSTS.CFS. */
  deviceFaults: number;
  /** Processing runs that stopped at their command budget and went on in a later step. */
  budgetYields: number;
}

export function newStats(): SimNvmeStats {
  return {
    commands: 0,
    adminCommands: 0,
    dataTransferErrors: 0,
    badDoorbells: 0,
    cqOverflows: 0,
    interrupts: 0,
    fatal: 0,
    fuaWrites: 0,
    badPrpLists: 0,
    deviceFaults: 0,
    budgetYields: 0,
  };
}

/** The options with their defaults, checked. */
export function resolveConfig(options: SimNvmeOptions): SimNvmeConfig {
  const maxIoQueues = options.maxIoQueues ?? 8;
  const o: SimNvmeConfig = {
    serial: options.serial ?? 'dmabox-sim0',
    model: options.model ?? 'dmabox simulated NVMe',
    firmware: options.firmware ?? '1.0',
    maxQueueEntries: options.maxQueueEntries ?? 1024,
    dstrd: options.dstrd ?? 0,
    timeout: options.timeout ?? 10,
    mdts: options.mdts ?? 5,
    maxIoQueues,
    msixVectors: options.msixVectors ?? maxIoQueues + 1,
    workMode: options.workMode ?? 'deferred',
    copyData: options.copyData ?? true,
  };
  if (!Number.isInteger(o.maxQueueEntries) || o.maxQueueEntries < 2 || o.maxQueueEntries > 65536) {
    throw new SimError('ERR_SIM_ARG', `maxQueueEntries ${o.maxQueueEntries}: must be 2..65536`, { fix: "CAP.MQES is 16 bits, 0's based" });
  }
  if (!Number.isInteger(o.dstrd) || o.dstrd < 0 || o.dstrd > 15)
    throw new SimError('ERR_SIM_ARG', `dstrd ${o.dstrd}: must be 0..15`, { fix: 'CAP.DSTRD is 4 bits' });
  if (!Number.isInteger(o.timeout) || o.timeout < 0 || o.timeout > 255)
    throw new SimError('ERR_SIM_ARG', `timeout ${o.timeout}: must be 0..255`, { fix: 'CAP.TO is 8 bits, in 500 ms units' });
  if (!Number.isInteger(o.mdts) || o.mdts < 0 || o.mdts > 12) {
    throw new SimError('ERR_SIM_ARG', `mdts ${o.mdts}: must be 0..12`, {
      fix: 'the model moves at most 2^12 pages (16 MiB) per command; 0 means no limit (2 MiB here)',
    });
  }
  if (!Number.isInteger(maxIoQueues) || maxIoQueues < 1 || maxIoQueues > 1023) throw new SimError('ERR_SIM_ARG', `maxIoQueues ${maxIoQueues}: must be 1..1023`);
  if (!Number.isInteger(o.msixVectors) || o.msixVectors < 1 || o.msixVectors > 2048)
    throw new SimError('ERR_SIM_ARG', `msixVectors ${o.msixVectors}: must be 1..2048`);
  return o;
}

/** The namespaces, NSIDs from 1, each with its store (a MemoryStore unless one is given). */
export function buildNamespaces(configs: readonly SimNamespaceConfig[]): SimNamespace[] {
  return configs.map((ns, i) => {
    const bs = ns.blockSize ?? 512;
    if (!Number.isInteger(bs) || bs < 512 || (bs & (bs - 1)) !== 0)
      throw new SimError('ERR_SIM_ARG', `namespace ${i + 1}: block size ${bs} is not a power of two >= 512`);
    if (!Number.isSafeInteger(ns.blocks) || ns.blocks < 1)
      throw new SimError('ERR_SIM_ARG', `namespace ${i + 1}: ${ns.blocks} blocks is not a positive integer`);
    const store = ns.store ?? new MemoryStore(ns.blocks * bs);
    if (store.size < ns.blocks * bs) throw new SimError('ERR_SIM_ARG', `namespace ${i + 1}: store of ${store.size} bytes is smaller than ${ns.blocks} x ${bs}`);
    return { nsid: i + 1, blocks: ns.blocks, blockSize: bs, blockShift: Math.log2(bs), store };
  });
}
