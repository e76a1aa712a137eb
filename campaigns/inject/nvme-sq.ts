/**
 * What the injector must know of NVMe to corrupt work before the doorbell: where each submission
 * queue lives (ASQ, then the PRP1 of each Create I/O SQ command, §5.4) and which entry a tail
 * doorbell write submits (§3.1.24, §4.1). It reads only the driver's own windows.
 */
import type { DmaWindow } from '../../drivers/contract/platform.js';
import { AdminOpcode } from '../../spec/nvme/commands.js';
import { SQE } from '../../spec/nvme/queue.js';

const PAGE = 4096;

interface Queue {
  window: DmaWindow;
  offset: number;
  entries: number;
  tail: number;
}

export class NvmeQueues {
  /** Every window the driver allocated, by IOVA order of allocation. */
  readonly windows: DmaWindow[] = [];
  /** The first I/O completion queue's IOVA (a target inside the sandbox: the rings). */
  cqIova = 0;
  private asq = 0;
  private asqEntries = 2;
  private readonly sqs = new Map<number, Queue>();
  private lastCid = -1;

  constructor(private readonly dstrd: number) {}

  adminBase(lo: number, hi: number | undefined): void {
    this.asq = hi === undefined ? lo : lo + hi * 2 ** 32;
  }

  adminEntries(aqa: number): void {
    this.asqEntries = (aqa & 0xfff) + 1;
  }

  private locate(iova: number): { window: DmaWindow; offset: number } | undefined {
    for (const w of this.windows) {
      const start = Number(w.iova);
      if (iova >= start && iova < start + w.size) return { window: w, offset: iova - start };
    }
    return undefined;
  }

  /** A write at `offset` of BAR 0: the submission queue id whose tail doorbell it is, or -1. */
  sqOf(offset: number): number {
    if (offset < 0x1000) return -1;
    const step = 4 << this.dstrd;
    const idx = (offset - 0x1000) / step;
    return Number.isInteger(idx) && idx % 2 === 0 ? idx / 2 : -1;
  }

  private queue(qid: number): Queue | undefined {
    if (qid === 0 && !this.sqs.has(0) && this.asq !== 0) {
      const at = this.locate(this.asq);
      if (at) this.sqs.set(0, { ...at, entries: this.asqEntries, tail: 0 });
    }
    return this.sqs.get(qid);
  }

  /**
   * A tail doorbell of SQ `qid` moves to `tail`: the entries it submits are read (admin: I/O queues
   * being created), and the last one is returned as a view the caller may corrupt before the write
   * goes through.
   */
  submitted(qid: number, tail: number): { view: DataView; at: number; opcode: number } | undefined {
    const q = this.queue(qid);
    if (!q || tail >= q.entries) return undefined;
    let last: { view: DataView; at: number; opcode: number } | undefined;
    for (let i = q.tail; i !== tail; i = (i + 1) % q.entries) {
      const at = q.offset + i * SQE.size;
      const view = q.window.view;
      const opcode = view.getUint8(at);
      if (qid === 0) this.admin(view, at, opcode);
      last = { view, at, opcode };
    }
    q.tail = tail;
    return last;
  }

  private admin(view: DataView, at: number, opcode: number): void {
    const cdw10 = view.getUint32(at + SQE.CDW10.offset, true);
    const prp1 = Number(view.getBigUint64(at + SQE.PRP1.offset, true));
    if (opcode === AdminOpcode.CREATE_IO_SQ) {
      const where = this.locate(prp1);
      if (where) this.sqs.set(cdw10 & 0xffff, { ...where, entries: (cdw10 >>> 16) + 1, tail: 0 });
    } else if (opcode === AdminOpcode.CREATE_IO_CQ && this.cqIova === 0) {
      this.cqIova = prp1;
    }
  }

  /** The command id of the entry at `at`, and the one submitted before it on any queue (a stale id). */
  swapStaleCid(view: DataView, at: number): number {
    const cdw0 = view.getUint32(at, true);
    const cid = cdw0 >>> 16;
    const stale = this.lastCid >= 0 && this.lastCid !== cid ? this.lastCid : (cid + 1) & 0xffff;
    view.setUint32(at, ((cdw0 & 0xffff) | (stale << 16)) >>> 0, true);
    return stale;
  }

  noteCid(view: DataView, at: number): void {
    this.lastCid = view.getUint32(at, true) >>> 16;
  }

  /** A page-aligned IOVA past every window (nothing is mapped there). */
  unmapped(): number {
    let end = 0;
    for (const w of this.windows) end = Math.max(end, Number(w.iova) + w.size);
    return Math.ceil(end / PAGE) * PAGE + 64 * PAGE;
  }

  /** The IOVA of a window the device may only read, or 0. */
  readOnly(): number {
    const w = this.windows.find((x) => x.perm.read && !x.perm.write);
    return w ? Number(w.iova) : 0;
  }
}
