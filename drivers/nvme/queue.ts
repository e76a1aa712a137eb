/**
 * One NVMe queue pair: a submission queue the device reads and a completion queue it writes
 * (NVMe 1.4 §4.1 "Submission Queue & Completion Queue Definition"), plus the CID tracker table.
 *
 * The hot path allocates nothing: commands are written as dwords into the SQ's Uint32Array; the
 * tracker is typed arrays indexed by slot; a command's CID is its slot number with a small
 * generation counter in the high bits, so a stale or forged CID in a completion is recognised as
 * unknown (counted, logged, never trusted: it completes nothing).
 *
 * Submission (§4.1.1/§7.2.1 style): copy the command to sq[tail], advance tail modulo the size,
 * and ring the SQ tail doorbell once per batch (`ring`). Completion (§4.6, §7.2.2): an entry is
 * new when its Phase Tag equals the phase we expect; read the phase first, then the entry; flip
 * the expected phase each time the head wraps; ring the CQ head doorbell once per batch.
 */
import type { DmaAllocator, DmaWindow, RegisterSpace } from '../contract/platform.js';
import { DEVICE_READS, DEVICE_WRITES } from '../contract/platform.js';
import { CQE, CQE_DW2, CQE_DW3, dword, LITTLE_ENDIAN_HOST, SQE, SQE_CDW0 } from '../../spec/nvme/queue.js';
import { cqHeadDoorbell, QUEUE_BASE_ALIGN, sqTailDoorbell } from '../../spec/nvme/registers.js';
import { GenericSc, Sct, STATUS, statusOf } from '../../spec/nvme/status.js';
import { FreeIndexStack } from '../kit/free-stack.js';
import { NvmeArgumentError, NvmeControllerError } from './errors.js';

/** Receives every completion of a queue: the slot it belongs to, the 15-bit status, and DW0. */
export type CompletionHandler = (slot: number, status: number, dw0: number) => void;

/**
 * The status a handler receives for a command the driver gave up on (timeout, reset, close): out
 * of the 15-bit range of real statuses, so it can never be confused with one the device sent.
 */
export const STATUS_ABANDONED = 0x10000;
/**
 * The status a handler receives for a command that completed only because the driver aborted it
 * after a timeout (the device answered Command Abort Requested, §5.1): the I/O timed out.
 */
export const STATUS_TIMED_OUT = 0x10001;
/** Command Abort Requested (SCT 0, SC 07h), compared on its type and code only. */
const ABORTED_BY_REQUEST = statusOf(Sct.GENERIC, GenericSc.ABORTED_BY_REQUEST);
const TYPE_AND_CODE = STATUS.SCT.mask | STATUS.SC.mask;

/** Hot-path constants from the spec's declarations: dword indices and field positions. */
const SQE_DWORDS_LOG2 = Math.log2(SQE.size / 4);
const CQE_DWORDS_LOG2 = Math.log2(CQE.size / 4);
const SQ_CDW0 = dword(SQE.CDW0);
const SQ_NSID = dword(SQE.NSID);
const SQ_CDW2 = dword(SQE.CDW2);
const SQ_CDW3 = dword(SQE.CDW3);
const SQ_MPTR = dword(SQE.MPTR);
const SQ_PRP1 = dword(SQE.PRP1);
const SQ_PRP2 = dword(SQE.PRP2);
const SQ_CDW10 = dword(SQE.CDW10);
const SQ_CDW11 = dword(SQE.CDW11);
const SQ_CDW12 = dword(SQE.CDW12);
const SQ_CDW13 = dword(SQE.CDW13);
const SQ_CDW14 = dword(SQE.CDW14);
const SQ_CDW15 = dword(SQE.CDW15);
const CID_LO = SQE_CDW0.CID.lo;
const OPC_MASK = SQE_CDW0.OPC.mask;
const CID_MAX = SQE_CDW0.CID.max;
const CID_BITS = SQE_CDW0.CID.bits;
const CQ_DW0 = dword(CQE.DW0);
const CQ_DW2 = dword(CQE.DW2);
const CQ_DW3 = dword(CQE.DW3);
const P_LO = CQE_DW3.P.lo;
const STATUS_LO = CQE_DW3.STATUS.lo;
const STATUS_MAX = CQE_DW3.STATUS.max;
const CID_MASK = CQE_DW3.CID.mask;
const SQHD_MASK = CQE_DW2.SQHD.mask;
const SQID_LO = CQE_DW2.SQID.lo;
const BIG_TWO32 = 0x1_0000_0000n;

/** Tracker slot states. */
const FREE = 0;
const BUSY = 1;

export interface QueuePairOptions {
  qid: number;
  /** Entries per queue (both SQ and CQ); the SQ holds at most entries - 1 commands (§4.1.1). */
  entries: number;
  dstrd: number;
  regs: RegisterSpace;
  dma: DmaAllocator;
  onComplete: CompletionHandler;
  /** Called with a description when a completion names a CID we did not issue. */
  onProtocolError: (message: string) => void;
  /** What the queue's DMA windows are named after (`nvme admin`, `nvme`). */
  label: string;
}

export class QueuePair {
  readonly qid: number;
  readonly entries: number;
  /** Commands that can be outstanding at once: entries - 1 (a full SQ has tail + 1 == head). */
  readonly slots: number;
  readonly sq: DmaWindow;
  readonly cq: DmaWindow;
  /** Monotonic submit time (ms) of each busy slot, for timeouts. */
  readonly startedAt: Float64Array;
  /** Opcode of each busy slot (for messages and Abort decisions). */
  readonly opcodeOf: Uint8Array;
  /** Timeout escalation stage of each busy slot (0 on submit; the controller moves it on). */
  readonly stage: Uint8Array;
  /** Completions whose CID matched no outstanding command. */
  unknownCids = 0;
  /** Commands currently outstanding. */
  inFlight = 0;

  private readonly sq32: Uint32Array;
  private readonly cq32: Uint32Array;
  private readonly regs: RegisterSpace;
  private readonly dma: DmaAllocator;
  private readonly sqDoorbell: number;
  private readonly cqDoorbell: number;
  private readonly onComplete: CompletionHandler;
  private readonly onProtocolError: (message: string) => void;
  private readonly state: Uint8Array;
  private readonly gen: Uint8Array;
  /** Tracker slots not acquired. */
  private readonly freeSlots: FreeIndexStack;
  private readonly slotBits: number;
  private readonly slotMask: number;
  private sqTail = 0;
  /** The device's SQ head as last reported in a completion (SQHD). */
  private sqHead = 0;
  private cqHead = 0;
  private phase = 1;
  /** Entries written since the last SQ doorbell, and their slots (stamped with the time at the ring). */
  private unrung = 0;
  private readonly unrungSlots: Uint16Array;
  /** The clock for submit times: read once per doorbell, not once per command. */
  now: () => number = () => performance.now();
  private closed = false;

  constructor(o: QueuePairOptions) {
    if (!Number.isInteger(o.entries) || o.entries < 2 || o.entries > 4096) {
      throw new NvmeArgumentError(`queue ${o.qid}: ${o.entries} entries is outside 2..4096`, 'ask for 2 to 4096 queue entries');
    }
    if (!LITTLE_ENDIAN_HOST) {
      throw new NvmeControllerError(
        'ERR_NVME_UNSUPPORTED',
        `queue ${o.qid}: this host is big-endian; queue entries are written as host-order dwords`,
        'run the driver on a little-endian host (x86-64, arm64)',
      );
    }
    this.qid = o.qid;
    this.entries = o.entries;
    this.slots = o.entries - 1;
    this.regs = o.regs;
    this.dma = o.dma;
    this.onComplete = o.onComplete;
    this.onProtocolError = o.onProtocolError;
    this.sqDoorbell = sqTailDoorbell(o.qid, o.dstrd);
    this.cqDoorbell = cqHeadDoorbell(o.qid, o.dstrd);
    // Least privilege (§4.1): the device only reads the SQ and only writes the CQ.
    this.sq = o.dma.alloc(o.entries * SQE.size, DEVICE_READS, { align: QUEUE_BASE_ALIGN, label: `${o.label} sq${o.qid}` });
    try {
      this.cq = o.dma.alloc(o.entries * CQE.size, DEVICE_WRITES, { align: QUEUE_BASE_ALIGN, label: `${o.label} cq${o.qid}` });
    } catch (e) {
      o.dma.free(this.sq);
      throw e;
    }
    this.sq32 = new Uint32Array(this.sq.bytes.buffer, this.sq.bytes.byteOffset, (o.entries * SQE.size) >>> 2);
    this.cq32 = new Uint32Array(this.cq.bytes.buffer, this.cq.bytes.byteOffset, (o.entries * CQE.size) >>> 2);
    this.cq32.fill(0);
    this.startedAt = new Float64Array(this.slots);
    this.opcodeOf = new Uint8Array(this.slots);
    this.stage = new Uint8Array(this.slots);
    this.state = new Uint8Array(this.slots);
    this.gen = new Uint8Array(this.slots);
    this.slotBits = Math.max(1, Math.ceil(Math.log2(this.slots)));
    this.slotMask = (1 << this.slotBits) - 1;
    this.unrungSlots = new Uint16Array(this.slots);
    this.freeSlots = new FreeIndexStack(this.slots, `queue ${o.qid} slot`);
  }

  /** Free tracker slots (commands that may still be submitted). */
  get available(): number {
    return this.freeSlots.available;
  }

  /** Take a tracker slot, or -1 when the queue is full (the caller should wait, not fail). */
  acquire(): number {
    if (this.closed) return -1;
    return this.freeSlots.take();
  }

  /** Return a slot that was acquired but never submitted. */
  release(slot: number): void {
    if (this.state[slot] !== FREE) {
      throw new NvmeArgumentError(
        `queue ${this.qid}: slot ${slot} is in flight`,
        'release only a slot you acquired and did not submit; a submitted slot frees itself on completion',
      );
    }
    this.freeSlots.give(slot);
  }

  /** The CID the next submission of `slot` carries (16 bits: generation above the slot number). */
  cidOf(slot: number): number {
    return ((this.gen[slot]! << this.slotBits) | slot) & CID_MAX;
  }

  /**
   * Write a command into the next SQ entry for `slot` (acquired before). Dwords not given are
   * zero. PRPs are given as two 32-bit halves each so nothing is converted to bigint here.
   * The doorbell is not rung: call `ring()` once per batch.
   */
  submit(
    slot: number,
    opcode: number,
    nsid: number,
    prp1Lo: number,
    prp1Hi: number,
    prp2Lo: number,
    prp2Hi: number,
    cdw10: number,
    cdw11: number,
    cdw12: number,
    cdw13: number,
  ): void {
    const base = this.sqTail << SQE_DWORDS_LOG2;
    const q = this.sq32;
    q[base + SQ_CDW0] = ((this.cidOf(slot) << CID_LO) | (opcode & OPC_MASK)) >>> 0;
    q[base + SQ_NSID] = nsid;
    q[base + SQ_CDW2] = 0;
    q[base + SQ_CDW3] = 0;
    q[base + SQ_MPTR] = 0;
    q[base + SQ_MPTR + 1] = 0;
    q[base + SQ_PRP1] = prp1Lo;
    q[base + SQ_PRP1 + 1] = prp1Hi;
    q[base + SQ_PRP2] = prp2Lo;
    q[base + SQ_PRP2 + 1] = prp2Hi;
    q[base + SQ_CDW10] = cdw10;
    q[base + SQ_CDW11] = cdw11;
    q[base + SQ_CDW12] = cdw12;
    q[base + SQ_CDW13] = cdw13;
    q[base + SQ_CDW14] = 0;
    q[base + SQ_CDW15] = 0;
    this.state[slot] = BUSY;
    this.startedAt[slot] = Infinity; // not announced yet: no timeout runs until ring()
    this.opcodeOf[slot] = opcode;
    this.stage[slot] = 0;
    this.inFlight++;
    this.unrungSlots[this.unrung++] = slot;
    if (++this.sqTail === this.entries) this.sqTail = 0;
  }

  /**
   * `submit` with the PRPs as 64-bit bigints (admin commands, caller-chosen PRPs: not the hot
   * path). `cdw10..12` are taken as unsigned 32-bit values.
   */
  submitWithPrps(slot: number, opcode: number, nsid: number, prp1: bigint, prp2: bigint, cdw10: number, cdw11: number, cdw12: number): void {
    this.submit(
      slot,
      opcode,
      nsid,
      Number(prp1 % BIG_TWO32),
      Number(prp1 / BIG_TWO32),
      Number(prp2 % BIG_TWO32),
      Number(prp2 / BIG_TWO32),
      cdw10 >>> 0,
      cdw11 >>> 0,
      cdw12 >>> 0,
      0,
    );
  }

  /** Commands written but not yet announced to the device. */
  get pending(): number {
    return this.unrung;
  }

  /** Ring the SQ tail doorbell once for everything submitted since the last ring (§3.1.24). */
  ring(): void {
    if (this.unrung === 0 || this.closed) return;
    // A command's timeout runs from the doorbell that announced it.
    const t = this.now();
    for (let i = 0; i < this.unrung; i++) this.startedAt[this.unrungSlots[i]!] = t;
    this.unrung = 0;
    this.regs.write32(this.sqDoorbell, this.sqTail);
  }

  /**
   * Consume up to `max` new completions, calling the handler for each, and ring the CQ head
   * doorbell once if any were consumed (§3.1.25). Returns how many were consumed.
   */
  poll(max: number): number {
    if (this.closed) return 0;
    const q = this.cq32;
    let n = 0;
    while (n < max) {
      const i = this.cqHead << CQE_DWORDS_LOG2;
      // The Phase Tag first (§4.6: a new entry has P equal to the current phase), then the rest.
      const dw3 = q[i + CQ_DW3]!;
      if (((dw3 >>> P_LO) & 1) !== this.phase) break;
      const dw0 = q[i + CQ_DW0]!;
      const dw2 = q[i + CQ_DW2]!;
      if (++this.cqHead === this.entries) {
        this.cqHead = 0;
        this.phase ^= 1;
      }
      n++;
      this.sqHead = dw2 & SQHD_MASK;
      const cid = dw3 & CID_MASK;
      const slot = cid & this.slotMask;
      let status = (dw3 >>> STATUS_LO) & STATUS_MAX;
      if (slot >= this.slots || this.state[slot] !== BUSY || this.cidOf(slot) !== cid || dw2 >>> SQID_LO !== this.qid) {
        this.unknownCids++;
        this.onProtocolError(`queue ${this.qid}: completion for CID ${cid} (SQID ${dw2 >>> SQID_LO}) matches no command in flight; ignored`);
        continue;
      }
      if (this.stage[slot] !== 0 && (status & TYPE_AND_CODE) === ABORTED_BY_REQUEST) status = STATUS_TIMED_OUT;
      this.finish(slot);
      this.onComplete(slot, status, dw0);
    }
    if (n > 0) this.regs.write32(this.cqDoorbell, this.cqHead);
    return n;
  }

  /**
   * Give up on a slot without a completion (after a reset or on close): its handler sees
   * STATUS_ABANDONED. Its generation moves on, so a late completion with the old CID is
   * recognised as unknown.
   */
  abandon(slot: number): void {
    if (this.state[slot] !== BUSY) return;
    this.finish(slot);
    this.onComplete(slot, STATUS_ABANDONED, 0);
  }

  /**
   * Forget the ring positions after the controller was disabled (CC.EN = 0 deletes every queue,
   * §7.3.2), so the queue can be created again at entry 0 with phase 1. Every slot must have been
   * abandoned first.
   */
  resetRing(): void {
    if (this.inFlight !== 0) {
      throw new NvmeControllerError(
        'ERR_NVME_PROTOCOL',
        `queue ${this.qid}: ring reset with ${this.inFlight} command(s) in flight`,
        'abandon every command before resetting the ring',
      );
    }
    this.sqTail = 0;
    this.sqHead = 0;
    this.cqHead = 0;
    this.phase = 1;
    this.unrung = 0;
    this.startedAt.fill(0);
    this.cq32.fill(0);
  }

  /** The SQ head the device last reported (SQHD), for diagnostics. */
  get deviceSqHead(): number {
    return this.sqHead;
  }

  /** Slot numbers of every command in flight, oldest first by submit time (cold path). */
  busySlots(): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.slots; s++) if (this.state[s] === BUSY) out.push(s);
    return out.sort((a, b) => this.startedAt[a]! - this.startedAt[b]!);
  }

  isBusy(slot: number): boolean {
    return this.state[slot] === BUSY;
  }

  /** Release the queue memory. The device must no longer use it (queue deleted or controller disabled). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dma.free(this.sq);
    this.dma.free(this.cq);
  }

  private finish(slot: number): void {
    this.state[slot] = FREE;
    this.gen[slot] = (this.gen[slot]! + 1) & ((1 << (CID_BITS - this.slotBits)) - 1);
    this.inFlight--;
    this.freeSlots.give(slot);
  }
}
