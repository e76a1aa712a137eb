/**
 * BlockServer: the container's side of the block ring (layout.ts). It takes requests the manager
 * posted and has the driver move the data between the device and the tag's buffer in the DMA
 * windows directly (a `DirectBlockDevice`): the container never copies block data. It checks what
 * it reads (a confused manager must not make the driver touch blocks outside the device) and keeps
 * the progress counters the container's heartbeats carry.
 *
 * Notifications (layout.ts, "Kicks"): one wake-up takes everything posted, and after publishing
 * SQ_HEAD it looks at SQ_TAIL again (the manager leaves out its kick while we have not caught up).
 * A completion kicks the completion eventfd only when the manager has taken every completion
 * before it (it may be asleep); while it is still taking, no kick; while it polls (CQ_POLLED), none.
 */
import type { PollHandle, Sys } from 'linux-sys';
import type { BlockDevice } from '../../../drivers/contract/block.js';
import type { Shared } from '../../abi/shm.js';
import { fence } from '../../abi/fence.js';
import { B, BLOCK_MAGIC, BlockCap, BlockFlag, BlockOp, BlockStatus, cqOffset, CQE_BYTES, ringBytes, SQ_OFFSET, SQE_BYTES, type RingGeometry } from '../../abi/block.js';

/** A block device that transfers into and out of the ring's per-tag buffers: the driver contract's (drivers/contract/block.ts). */
export type DirectBlockDevice = Pick<BlockDevice, 'blockSize' | 'blockCount' | 'read' | 'write' | 'fua' | 'flush' | 'discard' | 'writeZeroes'>;

export class BlockServer {
  readonly geometry: RingGeometry;
  private readonly u32: Uint32Array;
  private readonly view: DataView;
  private readonly cq: number;
  private sqHead: number;
  private cqTail: number;
  private poller: PollHandle | undefined;
  private stopped = false;
  private quiesceWaiters: (() => void)[] = [];
  completed = 0n;
  errors = 0n;
  bytesMoved = 0n;
  inflight = 0;
  private dev: DirectBlockDevice | undefined;
  /** Kicks of the completion eventfd sent, and left out (the manager was still taking). */
  kicks = 0;
  kicksSaved = 0;
  private takeScheduled = false;
  /** Each request the device failed, with its error (the container reports DMA errors as FAULT). */
  onError: (e: unknown) => void = () => {};

  /**
   * Poll SQ_TAIL every event-loop turn while requests are in flight (SQ_POLLED set, so the manager
   * leaves its kicks out): for a driver that polls its device anyway, the turns are there already.
   */
  private readonly pollWhileBusy: boolean;
  private polling = false;
  private readonly pollTurnBound = (): void => this.pollTurn();

  constructor(private readonly sys: Sys, shm: Shared, private readonly requestFd: number, private readonly completionFd: number, options: { pollWhileBusy?: boolean } = {}) {
    this.pollWhileBusy = options.pollWhileBusy ?? false;
    this.u32 = shm.u32;
    this.view = shm.view;
    if (shm.u32[B.MAGIC] !== BLOCK_MAGIC) throw new RangeError('block ring: bad magic (not a dmabox block ring)');
    this.geometry = { entries: shm.u32[B.ENTRIES]!, slotBytes: shm.u32[B.SLOT_BYTES]! };
    const g = this.geometry;
    if (g.entries < 1 || g.entries > 1024 || g.slotBytes < 4096 || g.slotBytes % 4096 !== 0 || shm.size < ringBytes(g)) {
      throw new RangeError(`block ring: geometry ${g.entries} x ${g.slotBytes} does not fit ${shm.size} bytes`);
    }
    this.cq = cqOffset(g);
    this.sqHead = shm.u32[B.SQ_HEAD]!;
    this.cqTail = shm.u32[B.CQ_TAIL]!;
  }

  /** Publish the device's geometry, then serve. */
  start(dev: DirectBlockDevice): void {
    this.dev = dev;
    this.u32[B.BLOCK_SIZE] = dev.blockSize;
    this.u32[B.BLOCKS_LO] = dev.blockCount >>> 0;
    this.u32[B.BLOCKS_HI] = Math.floor(dev.blockCount / 0x1_0000_0000);
    this.u32[B.CAPS] = (dev.discard ? BlockCap.DISCARD : 0) | (dev.writeZeroes ? BlockCap.WRITE_ZEROES : 0) | (dev.fua ? BlockCap.FUA : 0);
    this.poller = this.sys.poll(this.requestFd, () => {
      this.sys.eventfdRead(this.requestFd);
      this.take();
    });
    this.take();
  }

  /** Take no more requests; resolve when none is in flight. */
  quiesce(): Promise<void> {
    this.stopped = true;
    this.poller?.close();
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((r) => this.quiesceWaiters.push(r));
  }

  /**
   * Take what the manager posted until SQ_TAIL stops moving, at most a few rings' worth per call
   * (the rest on the next turn): after publishing SQ_HEAD, SQ_TAIL is read again, because the
   * manager does not kick while it sees us behind (client.ts `kick`).
   */
  private take(): void {
    const g = this.geometry, v = this.view;
    for (let round = 0; round < 4; round++) {
      if (this.stopped) return;
      const tail = Atomics.load(this.u32, B.SQ_TAIL);
      let n = (tail - this.sqHead) >>> 0;
      if (n === 0) return;
      if (n > g.entries) n = g.entries; // a confused manager: take at most one ring's worth
      for (let i = 0; i < n; i++) {
        const e = SQ_OFFSET + (this.sqHead % g.entries) * SQE_BYTES;
        this.sqHead = (this.sqHead + 1) >>> 0;
        const tag = v.getUint32(e, true), gen = v.getUint32(e + 4, true), op = v.getUint32(e + 8, true), blocks = v.getUint32(e + 12, true);
        const lba = v.getUint32(e + 16, true) + v.getUint32(e + 20, true) * 0x1_0000_0000;
        this.run(tag, gen, op, blocks, lba, v.getUint32(e + 24, true));
      }
      Atomics.store(this.u32, B.SQ_HEAD, this.sqHead);
      fence();
    }
    if (!this.stopped && !this.takeScheduled && Atomics.load(this.u32, B.SQ_TAIL) !== this.sqHead) {
      this.takeScheduled = true;
      setImmediate(() => { this.takeScheduled = false; this.take(); });
    }
  }

  /** One look at SQ_TAIL while polling; when nothing is in flight, back to kicks (layout.ts, "Polling"). */
  private pollTurn(): void {
    if (!this.stopped) this.take();
    if (this.inflight > 0 && !this.stopped) {
      setImmediate(this.pollTurnBound);
      return;
    }
    Atomics.store(this.u32, B.SQ_POLLED, 0);
    fence();
    if (this.stopped) {
      this.polling = false;
      return;
    }
    this.take();
    if (this.inflight > 0) {
      Atomics.store(this.u32, B.SQ_POLLED, 1);
      setImmediate(this.pollTurnBound);
      return;
    }
    this.polling = false;
  }

  private run(tag: number, gen: number, op: number, blocks: number, lba: number, flags: number): void {
    const g = this.geometry, dev = this.dev!, bs = dev.blockSize;
    if (tag >= g.entries) return this.complete(tag, gen, BlockStatus.BAD_REQUEST);
    const data = op === BlockOp.READ || op === BlockOp.WRITE;
    const ranged = data || (op === BlockOp.DISCARD && dev.discard !== undefined) || (op === BlockOp.WRITE_ZEROES && dev.writeZeroes !== undefined);
    if (!ranged && op !== BlockOp.FLUSH) return this.complete(tag, gen, BlockStatus.BAD_REQUEST);
    if (ranged) {
      if (blocks < 1 || (data && blocks * bs > g.slotBytes)) return this.complete(tag, gen, BlockStatus.BAD_REQUEST);
      if (lba + blocks > dev.blockCount) return this.complete(tag, gen, BlockStatus.RANGE);
    }
    const len = data ? blocks * bs : 0;
    this.inflight++;
    if (this.pollWhileBusy && !this.polling) {
      this.polling = true;
      Atomics.store(this.u32, B.SQ_POLLED, 1);
      setImmediate(this.pollTurnBound);
    }
    const p = op === BlockOp.READ ? dev.read(tag, lba, blocks)
      : op === BlockOp.WRITE ? dev.write(tag, lba, blocks, dev.fua === true && (flags & BlockFlag.FUA) !== 0)
        : op === BlockOp.DISCARD ? dev.discard!(lba, blocks)
          : op === BlockOp.WRITE_ZEROES ? dev.writeZeroes!(lba, blocks, (flags & BlockFlag.NO_HOLE) !== 0)
            : dev.flush();
    p.then(
      () => { this.bytesMoved += BigInt(len); this.done(tag, gen, BlockStatus.OK); },
      (e: unknown) => { this.errors++; this.onError(e); this.done(tag, gen, BlockStatus.IO_ERROR); },
    );
  }

  private done(tag: number, gen: number, status: BlockStatus): void {
    this.inflight--;
    this.complete(tag, gen, status);
    if (this.inflight === 0 && this.quiesceWaiters.length > 0) {
      const w = this.quiesceWaiters;
      this.quiesceWaiters = [];
      for (const r of w) r();
    }
  }

  private complete(tag: number, gen: number, status: BlockStatus): void {
    const e = this.cq + (this.cqTail % this.geometry.entries) * CQE_BYTES;
    this.view.setUint32(e, tag, true);
    this.view.setUint32(e + 4, gen, true);
    this.view.setUint32(e + 8, status, true);
    this.view.setUint32(e + 12, 0, true);
    const base = this.cqTail;
    this.cqTail = (this.cqTail + 1) >>> 0;
    Atomics.store(this.u32, B.CQ_TAIL, this.cqTail);
    this.completed++;
    this.kick(base);
  }

  /**
   * Kick for the completion at `base`, unless the manager has not yet taken those before it
   * (CQ_HEAD behind `base`): then it will read CQ_TAIL again after publishing CQ_HEAD (client.ts
   * `reap`), which our store precedes.
   */
  private kick(base: number): void {
    fence();
    if (Atomics.load(this.u32, B.CQ_POLLED) === 1) {
      this.kicksSaved++;
      return;
    }
    const behind = (base - Atomics.load(this.u32, B.CQ_HEAD)) >>> 0;
    if (behind !== 0 && behind <= this.geometry.entries) {
      this.kicksSaved++;
      return;
    }
    this.kicks++;
    this.sys.eventfdWrite(this.completionFd, 1n);
  }
}
