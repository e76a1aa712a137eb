/**
 * The simulated controller's queue engine (NVMe 1.4 §4.1, §4.2, §4.6, §7.2): submission and
 * completion queues in host memory, doorbells, command fetch, completion posting with phase tags,
 * and one MSI-X message per CQ that got entries.
 *
 * Hot path: commands are fetched in one DMA read per batch (up to 64 entries, to the wrap or the
 * CQ's room), executed from a preallocated dword view, and their completions staged and written
 * back in one DMA write (two at a wrap). Nothing is allocated per command. Admin commands go to
 * the admin command set, I/O commands to the NVM engine (unless a fault switch holds them).
 */
import type { PciFunction } from '../pci.js';
import type { DeviceWork } from '../sched.js';
import { CQE, CQE_DW2, CQE_DW3, dword, SQE, SQE_CDW0 } from '../../spec/nvme/queue.js';
import { GenericSc, Sct, statusOf } from '../../spec/nvme/status.js';
import type { SimNvmeStats } from './config.js';
import type { FaultSwitches } from './faults.js';
import { CORRUPTION, IoFault, type NvmeFaultPlan } from './fault-plan.js';
import type { NvmEngine } from './nvm.js';
import type { NvmeMutator } from './mutator.js';

export interface Sq {
  readonly id: number;
  readonly base: number;
  readonly size: number;
  head: number;
  tail: number;
  readonly cq: Cq;
}

export interface Cq {
  readonly id: number;
  readonly base: number;
  readonly size: number;
  head: number;
  tail: number;
  phase: number;
  readonly ien: boolean;
  readonly iv: number;
  /** Entries posted since the last interrupt. */
  posted: number;
  /** SQs bound to this CQ. */
  sqs: number;
}

/** What executes an admin command: a 15-bit status, and dword 0 of its completion in `dw0`. */
export interface AdminExecutor {
  readonly dw0: number;
  execute(sqe: Uint32Array): number;
}

/** Entries fetched per DMA read, and completions staged per DMA write, at most. */
const BATCH = 64;
/**
 * Commands executed per run of the work routine at most (four batches): a driver that keeps its
 * queues full gets the rest done in the next deferred step (sim/sched.ts), so one run is bounded
 * by this many commands of at most MDTS bytes each, whatever the queue sizes and doorbells say.
 */
export const COMMAND_BUDGET = 256;
/**
 * Bytes moved or zeroed per run at most (checked after each command, so one command of any size
 * still runs): a run of 256 maximum-size transfers, Write Zeroes or deallocations would otherwise
 * hold the event loop for gigabytes of copying. 8 MiB is a few milliseconds of memcpy.
 */
export const BYTE_BUDGET = 8 * 1024 * 1024;
const SQE_DWORDS = SQE.size / 4;
const CQE_DWORDS = CQE.size / 4;
const CDW0 = dword(SQE.CDW0);
const OPC_MASK = SQE_CDW0.OPC.mask;
const CID_LO = SQE_CDW0.CID.lo;
const FUSE_OR_PSDT = SQE_CDW0.FUSE.mask | SQE_CDW0.PSDT.mask;
const DW0 = dword(CQE.DW0);
const DW1 = dword(CQE.DW1);
const DW2 = dword(CQE.DW2);
const DW3 = dword(CQE.DW3);
const SQID_LO = CQE_DW2.SQID.lo;
const SQHD_MASK = CQE_DW2.SQHD.mask;
const P_MASK = CQE_DW3.P.mask;
const PRP1 = dword(SQE.PRP1);
/** Data Transfer Error (SCT 0, SC 04h): what a corrupted read reports when the plan says the device admits it. */
const TRANSFER = statusOf(Sct.GENERIC, GenericSc.DATA_TRANSFER_ERROR);
const P_LO = CQE_DW3.P.lo;
const STATUS_LO = CQE_DW3.STATUS.lo;
/** Fused operations and SGLs (PSDT != 0) are not supported. */
const UNSUPPORTED = statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true);

export class QueueEngine {
  /** Queues by id (0: admin). */
  readonly sqs: (Sq | undefined)[];
  readonly cqs: (Cq | undefined)[];
  /** Whether the controller processes commands (the register file says). */
  running = false;
  /** A device fault plan (sim/faults): consulted per I/O command, batch and interrupt only when set. */
  plan: NvmeFaultPlan | undefined;
  /** The fuzzer's hook (mutator.ts): sees each completion entry as it is built, only when set. */
  mutator: NvmeMutator | undefined;
  private readonly stats: SimNvmeStats;
  private readonly faults: FaultSwitches;
  private readonly onFatal: (reason: string) => void;
  private fn!: PciFunction;
  private work!: DeviceWork;
  private nvm!: NvmEngine;
  private admin!: AdminExecutor;
  private readonly sqe = new Uint32Array(SQE_DWORDS);
  /** Submission entries fetched in one DMA read per batch. */
  private readonly fetched = new Uint8Array(BATCH * SQE.size);
  private readonly fetched32 = new Uint32Array(this.fetched.buffer);
  /** Completions of the current batch, written to the CQ in one DMA write (two at a wrap). */
  private readonly stage = new Uint8Array(BATCH * CQE.size);
  private readonly stage32 = new Uint32Array(this.stage.buffer);
  /** One entry built outside a batch (an Abort's second completion, an injected one), for the mutator. */
  private readonly single = new Uint32Array(CQE_DWORDS);
  /** Bytes moved or zeroed in the current run (against BYTE_BUDGET). */
  private spent = 0;
  /** The SQ the next run starts with (round robin across runs). */
  private first = 0;
  private stageCq: Cq | undefined;
  private stageStart = 0;
  private staged = 0;

  constructor(maxIoQueues: number, stats: SimNvmeStats, faults: FaultSwitches, onFatal: (reason: string) => void) {
    this.sqs = new Array<Sq | undefined>(maxIoQueues + 1).fill(undefined);
    this.cqs = new Array<Cq | undefined>(maxIoQueues + 1).fill(undefined);
    this.stats = stats;
    this.faults = faults;
    this.onFatal = onFatal;
  }

  /** Bind to the function (DMA, interrupts), its work item, and the command sets. */
  attach(fn: PciFunction, work: DeviceWork, admin: AdminExecutor, nvm: NvmEngine): void {
    this.fn = fn;
    this.work = work;
    this.admin = admin;
    this.nvm = nvm;
  }

  /** The admin queue pair, created by CC.EN (§7.6.1) from ASQ/ACQ and AQA. */
  createAdminQueues(asq: number, asqEntries: number, acq: number, acqEntries: number): void {
    const cq: Cq = { id: 0, base: acq, size: acqEntries, head: 0, tail: 0, phase: 1, ien: true, iv: 0, posted: 0, sqs: 1 };
    this.cqs[0] = cq;
    this.sqs[0] = { id: 0, base: asq, size: asqEntries, head: 0, tail: 0, cq };
  }

  /** Delete every queue (CC.EN 1 -> 0, §7.3.2). */
  deleteAll(): void {
    this.sqs.fill(undefined);
    this.cqs.fill(undefined);
  }

  /** How many I/O SQs exist now. */
  get ioQueueCount(): number {
    let n = 0;
    for (let i = 1; i < this.sqs.length; i++) if (this.sqs[i]) n++;
    return n;
  }

  /** A doorbell write: a tail or head past its queue, or for a queue that does not exist, is counted and ignored. */
  doorbell(qid: number, cq: boolean, value: number): void {
    if (!cq) {
      const sq = this.sqs[qid];
      if (sq === undefined || value >= sq.size) {
        this.stats.badDoorbells++;
        return;
      }
      sq.tail = value;
    } else {
      const q = this.cqs[qid];
      if (q === undefined || value >= q.size) {
        this.stats.badDoorbells++;
        return;
      }
      q.head = value;
    }
    this.work.kick();
  }

  /** The work routine: fetch and execute every submitted command whose CQ has room, then signal. */
  process(): void {
    if (!this.running) return;
    const sqs = this.sqs;
    let budget = COMMAND_BUDGET;
    this.spent = 0;
    let progress = true;
    while (progress && this.running && budget > 0 && this.spent < BYTE_BUDGET) {
      progress = false;
      // Round robin (CC.AMS 000b): each run starts one queue further, so a budget spent on one SQ
      // never starves the ones after it.
      for (let i = 0; i < sqs.length && budget > 0 && this.spent < BYTE_BUDGET; i++) {
        const sq = sqs[(this.first + i) % sqs.length];
        if (sq === undefined) continue;
        while (sq.head !== sq.tail && this.running && budget > 0 && this.spent < BYTE_BUDGET) {
          // Fetch as many entries as are submitted, contiguous (up to the wrap), and fit in the CQ.
          const cq = sq.cq;
          const submitted = sq.tail >= sq.head ? sq.tail - sq.head : sq.size - sq.head;
          const cqRoom = (cq.head - cq.tail - 1 + cq.size) % cq.size;
          const n = Math.min(submitted, cqRoom, BATCH, budget);
          if (n === 0) break; // CQ full: wait for its head doorbell
          if (!this.fn.dma.read(sq.base + sq.head * SQE.size, this.fetched, 0, n * SQE.size)) {
            this.onFatal(`SQ ${sq.id} entries ${sq.head}..${sq.head + n - 1} could not be fetched (IOMMU refused the read)`);
            return;
          }
          progress = true;
          budget -= n;
          const e = this.sqe;
          const f = this.fetched32;
          this.stageCq = cq;
          this.stageStart = cq.tail;
          this.staged = 0;
          // Entries fetched past the byte budget stay in the SQ (head stops short): fetched again next run.
          for (let i = 0; i < n && this.running && this.spent < BYTE_BUDGET; i++) {
            const b = i * SQE_DWORDS;
            for (let k = 0; k < SQE_DWORDS; k++) e[k] = f[b + k]!;
            if (++sq.head === sq.size) sq.head = 0;
            this.execute(sq);
          }
          if (!this.flushStage()) return;
        }
      }
    }
    this.first = (this.first + 1) % sqs.length;
    this.signal();
    if ((budget === 0 || this.spent >= BYTE_BUDGET) && this.running) {
      // Budget spent: whatever is still submitted is fetched in the next step.
      this.stats.budgetYields++;
      this.work.kick();
    }
  }

  /**
   * Post a completion (§4.6): DW0, DW1, SQHD|SQID, then CID|status with the phase tag. Staged when
   * it goes to the CQ of the batch being processed, written at once otherwise (an Abort's second
   * completion, an injected one).
   */
  complete(sq: Sq, cid: number, status: number, dw0: number): void {
    const cq = sq.cq;
    if ((cq.tail + 1) % cq.size === cq.head) {
      // Only an Abort's second completion or an injected one can meet a full CQ (fetching stops
      // when the CQ has no room): drop it and count it rather than overwrite an unread entry.
      this.stats.cqOverflows++;
      return;
    }
    const dw2 = ((sq.id << SQID_LO) | sq.head) >>> 0;
    const dw3 = ((status << STATUS_LO) | (cq.phase << P_LO) | cid) >>> 0;
    if (cq === this.stageCq) {
      const i = this.staged++ * CQE_DWORDS;
      const st = this.stage32;
      st[i + DW0] = dw0 >>> 0;
      st[i + DW1] = 0;
      st[i + DW2] = dw2;
      st[i + DW3] = dw3;
      if (this.mutator !== undefined) this.mutator.completion(st, i);
    } else {
      const at = cq.base + cq.tail * CQE.size;
      const dma = this.fn.dma;
      const e = this.single;
      e[DW0] = dw0 >>> 0;
      e[DW1] = 0;
      e[DW2] = dw2;
      e[DW3] = dw3;
      if (this.mutator !== undefined) this.mutator.completion(e, 0);
      if (!(dma.writeU64(at + CQE.DW0.offset, e[DW0]!, e[DW1]!) && dma.writeU64(at + CQE.DW2.offset, e[DW2]!, e[DW3]!))) {
        this.onFatal(`CQ ${cq.id} entry ${cq.tail} could not be written (IOMMU refused the write)`);
        return;
      }
    }
    if (++cq.tail === cq.size) {
      cq.tail = 0;
      cq.phase ^= 1;
    }
    cq.posted++;
  }

  /** One interrupt per CQ that got entries since the last (coalesced per processing run). */
  signal(): void {
    for (let q = 0; q < this.cqs.length; q++) {
      const cq = this.cqs[q];
      if (cq === undefined || cq.posted === 0) continue;
      cq.posted = 0;
      if (cq.ien && this.fn.msix?.enabled) {
        if (this.plan !== undefined && !this.faultyInterrupt()) continue;
        this.stats.interrupts++;
        this.fn.interrupt(cq.iv);
      }
    }
  }

  private execute(sq: Sq): void {
    const d = this.sqe;
    const cdw0 = d[CDW0]!;
    const cid = cdw0 >>> CID_LO;
    this.stats.commands++;
    if ((cdw0 & FUSE_OR_PSDT) !== 0) return this.complete(sq, cid, UNSUPPORTED, 0);
    if (sq.id === 0) {
      this.stats.adminCommands++;
      const status = this.admin.execute(d);
      this.complete(sq, cid, status, this.admin.dw0);
      return;
    }
    if (this.faults.hold(sq.id, cid)) return;
    if (this.plan !== undefined && this.plan.io !== IoFault.NONE) {
      const fault = this.plan.ioCommand(cdw0 & OPC_MASK);
      if (fault !== IoFault.NONE) return this.faultyCommand(sq, cid, fault);
    }
    this.complete(sq, cid, this.nvm.execute(d), 0);
    this.spent += this.nvm.cost;
  }

  /** An I/O command the fault plan fired on (sim/nvme/fault-plan.ts): what the device does instead. */
  private faultyCommand(sq: Sq, cid: number, fault: number): void {
    const plan = this.plan!;
    const d = this.sqe;
    const opc = d[CDW0]! & OPC_MASK;
    if (fault === IoFault.STATUS) return this.complete(sq, cid, plan.status(opc), 0);
    if (fault === IoFault.FATAL) return this.onFatal(`fault plan nvme.fatal fired on SQ ${sq.id} CID ${cid}`);
    if (fault === IoFault.REMOVAL) {
      plan.removed = true;
      this.running = false;
      return;
    }
    let status = this.nvm.execute(d);
    this.spent += this.nvm.cost;
    if (fault === IoFault.DROP) return;
    if (fault === IoFault.CORRUPT_READ && status === 0) {
      this.fn.dma.writeU64(d[PRP1]! + d[PRP1 + 1]! * 0x1_0000_0000, CORRUPTION, CORRUPTION);
      if (plan.corruptionReported) status = TRANSFER;
    }
    const posted = this.staged;
    this.complete(sq, fault === IoFault.WRONG_CID ? (cid ^ (1 + plan.injector.rng.below(0xfffe))) & 0xffff : cid, status, 0);
    if (fault === IoFault.DUPLICATE) this.complete(sq, cid, status, 0);
    if (this.staged === posted || this.stageCq !== sq.cq) return;
    const i = (posted * CQE_DWORDS) | 0;
    if (fault === IoFault.WRONG_PHASE) this.stage32[i + DW3] = (this.stage32[i + DW3]! ^ P_MASK) >>> 0;
    if (fault === IoFault.SQ_HEAD) {
      this.stage32[i + DW2] = ((this.stage32[i + DW2]! & ~SQHD_MASK) | plan.sqHead(sq.head, sq.tail, sq.size)) >>> 0;
    }
  }

  /** The fault plan's say on an interrupt due: false to lose it; a storm sends extra messages on every vector first. */
  private faultyInterrupt(): boolean {
    const f = this.plan!.interrupt();
    if (f < 0) return false;
    const vectors = this.fn.msix?.vectors ?? 0;
    for (let n = 0; n < f; n++) for (let v = 0; v < vectors; v++) this.fn.interrupt(v);
    return true;
  }

  /** Write the batch's staged completions (§4.6) to their CQ: one DMA write, two at a wrap. */
  private flushStage(): boolean {
    const cq = this.stageCq;
    const n = this.staged;
    this.stageCq = undefined;
    this.staged = 0;
    if (cq === undefined || n === 0) return true;
    if (this.plan !== undefined && this.plan.reorder(n)) this.swapFirstTwo();
    const first = Math.min(n, cq.size - this.stageStart);
    const dma = this.fn.dma;
    const ok =
      dma.write(cq.base + this.stageStart * CQE.size, this.stage, 0, first * CQE.size) &&
      (first === n || dma.write(cq.base, this.stage, first * CQE.size, (n - first) * CQE.size));
    if (!ok) {
      this.onFatal(`CQ ${cq.id} entries from ${this.stageStart} could not be written (IOMMU refused the write)`);
      return false;
    }
    return true;
  }

  /** nvme.reorder-completions: the batch's first two entries swap places, each keeping its position's phase tag. */
  private swapFirstTwo(): void {
    const st = this.stage32;
    for (let k = 0; k < CQE_DWORDS; k++) {
      const a = st[k]!;
      st[k] = st[CQE_DWORDS + k]!;
      st[CQE_DWORDS + k] = a;
    }
    const p0 = st[CQE_DWORDS + DW3]! & P_MASK;
    const p1 = st[DW3]! & P_MASK;
    st[DW3] = ((st[DW3]! & ~P_MASK) | p0) >>> 0;
    st[CQE_DWORDS + DW3] = ((st[CQE_DWORDS + DW3]! & ~P_MASK) | p1) >>> 0;
  }
}

/** The opcode of a fetched command. */
export function opcodeOf(sqe: Uint32Array): number {
  return sqe[CDW0]! & OPC_MASK;
}
