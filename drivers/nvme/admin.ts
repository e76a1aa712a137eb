/**
 * The admin queue (NVMe 1.4 §5): one queue pair, qid 0, whose commands are Promises, and the
 * admin commands the driver issues: Identify (§5.15), Set Features Number of Queues (§5.21.1.7),
 * Create and Delete I/O Completion and Submission Queues (§5.3 to §5.6), Abort (§5.1).
 *
 * The admin queue is reaped by the completion engine (engine.ts), which `kick` wakes; its timeouts
 * are the recovery's (recovery.ts). A command's Promise settles with its completion, or rejects
 * when the command is abandoned (reset, close) or the controller can no longer take commands.
 */
import type { Clock, DmaAllocator, DmaWindow, RegisterSpace } from '../contract/platform.js';
import { DEVICE_WRITES } from '../contract/platform.js';
import { getField, setField } from '../../spec/field.js';
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
} from '../../spec/nvme/commands.js';
import { IDENTIFY_SIZE } from '../../spec/nvme/identify.js';
import { QueuePair, STATUS_ABANDONED } from './queue.js';
import { NvmeControllerError, NvmeStatusError } from './errors.js';
import type { ControllerState } from './state.js';
import { MEM_PAGE } from './ioqueue.js';

/** A completed admin command: its 15-bit status (0 = success) and completion dword 0. */
export interface AdminResult {
  status: number;
  dw0: number;
}

interface Waiter {
  what: string;
  resolve: (r: AdminResult) => void;
  reject: (e: Error) => void;
}

export interface AdminQueueOptions {
  /** Admin queue entries (the caller caps them by CAP.MQES + 1). */
  entries: number;
  dstrd: number;
  regs: RegisterSpace;
  dma: DmaAllocator;
  clock: Clock;
  state: ControllerState;
  /** Make sure the completion engine runs (a command was submitted). */
  kick: () => void;
  /** Where protocol errors (unknown CIDs) go. */
  log: (message: string) => void;
}

export class AdminQueue {
  readonly qp: QueuePair;
  private readonly waiters: (Waiter | null)[] = [];
  private readonly state: ControllerState;
  private readonly kick: () => void;
  private readonly dma: DmaAllocator;
  /** Where Identify data lands (device-write-only). */
  private readonly identifyBuf: DmaWindow;

  constructor(o: AdminQueueOptions) {
    this.state = o.state;
    this.kick = o.kick;
    this.dma = o.dma;
    this.identifyBuf = o.dma.alloc(IDENTIFY_SIZE, DEVICE_WRITES, { align: MEM_PAGE, label: 'nvme identify' });
    try {
      this.qp = new QueuePair({
        qid: 0,
        entries: o.entries,
        dstrd: o.dstrd,
        regs: o.regs,
        dma: o.dma,
        label: 'nvme admin',
        onComplete: (slot, status, dw0) => this.complete(slot, status, dw0),
        onProtocolError: o.log,
      });
    } catch (e) {
      o.dma.free(this.identifyBuf);
      throw e;
    }
    this.qp.now = () => o.clock.now();
    for (let i = 0; i < this.qp.slots; i++) this.waiters.push(null);
  }

  /** What the command in `slot` is, for messages. */
  whatOf(slot: number): string {
    return this.waiters[slot]?.what ?? `admin slot ${slot}`;
  }

  /**
   * Issue an admin command and wait for its completion (bounded by the recovery's admin timeout).
   * Rejects with NvmeStatusError on a non-zero status.
   */
  async command(what: string, opcode: number, nsid: number, prp1: bigint, prp2: bigint, cdw10: number, cdw11: number, cdw12 = 0): Promise<{ dw0: number }> {
    const r = await this.raw(what, opcode, nsid, prp1, prp2, cdw10, cdw11, cdw12);
    if (r.status !== 0) throw new NvmeStatusError(what, r.status);
    return { dw0: r.dw0 };
  }

  /** As `command`, but resolves with the status instead of rejecting on it. */
  raw(what: string, opcode: number, nsid: number, prp1: bigint, prp2: bigint, cdw10: number, cdw11: number, cdw12 = 0): Promise<AdminResult> {
    const phase = this.state.phase;
    if (phase === 'failed' || phase === 'closed') {
      return Promise.reject(new NvmeControllerError(phase === 'closed' ? 'ERR_NVME_CLOSED' : 'ERR_NVME_FATAL', `${what}: the controller is ${phase}`));
    }
    const slot = this.qp.acquire();
    if (slot < 0) {
      return Promise.reject(
        new NvmeControllerError(
          'ERR_NVME_PROTOCOL',
          `${what}: the admin queue is full (${this.qp.slots} commands in flight)`,
          'wait for admin commands to complete before issuing more',
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.waiters[slot] = { what, resolve, reject };
      this.qp.submitWithPrps(slot, opcode, nsid, prp1, prp2, cdw10, cdw11, cdw12);
      this.qp.ring();
      this.kick();
    });
  }

  /** Identify (§5.15): the 4096-byte data structure `cns` names, copied out of the DMA buffer. */
  async identify(cns: number, nsid: number): Promise<Uint8Array> {
    this.identifyBuf.bytes.fill(0);
    await this.command(`Identify (CNS ${cns}, NSID ${nsid})`, AdminOpcode.IDENTIFY, nsid, this.identifyBuf.iova, 0n, setField(0, IDENTIFY_CDW10.CNS, cns), 0);
    return this.identifyBuf.bytes.slice(0, IDENTIFY_SIZE);
  }

  /** Identify Controller (CNS 01h). */
  identifyController(): Promise<Uint8Array> {
    return this.identify(Cns.CONTROLLER, 0);
  }

  /**
   * Set Features, Number of Queues (§5.21.1.7): ask for `wanted` I/O queue pairs; resolves with
   * how many the controller granted (the smaller of its SQ and CQ grants).
   */
  async setNumberOfQueues(wanted: number): Promise<number> {
    const ask = setField(setField(0, NUMBER_OF_QUEUES.NSQ, wanted - 1), NUMBER_OF_QUEUES.NCQ, wanted - 1);
    const r = await this.command(
      'Set Features (Number of Queues)',
      AdminOpcode.SET_FEATURES,
      0,
      0n,
      0n,
      setField(0, FEATURES_CDW10.FID, FeatureId.NUMBER_OF_QUEUES),
      ask,
    );
    return Math.min(getField(r.dw0, NUMBER_OF_QUEUES.NSQ), getField(r.dw0, NUMBER_OF_QUEUES.NCQ)) + 1;
  }

  /**
   * Create I/O CQ `qid` (§5.3), then the SQ bound to it (§5.4), both physically contiguous; the CQ
   * signals MSI-X vector `vector` when `interrupts`.
   */
  async createIoQueuePair(qp: QueuePair, vector: number, interrupts: boolean): Promise<void> {
    const q = qp.qid;
    const cdw10 = setField(setField(0, CREATE_IO_QUEUE_CDW10.QID, q), CREATE_IO_QUEUE_CDW10.QSIZE, qp.entries - 1);
    let cq = setField(setField(0, CREATE_IO_CQ_CDW11.PC, 1), CREATE_IO_CQ_CDW11.IV, vector);
    if (interrupts) cq = setField(cq, CREATE_IO_CQ_CDW11.IEN, 1);
    await this.command(`Create I/O CQ ${q}`, AdminOpcode.CREATE_IO_CQ, 0, qp.cq.iova, 0n, cdw10, cq);
    const sq = setField(setField(0, CREATE_IO_SQ_CDW11.PC, 1), CREATE_IO_SQ_CDW11.CQID, q);
    await this.command(`Create I/O SQ ${q}`, AdminOpcode.CREATE_IO_SQ, 0, qp.sq.iova, 0n, cdw10, sq);
  }

  /** Delete I/O SQ `qid` (§5.6), then its CQ (§5.5). */
  async deleteIoQueuePair(qid: number): Promise<void> {
    const cdw10 = setField(0, DELETE_IO_QUEUE_CDW10.QID, qid);
    await this.command(`Delete I/O SQ ${qid}`, AdminOpcode.DELETE_IO_SQ, 0, 0n, 0n, cdw10, 0);
    await this.command(`Delete I/O CQ ${qid}`, AdminOpcode.DELETE_IO_CQ, 0, 0n, 0n, cdw10, 0);
  }

  /** Abort (§5.1) command `cid` of SQ `sqid`; resolves with whether the controller aborted it. */
  async abort(sqid: number, cid: number): Promise<boolean> {
    const cdw10 = setField(setField(0, ABORT.CDW10.SQID, sqid), ABORT.CDW10.CID, cid);
    const r = await this.command(`Abort (SQ ${sqid}, CID ${cid})`, AdminOpcode.ABORT, 0, 0n, 0n, cdw10, 0);
    return getField(r.dw0, ABORT.DW0.NOT_ABORTED) === 0;
  }

  /** Reap completions; one CQ doorbell. */
  poll(): number {
    return this.qp.poll(0x7fffffff);
  }

  /** Give up on every command in flight: each rejects with the state's abandon error. */
  abandonAll(): void {
    for (let s = 0; s < this.qp.slots; s++) this.qp.abandon(s);
  }

  /** Release the queue and the Identify buffer. The controller must be disabled. */
  close(): void {
    this.qp.close();
    this.dma.free(this.identifyBuf);
  }

  private complete(slot: number, status: number, dw0: number): void {
    const w = this.waiters[slot];
    this.waiters[slot] = null;
    if (!w) return;
    if (status === STATUS_ABANDONED) w.reject(this.state.abandoned(w.what));
    else w.resolve({ status, dw0 });
  }
}
