/**
 * An I/O queue pair with its data buffers: the low-level, allocation-free I/O API.
 *
 * Each tracker slot owns one read buffer (device-WRITE-only window) and one write buffer
 * (device-READ-only window) of `bufferBytes`, and, when a buffer spans more than two memory
 * pages, two PRP lists (device-READ-only) prefilled at set-up with the IOVA of every page of the
 * slot's buffers (NVMe 1.4 §4.3: PRP1 carries the first page and its offset, PRP2 either the
 * second page or a pointer to a list of the following pages, all with offset 0). So no PRP is
 * built on the hot path: a transfer of any length up to the buffer, starting at any dword offset
 * in it, uses a prefix of the slot's list.
 *
 * Use: `acquire()` a slot (-1: queue full, wait), for a write fill `writeData(slot)`, then one of
 * the submit calls with a completion handler (a function kept per slot, not a closure per I/O),
 * `ring()` once per batch, and `poll()` (or let the controller poll / take the MSI-X vector).
 * The handler runs with the slot already free; a read's data is in `readData(slot)` until that
 * slot is submitted again.
 */
import type { DmaAllocator, DmaWindow, RegisterSpace } from '../contract/platform.js';
import { DEVICE_READS, DEVICE_WRITES } from '../contract/platform.js';
import { DSM, DSM_RANGE, MAX_BLOCKS_PER_COMMAND, NvmOpcode, RW_CDW12, WRITE_ZEROES_CDW12 } from '../../spec/nvme/commands.js';
import { PRP_ENTRY_BYTES } from '../../spec/nvme/prp.js';
import { memoryPageBytes } from '../../spec/nvme/registers.js';
import { QueuePair } from './queue.js';
import { NvmeArgumentError } from './errors.js';
import { fillPrp, PrpListSpace } from '../kit/prp.js';

/** Memory page size the driver programs (CC.MPS = 0: 4 KiB, §3.1.5). */
export const MEM_PAGE = memoryPageBytes(0);
const PAGE_SHIFT = Math.log2(MEM_PAGE);
/** The largest slot buffer: 2 MiB, so one list page (512 entries) covers any transfer in it, unaligned starts included. */
const MAX_BUFFER_BYTES = 2 * 1024 * 1024;
const TWO32 = 0x1_0000_0000;
const FUA = RW_CDW12.FUA.mask;
const DEAC = WRITE_ZEROES_CDW12.DEAC.mask;
const AD = DSM.CDW11.AD.mask;

export type SlotHandler = (slot: number, status: number, dw0: number) => void;

export interface IoQueueOptions {
  qid: number;
  entries: number;
  /** Bytes of data buffer per slot and direction (a multiple of 4 KiB, at most 2 MiB). */
  bufferBytes: number;
  dstrd: number;
  regs: RegisterSpace;
  dma: DmaAllocator;
  onProtocolError: (message: string) => void;
  label: string;
}

export class IoQueue {
  readonly qp: QueuePair;
  readonly qid: number;
  readonly bufferBytes: number;
  /** Completion handler for each busy slot. */
  private readonly handlers: (SlotHandler | null)[];
  private readonly readWin: DmaWindow;
  private readonly writeWin: DmaWindow;
  /** Two list pages per slot (read buffer, write buffer), prefilled; undefined when a buffer spans at most two pages. */
  private readonly lists: PrpListSpace | undefined;
  private readonly readViews: Uint8Array[];
  private readonly writeViews: Uint8Array[];
  /** Per slot: IOVA of the read buffer, write buffer, read list and write list (as numbers, < 2^53; a list 0 when there is none). */
  private readonly readIova: Float64Array;
  private readonly writeIova: Float64Array;
  private readonly readList: Float64Array;
  private readonly writeList: Float64Array;
  private readonly dma: DmaAllocator;
  /** PRP lists for caller windows (zero copy): one page per tracker slot, made on first use. */
  private zcLists: PrpListSpace | undefined;
  private readonly prpOut = new DataView(new ArrayBuffer(2 * PRP_ENTRY_BYTES));

  constructor(o: IoQueueOptions) {
    if (o.bufferBytes % MEM_PAGE !== 0 || o.bufferBytes <= 0 || o.bufferBytes > MAX_BUFFER_BYTES) {
      throw new NvmeArgumentError(`bufferBytes ${o.bufferBytes} is not a multiple of 4096 between 4096 and 2 MiB`, 'pass e.g. 65536');
    }
    this.qid = o.qid;
    this.bufferBytes = o.bufferBytes;
    this.dma = o.dma;
    this.qp = new QueuePair({
      qid: o.qid,
      entries: o.entries,
      dstrd: o.dstrd,
      regs: o.regs,
      dma: o.dma,
      label: o.label,
      onProtocolError: o.onProtocolError,
      onComplete: (slot, status, dw0) => this.complete(slot, status, dw0),
    });
    const n = this.qp.slots;
    const allocated: DmaWindow[] = [];
    try {
      // Least privilege per direction: read data is only written by the device, write data only read.
      this.readWin = o.dma.alloc(n * o.bufferBytes, DEVICE_WRITES, { align: MEM_PAGE, label: `${o.label} q${o.qid} read data` });
      allocated.push(this.readWin);
      this.writeWin = o.dma.alloc(n * o.bufferBytes, DEVICE_READS, { align: MEM_PAGE, label: `${o.label} q${o.qid} write data` });
      allocated.push(this.writeWin);
      // A list is needed only when a transfer can span more than two pages (§4.3): one list page
      // per slot and direction, which holds 512 entries, enough for a 2 MiB buffer with any start.
      const pages = o.bufferBytes / MEM_PAGE;
      if (pages > 2) {
        const w = o.dma.alloc(2 * n * MEM_PAGE, DEVICE_READS, { align: MEM_PAGE, label: `${o.label} q${o.qid} prp lists` });
        allocated.push(w);
        this.lists = new PrpListSpace(w, { pageSize: MEM_PAGE });
      }
    } catch (e) {
      for (const w of allocated) o.dma.free(w);
      this.qp.close();
      throw e;
    }
    this.handlers = new Array<SlotHandler | null>(n).fill(null);
    this.readViews = [];
    this.writeViews = [];
    this.readIova = new Float64Array(n);
    this.writeIova = new Float64Array(n);
    this.readList = new Float64Array(n);
    this.writeList = new Float64Array(n);
    const B = o.bufferBytes;
    for (let s = 0; s < n; s++) {
      this.readViews.push(this.readWin.bytes.subarray(s * B, (s + 1) * B));
      this.writeViews.push(this.writeWin.bytes.subarray(s * B, (s + 1) * B));
      this.readIova[s] = Number(this.readWin.iova) + s * B;
      this.writeIova[s] = Number(this.writeWin.iova) + s * B;
      if (this.lists) {
        // Each list describes the whole buffer: entry k is page k + 1 (page 0 is always in PRP1).
        // A transfer starting in page j uses the list from entry j (PRP2 = list + 8j); a buffer of
        // at most 2 MiB needs at most 511 entries, so a list never chains. No PRP is built per I/O.
        fillPrp(this.prpOut, 0, this.readWin, s * B, B, this.lists, 2 * s);
        fillPrp(this.prpOut, 0, this.writeWin, s * B, B, this.lists, 2 * s + 1);
        this.readList[s] = this.lists.slotIova(2 * s);
        this.writeList[s] = this.lists.slotIova(2 * s + 1);
      }
    }
  }

  get slots(): number {
    return this.qp.slots;
  }
  get inFlight(): number {
    return this.qp.inFlight;
  }

  acquire(): number {
    return this.qp.acquire();
  }
  release(slot: number): void {
    this.qp.release(slot);
  }
  /** The slot's read buffer (device writes it). */
  readData(slot: number): Uint8Array {
    return this.readViews[slot]!;
  }
  /** The slot's write buffer (device reads it). */
  writeData(slot: number): Uint8Array {
    return this.writeViews[slot]!;
  }

  /**
   * Read `blocks` logical blocks at `lba` into the slot's read buffer at byte `offset` (dword
   * aligned). `blockShift` is log2 of the block size.
   */
  read(slot: number, nsid: number, lba: number, blocks: number, blockShift: number, offset: number, done: SlotHandler): void {
    this.rw(slot, NvmOpcode.READ, nsid, lba, blocks, blockShift, offset, done, this.readIova, this.readList);
  }

  /** Write `blocks` blocks at `lba` from the slot's write buffer at byte `offset`. */
  /** `fua`: Force Unit Access (CDW12 bit 30, §6.15): durable when it completes, past any volatile cache. */
  write(slot: number, nsid: number, lba: number, blocks: number, blockShift: number, offset: number, done: SlotHandler, fua = false): void {
    this.rw(slot, NvmOpcode.WRITE, nsid, lba, blocks, blockShift, offset, done, this.writeIova, this.writeList, fua ? FUA : 0);
  }

  /** Flush (§6.8): commit the volatile write cache of the namespace. */
  flush(slot: number, nsid: number, done: SlotHandler): void {
    this.handlers[slot] = done;
    this.qp.submit(slot, NvmOpcode.FLUSH, nsid, 0, 0, 0, 0, 0, 0, 0, 0);
  }

  /** Write Zeroes (§6.17); `deallocate` sets DEAC (the blocks may be deallocated). */
  writeZeroes(slot: number, nsid: number, lba: number, blocks: number, deallocate: boolean, done: SlotHandler): void {
    checkNlb(blocks);
    this.handlers[slot] = done;
    const cdw12 = ((blocks - 1) | (deallocate ? DEAC : 0)) >>> 0;
    this.qp.submit(slot, NvmOpcode.WRITE_ZEROES, nsid, 0, 0, 0, 0, lba % TWO32, Math.floor(lba / TWO32), cdw12, 0);
  }

  /**
   * Dataset Management with Attribute Deallocate (§6.7): one range of `blocks` (< 2^32) at `lba`,
   * described in the slot's write buffer (the device reads the range list).
   */
  discard(slot: number, nsid: number, lba: number, blocks: number, done: SlotHandler): void {
    if (!Number.isInteger(blocks) || blocks < 1 || blocks > 0xffff_ffff) {
      throw new NvmeArgumentError(`discard of ${blocks} blocks: one range holds 1 to 2^32 - 1 blocks`);
    }
    const v = this.writeWin.view;
    const at = slot * this.bufferBytes;
    v.setUint32(at + DSM_RANGE.CATTR.offset, 0, true);
    v.setUint32(at + DSM_RANGE.NLB.offset, blocks, true);
    v.setUint32(at + DSM_RANGE.SLBA.offset, lba >>> 0, true);
    v.setUint32(at + DSM_RANGE.SLBA.offset + 4, hi32(lba), true);
    this.handlers[slot] = done;
    const a = this.writeIova[slot]!;
    // CDW10 NR = 0 (one range, 0's based); CDW11 AD.
    this.qp.submit(slot, NvmOpcode.DATASET_MANAGEMENT, nsid, a % TWO32, Math.floor(a / TWO32), 0, 0, 0, AD, 0, 0);
  }

  /**
   * Submit a raw NVM command with no data (for tests of error statuses and for vendor commands);
   * the slot's write buffer is PRP1.
   */
  raw(slot: number, opcode: number, nsid: number, cdw10: number, cdw11: number, cdw12: number, done: SlotHandler): void {
    this.handlers[slot] = done;
    const a = this.writeIova[slot]!;
    this.qp.submit(slot, opcode, nsid, a % TWO32, Math.floor(a / TWO32), 0, 0, cdw10, cdw11, cdw12, 0);
  }

  /** IOVA of the slot's read buffer (the device writes it). */
  readIovaOf(slot: number): bigint {
    return BigInt(this.readIova[slot]!);
  }
  /** IOVA of the slot's write buffer (the device reads it). */
  writeIovaOf(slot: number): bigint {
    return BigInt(this.writeIova[slot]!);
  }

  /**
   * Read or write with PRPs the caller chose: what a buggy or hostile driver would send. For
   * confinement tests (the IOMMU must stop it) and for callers with their own DMA windows.
   * `cdw12Flags`: RW_CDW12.FUA.mask (Force Unit Access, §6.15: the data is durable when the command completes)
   * or 0; the NLB field is ours.
   */
  rwWithPrps(slot: number, opcode: number, nsid: number, lba: number, blocks: number, prp1: bigint, prp2: bigint, done: SlotHandler, cdw12Flags = 0): void {
    checkRwFlags(cdw12Flags);
    checkNlb(blocks);
    this.handlers[slot] = done;
    this.qp.submitWithPrps(slot, opcode, nsid, prp1, prp2, lba % TWO32, Math.floor(lba / TWO32), ((blocks - 1) | cdw12Flags) >>> 0);
  }

  /**
   * As `rwWithPrps`, with the PRPs as numbers (IOVAs below 2^53): the path of callers that DMA
   * straight into windows of their own (Namespace.transferPrps), with no bigint per I/O.
   */
  rwPrps(slot: number, opcode: number, nsid: number, lba: number, blocks: number, prp1: number, prp2: number, done: SlotHandler, cdw12Flags = 0): void {
    checkRwFlags(cdw12Flags);
    checkNlb(blocks);
    this.handlers[slot] = done;
    this.qp.submit(slot, opcode, nsid, prp1 >>> 0, hi32(prp1), prp2 >>> 0, hi32(prp2), lba >>> 0, hi32(lba), ((blocks - 1) | cdw12Flags) >>> 0, 0);
  }

  /**
   * Zero copy: read into, or write from, a window of the caller's at `offset` (dword aligned).
   * The PRPs (and a PRP list when more than two pages are touched, §4.3) are built by
   * drivers/kit/prp.ts's fillPrp into this slot's page of a device-read-only list window. The window's
   * permission must match the direction (a read needs a device-writable window, a write a
   * device-readable one); `bytes` must not exceed the controller's MDTS (the caller splits).
   */
  rwWindow(
    slot: number,
    opcode: number,
    nsid: number,
    lba: number,
    blocks: number,
    blockShift: number,
    win: DmaWindow,
    offset: number,
    done: SlotHandler,
  ): void {
    checkNlb(blocks);
    const bytes = blocks << blockShift;
    const read = opcode === NvmOpcode.READ;
    if (read ? !win.perm.write : !win.perm.read) {
      throw new NvmeArgumentError(
        `${read ? 'read into' : 'write from'} a window the device may not ${read ? 'write' : 'read'}`,
        `allocate it with ${read ? 'DEVICE_WRITES' : 'DEVICE_READS'} (least privilege per direction)`,
      );
    }
    if ((offset & 3) !== 0) throw new NvmeArgumentError(`buffer offset ${offset} is not dword aligned (PRP1, §4.3)`);
    if (this.zcLists === undefined) {
      const w = this.dma.alloc(this.qp.slots * MEM_PAGE, DEVICE_READS, { align: MEM_PAGE, label: `nvme q${this.qid} prp lists (zero copy)` });
      this.zcLists = new PrpListSpace(w);
    }
    fillPrp(this.prpOut, 0, win, offset, bytes, this.zcLists, slot);
    const o = this.prpOut;
    this.handlers[slot] = done;
    this.qp.submit(
      slot,
      opcode,
      nsid,
      o.getUint32(0, true),
      o.getUint32(4, true),
      o.getUint32(8, true),
      o.getUint32(12, true),
      lba >>> 0,
      hi32(lba),
      blocks - 1,
      0,
    );
  }

  /** Ring the SQ doorbell once for the batch. */
  ring(): void {
    this.qp.ring();
  }

  /** Reap up to `max` completions; one CQ doorbell. */
  poll(max = 0x7fffffff): number {
    return this.qp.poll(max);
  }

  /** Give up on a slot (reset or close): its handler sees STATUS_ABANDONED. */
  abandon(slot: number): void {
    this.qp.abandon(slot);
  }

  close(): void {
    this.qp.close();
    this.dma.free(this.readWin);
    this.dma.free(this.writeWin);
    if (this.lists) this.dma.free(this.lists.window);
    if (this.zcLists) this.dma.free(this.zcLists.window);
  }

  private rw(
    slot: number,
    opcode: number,
    nsid: number,
    lba: number,
    blocks: number,
    blockShift: number,
    offset: number,
    done: SlotHandler,
    bufIova: Float64Array,
    lists: Float64Array,
    cdw12Flags = 0,
  ): void {
    checkNlb(blocks);
    const bytes = blocks << blockShift;
    if ((offset & 3) !== 0 || offset < 0 || offset + bytes > this.bufferBytes) {
      throw new NvmeArgumentError(
        `transfer of ${bytes} bytes at buffer offset ${offset} does not fit a ${this.bufferBytes}-byte slot buffer or is not dword aligned`,
        'split the transfer (the block API does) or open the controller with a larger bufferBytes',
      );
    }
    this.handlers[slot] = done;
    const p1 = bufIova[slot]! + offset;
    // Pages touched, from the page holding byte 0 to the page holding the last byte; PRP2 is then
    // unused, the second page, or the slot's prefilled list from the entry of that page (§4.3).
    const firstPage = offset >>> PAGE_SHIFT;
    const pages = ((offset + bytes - 1) >>> PAGE_SHIFT) - firstPage + 1;
    let p2 = 0;
    if (pages === 2) p2 = bufIova[slot]! + (firstPage + 1) * MEM_PAGE;
    else if (pages > 2) p2 = lists[slot]! + firstPage * PRP_ENTRY_BYTES;
    this.qp.submit(slot, opcode, nsid, p1 >>> 0, hi32(p1), p2 >>> 0, hi32(p2), lba >>> 0, hi32(lba), ((blocks - 1) | cdw12Flags) >>> 0, 0);
  }

  private complete(slot: number, status: number, dw0: number): void {
    const h = this.handlers[slot];
    this.handlers[slot] = null;
    if (h !== null && h !== undefined) h(slot, status, dw0);
  }
}

/** Bits 63:32 of an integer below 2^53 (`x >>> 0` gives bits 31:0): no float division on the hot path. */
function hi32(x: number): number {
  return (x - (x >>> 0)) / TWO32;
}

function checkRwFlags(cdw12Flags: number): void {
  if ((cdw12Flags & ~FUA) !== 0) throw new NvmeArgumentError(`CDW12 flags 0x${cdw12Flags.toString(16)}: only FUA (bit 30) is supported here`);
}

function checkNlb(blocks: number): void {
  if (!Number.isInteger(blocks) || blocks < 1 || blocks > MAX_BLOCKS_PER_COMMAND) {
    throw new NvmeArgumentError(`${blocks} blocks: one command moves 1 to 65536 blocks (NLB is 16 bits, 0's based)`);
  }
}
