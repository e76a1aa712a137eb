/**
 * The simulated controller's admin command set (NVMe 1.4 §5): Identify (CNS 00h, 01h, 02h,
 * §5.15), Set and Get Features (Number of Queues, Volatile Write Cache; §5.21, §5.13), Create and
 * Delete I/O Completion and Submission Queues (§5.3 to §5.6), and Abort (§5.1), with the status
 * codes the spec gives for each misuse. Identify data is built with spec/nvme/identify.ts's
 * encoders, the same layouts the driver decodes.
 */
import { getField, isSet, setField } from '../../spec/field.js';
import {
  ABORT,
  AdminOpcode,
  Cns,
  CREATE_IO_CQ_CDW11,
  CREATE_IO_QUEUE_CDW10,
  CREATE_IO_SQ_CDW11,
  DELETE_IO_QUEUE_CDW10,
  FeatureId,
  FEATURES_CDW10,
  IDENTIFY_CDW10,
  NUMBER_OF_QUEUES,
  VOLATILE_WRITE_CACHE,
} from '../../spec/nvme/commands.js';
import { encodeIdentifyController, encodeIdentifyNamespace, encodeNamespaceList, IDENTIFY_SIZE, ONCS, VWC } from '../../spec/nvme/identify.js';
import { dword, SQE, SQE_SIZE_LOG2, CQE_SIZE_LOG2 } from '../../spec/nvme/queue.js';
import { QUEUE_BASE_ALIGN, VS_1_4_0 } from '../../spec/nvme/registers.js';
import { CommandSpecificSc, GenericSc, Sct, statusOf } from '../../spec/nvme/status.js';
import type { SimNamespace, SimNvmeConfig, SimNvmeStats } from './config.js';
import type { FaultSwitches } from './faults.js';
import type { NvmeFaultPlan } from './fault-plan.js';
import type { NvmeMutator } from './mutator.js';
import { PrpResult, type PrpWalker } from './prp.js';
import { opcodeOf, type AdminExecutor, type QueueEngine } from './queues.js';

const TWO32 = 0x1_0000_0000;
const NSID = dword(SQE.NSID);
const PRP1 = dword(SQE.PRP1);
const PRP2 = dword(SQE.PRP2);
const CDW10 = dword(SQE.CDW10);
const CDW11 = dword(SQE.CDW11);

const INVALID_OPCODE = statusOf(Sct.GENERIC, GenericSc.INVALID_COMMAND_OPCODE, true);
const INVALID_FIELD = statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true);
const INVALID_NS = statusOf(Sct.GENERIC, GenericSc.INVALID_NAMESPACE_OR_FORMAT, true);
const PRP_OFFSET = statusOf(Sct.GENERIC, GenericSc.INVALID_PRP_OFFSET, true);
const TRANSFER = statusOf(Sct.GENERIC, GenericSc.DATA_TRANSFER_ERROR);
const SEQUENCE = statusOf(Sct.GENERIC, GenericSc.COMMAND_SEQUENCE_ERROR, true);
const ABORTED = statusOf(Sct.GENERIC, GenericSc.ABORTED_BY_REQUEST);
const BAD_QID = statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER, true);
const BAD_QSIZE = statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_SIZE, true);
const BAD_CQ = statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.COMPLETION_QUEUE_INVALID, true);
const BAD_VECTOR = statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_INTERRUPT_VECTOR, true);
const BAD_DELETION = statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_DELETION, true);

/** NSIDs FFFFFFFEh and FFFFFFFFh name no single namespace (§5.15). */
const NSID_BROADCAST_MIN = 0xffff_fffe;

export interface AdminCommandSetOptions {
  config: SimNvmeConfig;
  /** PCI Vendor ID, for Identify Controller's VID and SSVID. */
  vendor: number;
  namespaces: readonly SimNamespace[];
  queues: QueueEngine;
  faults: FaultSwitches;
  stats: SimNvmeStats;
  /** A device fault plan (sim/faults): nvme.identify garbles the Identify data. */
  plan?: NvmeFaultPlan | undefined;
  /** The fuzzer's hook (mutator.ts): sees the Identify data before its DMA. */
  mutator?: NvmeMutator | undefined;
}

export class AdminCommandSet implements AdminExecutor {
  /** Dword 0 of the last command's completion. */
  dw0 = 0;
  private readonly o: AdminCommandSetOptions;
  private prp!: PrpWalker;
  /** I/O queue pairs granted by Set Features Number of Queues (0: not asked yet). */
  private grantedQueues = 0;
  private ioQueuesCreated = false;
  private volatileWriteCache = 1;
  private readonly idBuf = new Uint8Array(IDENTIFY_SIZE);

  constructor(o: AdminCommandSetOptions) {
    this.o = o;
  }

  attach(prp: PrpWalker): void {
    this.prp = prp;
  }

  /** Controller reset (§7.3.2): features back to their defaults. */
  reset(): void {
    this.grantedQueues = 0;
    this.ioQueuesCreated = false;
  }

  execute(d: Uint32Array): number {
    this.dw0 = 0;
    const prp1 = d[PRP1]! + d[PRP1 + 1]! * TWO32;
    const prp2 = d[PRP2]! + d[PRP2 + 1]! * TWO32;
    const cdw10 = d[CDW10]!;
    const cdw11 = d[CDW11]!;
    const qid = getField(cdw10, CREATE_IO_QUEUE_CDW10.QID);
    const qsize = getField(cdw10, CREATE_IO_QUEUE_CDW10.QSIZE) + 1;
    switch (opcodeOf(d)) {
      case AdminOpcode.IDENTIFY:
        return this.identify(d[NSID]!, getField(cdw10, IDENTIFY_CDW10.CNS), prp1, prp2);
      case AdminOpcode.SET_FEATURES:
        return this.setFeatures(getField(cdw10, FEATURES_CDW10.FID), cdw11);
      case AdminOpcode.GET_FEATURES:
        return this.getFeatures(getField(cdw10, FEATURES_CDW10.FID));
      case AdminOpcode.CREATE_IO_CQ:
        return this.createCq(qid, qsize, prp1, cdw11);
      case AdminOpcode.CREATE_IO_SQ:
        return this.createSq(qid, qsize, prp1, cdw11);
      case AdminOpcode.DELETE_IO_SQ:
        return this.deleteSq(getField(cdw10, DELETE_IO_QUEUE_CDW10.QID));
      case AdminOpcode.DELETE_IO_CQ:
        return this.deleteCq(getField(cdw10, DELETE_IO_QUEUE_CDW10.QID));
      case AdminOpcode.ABORT:
        return this.abort(getField(cdw10, ABORT.CDW10.SQID), getField(cdw10, ABORT.CDW10.CID));
      default:
        return INVALID_OPCODE;
    }
  }

  private identify(nsid: number, cns: number, prp1: number, prp2: number): number {
    const { config: c, namespaces } = this.o;
    const b = this.idBuf;
    if (cns === Cns.CONTROLLER) {
      encodeIdentifyController(
        {
          vid: this.o.vendor,
          ssvid: this.o.vendor,
          serial: c.serial,
          model: c.model,
          firmware: c.firmware,
          mdts: c.mdts,
          cntlid: 0,
          version: VS_1_4_0,
          abortLimit: 4,
          // Required and maximum entry sizes are both the standard ones.
          sqes: (SQE_SIZE_LOG2 << 4) | SQE_SIZE_LOG2,
          cqes: (CQE_SIZE_LOG2 << 4) | CQE_SIZE_LOG2,
          nn: namespaces.length,
          oncs: ONCS.DSM.mask | ONCS.WRITE_ZEROES.mask,
          vwc: VWC.PRESENT.mask,
        },
        b,
      );
    } else if (cns === Cns.NAMESPACE) {
      const ns = namespaces[nsid - 1];
      if (nsid === 0 || nsid >= NSID_BROADCAST_MIN || ns === undefined) return INVALID_NS;
      const blocks = BigInt(ns.blocks);
      encodeIdentifyNamespace({ nsze: blocks, ncap: blocks, nuse: blocks, nlbaf: 0, flbas: 0, lbaf: [{ ms: 0, lbads: ns.blockShift, rp: 0 }] }, b);
    } else if (cns === Cns.ACTIVE_NAMESPACE_LIST) {
      if (nsid >= NSID_BROADCAST_MIN) return INVALID_NS;
      encodeNamespaceList(
        namespaces.map((n) => n.nsid),
        nsid,
        b,
      );
    } else {
      return INVALID_FIELD;
    }
    if (this.o.plan !== undefined && cns !== Cns.ACTIVE_NAMESPACE_LIST) this.o.plan.identify(cns === Cns.CONTROLLER, b);
    if (this.o.mutator !== undefined) this.o.mutator.identify(cns, b);
    const r = this.prp.walk(prp1, prp2, IDENTIFY_SIZE);
    if (r === PrpResult.BAD_OFFSET) return PRP_OFFSET;
    if (r === PrpResult.BAD_LIST) {
      this.o.stats.badPrpLists++;
      return INVALID_FIELD;
    }
    if (r !== PrpResult.OK || !this.prp.toHost(b, 0)) {
      this.o.stats.dataTransferErrors++;
      return TRANSFER;
    }
    return 0;
  }

  private setFeatures(fid: number, cdw11: number): number {
    if (fid === FeatureId.NUMBER_OF_QUEUES) {
      const nsqr = getField(cdw11, NUMBER_OF_QUEUES.NSQ);
      const ncqr = getField(cdw11, NUMBER_OF_QUEUES.NCQ);
      if (nsqr === NUMBER_OF_QUEUES.NSQ.max || ncqr === NUMBER_OF_QUEUES.NCQ.max) return INVALID_FIELD;
      // §5.21.1.7: only before any I/O queue is created (Command Sequence Error otherwise).
      if (this.ioQueuesCreated) return SEQUENCE;
      this.grantedQueues = Math.min(Math.max(nsqr, ncqr) + 1, this.o.config.maxIoQueues);
      this.dw0 = queueCounts(this.grantedQueues);
      return 0;
    }
    if (fid === FeatureId.VOLATILE_WRITE_CACHE) {
      this.volatileWriteCache = getField(cdw11, VOLATILE_WRITE_CACHE.WCE);
      return 0;
    }
    return INVALID_FIELD;
  }

  private getFeatures(fid: number): number {
    if (fid === FeatureId.NUMBER_OF_QUEUES) {
      this.dw0 = queueCounts(Math.max(1, this.grantedQueues || this.o.config.maxIoQueues));
      return 0;
    }
    if (fid === FeatureId.VOLATILE_WRITE_CACHE) {
      this.dw0 = this.volatileWriteCache;
      return 0;
    }
    return INVALID_FIELD;
  }

  /** An I/O queue id outside 1..granted (or 1..maxIoQueues before Number of Queues): Invalid Queue Identifier. */
  private badQueueId(qid: number): boolean {
    const limit = this.grantedQueues || this.o.config.maxIoQueues;
    return qid === 0 || qid > limit;
  }

  private queueProblem(qid: number, exists: boolean, size: number, base: number, contiguous: boolean): number {
    if (this.badQueueId(qid) || exists) return BAD_QID;
    if (size < 2 || size > this.o.config.maxQueueEntries) return BAD_QSIZE;
    if (!contiguous) return INVALID_FIELD; // CAP.CQR = 1
    if (base % QUEUE_BASE_ALIGN !== 0) return PRP_OFFSET;
    return 0;
  }

  private createCq(qid: number, size: number, base: number, cdw11: number): number {
    const q = this.o.queues;
    const bad = this.queueProblem(qid, q.cqs[qid] !== undefined, size, base, isSet(cdw11, CREATE_IO_CQ_CDW11.PC));
    if (bad !== 0) return bad;
    const ien = isSet(cdw11, CREATE_IO_CQ_CDW11.IEN);
    const iv = getField(cdw11, CREATE_IO_CQ_CDW11.IV);
    if (ien && iv >= this.o.config.msixVectors) return BAD_VECTOR;
    q.cqs[qid] = { id: qid, base, size, head: 0, tail: 0, phase: 1, ien, iv, posted: 0, sqs: 0 };
    this.ioQueuesCreated = true;
    return 0;
  }

  private createSq(qid: number, size: number, base: number, cdw11: number): number {
    const q = this.o.queues;
    const bad = this.queueProblem(qid, q.sqs[qid] !== undefined, size, base, isSet(cdw11, CREATE_IO_SQ_CDW11.PC));
    if (bad !== 0) return bad;
    const cq = q.cqs[getField(cdw11, CREATE_IO_SQ_CDW11.CQID)];
    if (cq === undefined || cq.id === 0) return BAD_CQ;
    cq.sqs++;
    q.sqs[qid] = { id: qid, base, size, head: 0, tail: 0, cq };
    this.ioQueuesCreated = true;
    return 0;
  }

  private deleteSq(qid: number): number {
    const q = this.o.queues;
    const sq = qid === 0 ? undefined : q.sqs[qid];
    if (sq === undefined) return BAD_QID;
    this.o.faults.dropQueue(qid);
    sq.cq.sqs--;
    q.sqs[qid] = undefined;
    return 0;
  }

  private deleteCq(qid: number): number {
    const q = this.o.queues;
    const cq = qid === 0 ? undefined : q.cqs[qid];
    if (cq === undefined) return BAD_QID;
    if (cq.sqs > 0) return BAD_DELETION;
    q.cqs[qid] = undefined;
    return 0;
  }

  /** Abort (§5.1): a held command completes with Command Abort Requested; DW0 bit 0 = 1 when none was aborted. */
  private abort(sqid: number, cid: number): number {
    const sq = this.o.queues.sqs[sqid];
    if (sq !== undefined && this.o.faults.release(sqid, cid)) {
      this.o.queues.complete(sq, cid, ABORTED, 0);
      this.dw0 = 0;
    } else {
      this.dw0 = setField(0, ABORT.DW0.NOT_ABORTED, 1);
    }
    return 0;
  }
}

/** Number of Queues completion dword 0: `n` SQs and `n` CQs allocated, 0's based (§5.21.1.7). */
function queueCounts(n: number): number {
  return setField(setField(0, NUMBER_OF_QUEUES.NSQ, n - 1), NUMBER_OF_QUEUES.NCQ, n - 1);
}
