/**
 * A simulated NVMe controller (NVM Express Base Specification 1.4 subset) as a sim DeviceModel,
 * built from spec/nvme (it imports no driver code), in files by concept:
 *
 * - registers.ts: CAP, VS, INTMS/INTMC, CC, CSTS, AQA, ASQ, ACQ and the doorbells (§3.1) on a
 *   RegisterTable; CC drives enable, disable and shutdown (§7.6.1, §7.3.2, §7.6.2);
 * - queues.ts: the queue engine: fetch, phase tags, completion posting, MSI-X per CQ (§4, §7.2);
 * - admin.ts: Identify, Features, Create/Delete I/O queues, Abort (§5);
 * - nvm.ts: Read, Write, Flush, Write Zeroes, Dataset Management (§6), data through prp.ts's
 *   walker (§4.3) and the function's IOMMU-checked DMA engine; a refused transfer completes with
 *   Data Transfer Error (SCT 0, SC 04h), unlike QEMU 7.2 which reports success, and the IOMMU
 *   logs the fault;
 * - faults.ts and `fatal()` / `injectCompletion()` here: the fault switches for tests, beside the
 *   function's own `hang()`;
 * - fault-plan.ts: a device fault plan (sim/faults, `options.faultPlan`): the controller
 *   misbehaves on purpose, deterministically from the plan's seed;
 * - mutator.ts: the fuzzer's hook (`options.mutator`): register reads, completion entries and
 *   Identify data pass through it.
 */
import type { BarDecl, DeviceModel, MsixDecl, PciIds } from '../model.js';
import type { PciFunction } from '../pci.js';
import type { DeviceWork } from '../sched.js';
import { SimError } from '../errors.js';
import { removableBar } from '../regs.js';
import { LITTLE_ENDIAN_HOST } from '../../spec/nvme/queue.js';
import { AdminCommandSet } from './admin.js';
import { buildNamespaces, newStats, resolveConfig, type SimNamespace, type SimNvmeConfig, type SimNvmeOptions } from './config.js';
import { FaultSwitches } from './faults.js';
import { NvmeFaultPlan } from './fault-plan.js';
import { NvmEngine } from './nvm.js';
import { PAGE, PrpWalker } from './prp.js';
import { QueueEngine } from './queues.js';
import { NvmeRegisterFile } from './registers.js';
import { mutableBar } from './mutator.js';

export type { SimNamespace, SimNamespaceConfig, SimNvmeOptions, SimNvmeStats } from './config.js';

export class SimNvme implements DeviceModel {
  readonly name = 'nvme';
  readonly ids: PciIds = { vendor: 0x1b36, device: 0x0010, classCode: 0x010802, revision: 2 };
  readonly bars: readonly BarDecl[];
  readonly msix: MsixDecl;
  readonly namespaces: SimNamespace[];
  /** Bytes one command may move: 2 ^ MDTS pages, or 2 MiB with MDTS 0 (no limit). */
  readonly maxTransfer: number;
  /** Counters for tests and benchmarks. */
  readonly stats = newStats();
  nvm!: NvmEngine;

  private readonly config: SimNvmeConfig;
  private readonly regs: NvmeRegisterFile;
  private readonly queues: QueueEngine;
  private readonly admin: AdminCommandSet;
  private readonly faults = new FaultSwitches();
  /** The device fault plan the controller was built with, if any (its injector counts events and firings). */
  readonly faultPlan: NvmeFaultPlan | undefined;
  private workItem: DeviceWork | undefined;

  constructor(options: SimNvmeOptions = {}) {
    if (!LITTLE_ENDIAN_HOST) {
      throw new SimError('ERR_SIM_NVME_UNSUPPORTED', 'the NVMe model handles queue entries as host-order dwords and this host is big-endian', {
        fix: 'run the simulator on a little-endian host (x86-64, arm64)',
      });
    }
    const o = (this.config = resolveConfig(options));
    this.namespaces = buildNamespaces(options.namespaces ?? [{ blocks: 2048 }]);
    this.maxTransfer = o.mdts === 0 ? 2 * 1024 * 1024 : PAGE * 2 ** o.mdts;
    const plan = (this.faultPlan = options.faultPlan === undefined ? undefined : new NvmeFaultPlan(options.faultPlan));
    this.queues = new QueueEngine(o.maxIoQueues, this.stats, this.faults, (reason) => this.fatal(reason));
    this.queues.plan = plan;
    this.queues.mutator = options.mutator;
    this.admin = new AdminCommandSet({
      config: o,
      vendor: this.ids.vendor,
      namespaces: this.namespaces,
      queues: this.queues,
      faults: this.faults,
      stats: this.stats,
      plan,
      mutator: options.mutator,
    });
    this.regs = new NvmeRegisterFile(o, {
      enable: (asq, asqs, acq, acqs) => this.queues.createAdminQueues(asq, asqs, acq, acqs),
      disable: () => {
        this.queues.deleteAll();
        this.faults.clear();
        this.admin.reset();
      },
      doorbell: (qid, cq, value) => this.queues.doorbell(qid, cq, value),
      running: (on) => {
        this.queues.running = on && plan?.removed !== true;
      },
      ...(plan === undefined ? {} : { refuseEnable: () => plan.refuseEnable(), refuseDisable: () => plan.refuseDisable() }),
    });
    // Surprise removal (nvme.removal): once removed, reads are all ones and writes go nowhere.
    const handler = mutableBar(removableBar(this.regs.table, plan), options.mutator);
    this.bars = [{ index: 0, size: this.regs.size, handler }];
    this.msix = { vectors: o.msixVectors, bar: 0, tableOffset: this.regs.msixTableOffset, pbaOffset: this.regs.msixPbaOffset };
  }

  attach(fn: PciFunction): void {
    const prp = new PrpWalker(fn.dma, this.maxTransfer);
    this.nvm = new NvmEngine(prp, this.namespaces, this.maxTransfer, this.config.copyData, this.stats);
    this.admin.attach(prp);
    this.workItem = fn.work(() => this.queues.process(), this.config.workMode);
    this.queues.attach(fn, this.workItem, this.admin, this.nvm);
  }

  /** Function-level reset: registers to power-on values, every queue forgotten. */
  reset(): void {
    this.workItem?.cancel();
    this.regs.reset();
  }

  /** The last reason the controller refused to become ready or went fatal. */
  get lastError(): string {
    return this.regs.lastError;
  }

  /** Put the controller in Controller Fatal Status (§3.1.6): it stops processing commands. */
  fatal(reason = 'fatal() called by a test'): void {
    this.stats.fatal++;
    this.regs.fatal(reason);
  }

  /**
   * DeviceModel: an exception escaped the model (caught by its PciFunction). The controller goes to
   * Controller Fatal Status (§3.1.6, CSTS.CFS): the driver sees it and resets the controller.
   */
  fail(reason: string): void {
    this.stats.deviceFaults++;
    this.fatal(`internal error: ${reason}`);
  }

  /** Fetch the next `n` I/O commands and never complete them (an Abort completes them). */
  swallow(n: number): void {
    this.faults.swallow(n);
  }

  /** Make the swallowed commands immune to Abort (Abort answers "not aborted"), to force a reset. */
  get unabortable(): boolean {
    return this.faults.unabortable;
  }
  set unabortable(on: boolean) {
    this.faults.unabortable = on;
  }

  /**
   * Post a completion no command asked for (a misbehaving device): CID `cid` on the CQ of SQ
   * `sqid`, then signal. For the driver's "unknown CID is never trusted" tests.
   */
  injectCompletion(sqid: number, cid: number, status = 0): void {
    const sq = this.queues.sqs[sqid];
    if (sq === undefined) throw new SimError('ERR_SIM_ARG', `injectCompletion: SQ ${sqid} does not exist`, { fix: 'name a queue the driver created' });
    this.queues.complete(sq, cid, status, 0);
    this.queues.signal();
  }

  /** How many I/O queue pairs exist now. */
  get ioQueueCount(): number {
    return this.queues.ioQueueCount;
  }
}
