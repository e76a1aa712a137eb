/**
 * The block API of one namespace: read, write, flush, write zeroes and discard as Promises, many
 * in flight across the I/O queues. Transfers larger than the controller's limit (MDTS, §5.15.2.2,
 * and the slot buffer size) are split into several commands issued together. Data is copied
 * between the caller's arrays and the slot buffers (the DMA windows); for zero-copy use the
 * low-level IoQueue API.
 *
 * LBAs are `number`s (exact below 2^53 blocks, far beyond any namespace); sizes come from
 * Identify Namespace (§5.15.2.1: NSZE, FLBAS, LBAF).
 */
import type { DmaWindow } from '../contract/platform.js';
import type { IdentifyNamespace } from '../../spec/nvme/identify.js';
import { MAX_BLOCKS_PER_COMMAND, NvmOpcode, RW_CDW12 } from '../../spec/nvme/commands.js';
import type { NamespaceHost, PostCommand } from './dispatch.js';
import { NvmeArgumentError } from './errors.js';

const FUA = RW_CDW12.FUA.mask;
/** One Dataset Management range names at most 2^32 - 1 blocks (its NLB is 32 bits, §6.7). */
const MAX_DISCARD_BLOCKS = 0xffff_ffff;

export class Namespace {
  readonly nsid: number;
  readonly info: IdentifyNamespace;
  readonly blockSize: number;
  readonly blockShift: number;
  /** NSZE in blocks. */
  readonly blockCount: number;
  /** What the namespace may ask of its controller: limits, and running one command. */
  private readonly host: NamespaceHost;

  constructor(host: NamespaceHost, nsid: number, info: IdentifyNamespace) {
    this.host = host;
    this.nsid = nsid;
    this.info = info;
    this.blockSize = info.blockSize;
    this.blockShift = Math.log2(info.blockSize);
    if (info.nsze > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new NvmeArgumentError(`namespace ${nsid}: NSZE ${info.nsze} blocks is beyond 2^53`);
    }
    this.blockCount = Number(info.nsze);
  }

  get bytes(): number {
    return this.blockCount * this.blockSize;
  }

  /** Blocks one command may move. */
  get maxBlocksPerCommand(): number {
    return Math.min(MAX_BLOCKS_PER_COMMAND, Math.floor(this.host.maxTransferBytes / this.blockSize));
  }

  /** Read `blocks` blocks at `lba`. `bufferOffset` (dword aligned) places the data at an offset in the DMA buffer (tests unaligned PRP1). */
  async read(lba: number, blocks: number, options: { bufferOffset?: number } = {}): Promise<Uint8Array> {
    this.checkRange('read', lba, blocks);
    const out = new Uint8Array(blocks * this.blockSize);
    await this.readSlots(lba, blocks, out, options.bufferOffset ?? 0);
    return out;
  }

  /**
   * Read `blocks` blocks at `lba` into `into` (at least `blocks * blockSize` bytes): each command's
   * data is copied from its slot buffer straight into the caller's array, with no array of its own
   * and, for a read one command carries, no split (what a block server needs per request).
   */
  readTo(lba: number, blocks: number, into: Uint8Array): Promise<void> {
    try {
      this.checkRange('read', lba, blocks);
      if (into.length < blocks * this.blockSize) {
        throw new NvmeArgumentError(
          `read of ${blocks} block(s) into ${into.length} bytes: the array is too small`,
          'pass an array of blocks * blockSize bytes',
        );
      }
      return this.readSlots(lba, blocks, into, 0);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private readSlots(lba: number, blocks: number, out: Uint8Array, off: number): Promise<void> {
    const per = this.perCommand(off);
    const one = (done: number, n: number): Promise<void> =>
      this.host.execute(
        () => this.describe('read', lba + done, n),
        (q, slot, h) => q.read(slot, this.nsid, lba + done, n, this.blockShift, off, h),
        (q, slot) => out.set(q.readData(slot).subarray(off, off + (n << this.blockShift)), done << this.blockShift),
      );
    return blocks <= per ? one(0, blocks) : this.split(blocks, per, one);
  }

  /** Write `data` (a whole number of blocks) at `lba`; `fua`: each command with Force Unit Access (§6.15). */
  write(lba: number, data: Uint8Array, options: { bufferOffset?: number; fua?: boolean } = {}): Promise<void> {
    if (data.length === 0 || data.length % this.blockSize !== 0) {
      return Promise.reject(
        new NvmeArgumentError(`write of ${data.length} bytes: not a whole number of ${this.blockSize}-byte blocks`, 'pad the data to the block size'),
      );
    }
    const blocks = data.length / this.blockSize;
    try {
      this.checkRange('write', lba, blocks);
    } catch (e) {
      return Promise.reject(e);
    }
    const off = options.bufferOffset ?? 0;
    const fua = options.fua === true;
    let per: number;
    try {
      per = this.perCommand(off);
    } catch (e) {
      return Promise.reject(e);
    }
    const one = (done: number, n: number): Promise<void> =>
      this.host.execute(
        () => this.describe('write', lba + done, n),
        (q, slot, h) => {
          q.writeData(slot).set(data.subarray(done << this.blockShift, (done + n) << this.blockShift), off);
          q.write(slot, this.nsid, lba + done, n, this.blockShift, off, h, fua);
        },
      );
    // One command: no split (no array of parts, no Promise.all).
    return blocks <= per ? one(0, blocks) : this.split(blocks, per, one);
  }

  /**
   * Zero copy: read `blocks` blocks at `lba` straight into `win` at `offset` (a window the device
   * may write), split at MDTS. Nothing is copied by the driver.
   */
  async readInto(lba: number, blocks: number, win: DmaWindow, offset = 0): Promise<void> {
    await this.zeroCopy(NvmOpcode.READ, lba, blocks, win, offset);
  }

  /** Zero copy: write `blocks` blocks at `lba` straight from `win` at `offset` (a window the device may read). */
  async writeFrom(lba: number, blocks: number, win: DmaWindow, offset = 0): Promise<void> {
    await this.zeroCopy(NvmOpcode.WRITE, lba, blocks, win, offset);
  }

  private async zeroCopy(opcode: typeof NvmOpcode.READ | typeof NvmOpcode.WRITE, lba: number, blocks: number, win: DmaWindow, offset: number): Promise<void> {
    const what = opcode === NvmOpcode.READ ? 'read' : 'write';
    this.checkRange(what, lba, blocks);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + blocks * this.blockSize > win.size) {
      throw new NvmeArgumentError(`${what} of ${blocks} blocks at window offset ${offset}: beyond the ${win.size}-byte window`);
    }
    await this.split(blocks, this.maxBlocksOverCallerMemory, (done, n) => {
      const off = offset + (done << this.blockShift);
      return this.host.execute(
        () => `${this.describe(what, lba + done, n)} (zero copy)`,
        (q, slot, h) => q.rwWindow(slot, opcode, this.nsid, lba + done, n, this.blockShift, win, off, h),
      );
    });
  }

  /** Flush the volatile write cache (§6.8). */
  async flush(): Promise<void> {
    await this.host.execute(
      () => `namespace ${this.nsid}: flush`,
      (q, slot, h) => q.flush(slot, this.nsid, h),
    );
  }

  /** Write Zeroes (§6.17) over `blocks` blocks at `lba`, split at 65536 blocks per command. */
  async writeZeroes(lba: number, blocks: number, options: { deallocate?: boolean } = {}): Promise<void> {
    this.checkRange('write zeroes', lba, blocks);
    await this.split(blocks, MAX_BLOCKS_PER_COMMAND, (done, n) =>
      this.host.execute(
        () => this.describe('write zeroes', lba + done, n),
        (q, slot, h) => q.writeZeroes(slot, this.nsid, lba + done, n, options.deallocate ?? false, h),
      ),
    );
  }

  /** Deallocate `blocks` blocks at `lba` (Dataset Management, AD, §6.7); reads of them then return zeroes on this project's model. */
  async discard(lba: number, blocks: number): Promise<void> {
    this.checkRange('discard', lba, blocks);
    await this.split(blocks, MAX_DISCARD_BLOCKS, (done, n) =>
      this.host.execute(
        () => this.describe('discard', lba + done, n),
        (q, slot, h) => q.discard(slot, this.nsid, lba + done, n, h),
      ),
    );
  }

  /**
   * A raw NVM command without range checks, resolving with the 15-bit status (0 = success):
   * for tests of the controller's error handling.
   */
  async rawStatus(opcode: number, cdw10: number, cdw11: number, cdw12: number, nsid = this.nsid): Promise<number> {
    return this.host.executeForStatus(
      () => `namespace ${this.nsid}: opcode 0x${opcode.toString(16)}`,
      (q, slot, h) => q.raw(slot, opcode, nsid, cdw10, cdw11, cdw12, h),
    );
  }

  /** Raw read/write (no range checks), for tests: resolves with the status. */
  async rawRw(opcode: typeof NvmOpcode.READ | typeof NvmOpcode.WRITE, lba: number, blocks: number): Promise<number> {
    const post: PostCommand =
      opcode === NvmOpcode.READ
        ? (q, slot, h) => q.read(slot, this.nsid, lba, blocks, this.blockShift, 0, h)
        : (q, slot, h) => q.write(slot, this.nsid, lba, blocks, this.blockShift, 0, h);
    return this.host.executeForStatus(() => this.describe('raw rw', lba, blocks), post);
  }

  /**
   * Read or write `blocks` at `lba` with PRPs the caller built (§4.3) over memory of its own that
   * the device may reach (a DMA window): for data paths that DMA straight into shared buffers (the
   * sandbox's block ring). One command: at most MDTS (`controller.mdtsBytes`). `fua` sets Force
   * Unit Access on a write (§6.15). When a slot is free this is one Promise and no async frame.
   */
  transferPrps(opcode: typeof NvmOpcode.READ | typeof NvmOpcode.WRITE, lba: number, blocks: number, prp1: number, prp2: number, fua = false): Promise<void> {
    const read = opcode === NvmOpcode.READ;
    try {
      this.checkRange(read ? 'read' : 'write', lba, blocks);
      // The caller's memory, not a slot buffer: bounded by MDTS (and NLB's 16 bits) only.
      const max = this.maxBlocksOverCallerMemory;
      if (blocks > max) throw new NvmeArgumentError(`${blocks} blocks in one command: at most ${max} (MDTS)`, 'split the transfer');
    } catch (e) {
      return Promise.reject(e);
    }
    const flags = fua && !read ? FUA : 0;
    return this.host.execute(
      () => this.describe(read ? 'read' : 'write', lba, blocks),
      (q, slot, h) => q.rwPrps(slot, opcode, this.nsid, lba, blocks, prp1, prp2, h, flags),
    );
  }

  /** Blocks one command may move over the caller's own memory (MDTS and NLB's 16 bits). */
  private get maxBlocksOverCallerMemory(): number {
    return Math.min(MAX_BLOCKS_PER_COMMAND, Math.floor(this.host.mdtsBytes / this.blockSize));
  }

  /** Issue one command per piece of at most `per` blocks, all in flight together; `command(done, n)` is the piece `done` blocks in. */
  private async split(blocks: number, per: number, command: (done: number, n: number) => Promise<void>): Promise<void> {
    const parts: Promise<void>[] = [];
    for (let done = 0; done < blocks; done += per) parts.push(command(done, Math.min(per, blocks - done)));
    await Promise.all(parts);
  }

  /** `namespace 1: read of 8 blocks at LBA 0`, for error messages. */
  private describe(what: string, lba: number, blocks: number): string {
    return `namespace ${this.nsid}: ${what} of ${blocks} block(s) at LBA ${lba}`;
  }

  private perCommand(offset: number): number {
    if ((offset & 3) !== 0 || offset < 0 || offset >= this.host.maxTransferBytes) {
      throw new NvmeArgumentError(`buffer offset ${offset} must be dword aligned and below ${this.host.maxTransferBytes}`);
    }
    // With an offset the transfer must still end inside the slot buffer.
    const n = Math.min(this.maxBlocksPerCommand, Math.floor((this.host.maxTransferBytes - offset) / this.blockSize));
    if (n < 1) throw new NvmeArgumentError(`buffer offset ${offset} leaves no room for a ${this.blockSize}-byte block`);
    return n;
  }

  private checkRange(what: string, lba: number, blocks: number): void {
    if (!Number.isSafeInteger(lba) || lba < 0 || !Number.isSafeInteger(blocks) || blocks < 1 || lba + blocks > this.blockCount) {
      throw new NvmeArgumentError(
        `${what} of ${blocks} block(s) at LBA ${lba}: outside namespace ${this.nsid} (LBAs 0..${this.blockCount - 1})`,
        'pass a whole LBA and a count of at least 1 that ends inside the namespace',
      );
    }
  }
}
