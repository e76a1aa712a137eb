/**
 * BlockServer: the container's side of the block ring (sandbox/abi/block.ts). It takes requests the
 * manager posted and has the driver move the data between the device and the tag's buffer in the
 * DMA windows directly (a `DirectBlockDevice`): the container never copies block data. It checks
 * what it reads (a confused manager must not make the driver touch blocks outside the device) and
 * keeps the progress counters the container's heartbeats carry.
 *
 * The request ring's consumer and the completion ring's producer follow sandbox/abi/ring.ts: one
 * wake-up takes everything posted (looking again after publishing SQ_HEAD), each completion kicks
 * the manager unless it is still taking or polls. A request index no correct manager could write
 * is counted in `violations` and the ring is not read again (the manager's hang detection ends it).
 */
import type { PollHandle, Sys } from 'linux-sys';
import type { BlockDevice } from '../../../drivers/contract/block.js';
import type { Shared } from '../../abi/shm.js';
import { checkFormat } from '../../abi/format.js';
import { RingConsumer, RingProducer, type RingSink } from '../../abi/ring.js';
import { B, BLOCK_FORMAT, BlockCap, BlockFlag, BlockOp, BlockStatus, checkGeometry, cqLayout, sqLayout, type RingGeometry } from '../../abi/block.js';

/** A block device that transfers into and out of the ring's per-tag buffers: the driver contract's (drivers/contract/block.ts). */
export type DirectBlockDevice = Pick<BlockDevice, 'blockSize' | 'blockCount' | 'read' | 'write' | 'fua' | 'flush' | 'discard' | 'writeZeroes'>;

export class BlockServer {
  readonly geometry: RingGeometry;
  private readonly u32: Uint32Array;
  private readonly view: DataView;
  private readonly sq: RingConsumer;
  private readonly cq: RingProducer;
  private readonly sqSink: RingSink = { take: (at) => this.request(at) };
  private poller: PollHandle | undefined;
  private stopped = false;
  private quiesceWaiters: (() => void)[] = [];
  completed = 0n;
  errors = 0n;
  bytesMoved = 0n;
  inflight = 0;
  private dev: DirectBlockDevice | undefined;
  /** Kicks of the completion eventfd sent, and left out (the manager was still taking, or polls). */
  get kicks(): number {
    return this.cq.kicks;
  }
  get kicksSaved(): number {
    return this.cq.kicksSaved;
  }
  /** Request indices no correct manager could have written (the ring is then not read again). */
  violations = 0;
  private takeScheduled = false;
  private readonly takeLater = (): void => {
    this.takeScheduled = false;
    this.take();
  };
  /** Each request the device failed, with its error (the container reports DMA errors as FAULT). */
  onError: (e: unknown) => void = () => {};

  /**
   * Poll SQ_TAIL every event-loop turn while requests are in flight (SQ_POLLED set, so the manager
   * leaves its kicks out): for a driver that polls its device anyway, the turns are there already.
   */
  private readonly pollWhileBusy: boolean;
  private polling = false;
  private readonly pollTurnBound = (): void => this.pollTurn();

  constructor(
    private readonly sys: Sys,
    shm: Shared,
    private readonly requestFd: number,
    private readonly completionFd: number,
    options: { pollWhileBusy?: boolean } = {},
  ) {
    this.pollWhileBusy = options.pollWhileBusy ?? false;
    this.u32 = shm.u32;
    this.view = shm.view;
    checkFormat(shm.u32, BLOCK_FORMAT);
    this.geometry = { entries: shm.u32[B.ENTRIES]!, slotBytes: shm.u32[B.SLOT_BYTES]! };
    checkGeometry(this.geometry, shm.size);
    this.sq = new RingConsumer(sqLayout(this.geometry), () => {
      this.violations++;
    });
    this.sq.bind(shm.u32, Atomics.load(shm.u32, B.SQ_HEAD));
    this.cq = new RingProducer(cqLayout(this.geometry));
    this.cq.bind(shm.u32, Atomics.load(shm.u32, B.CQ_TAIL));
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
    // Back to kicks now, while the ring is surely mapped: a poll turn still queued must not touch
    // it (the ring may be unmapped by the time it runs).
    if (this.polling) this.sq.setPolled(false);
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((r) => this.quiesceWaiters.push(r));
  }

  /** Take what the manager posted (ring.ts: until SQ_TAIL stops moving, a few rings' worth per call; the rest on the next turn). */
  private take(): void {
    if (this.stopped) return;
    this.sq.drain(this.sqSink, 4 * this.geometry.entries);
    if (!this.stopped && !this.takeScheduled && this.sq.available() > 0) {
      this.takeScheduled = true;
      setImmediate(this.takeLater);
    }
  }

  /** One request (the SQ sink). */
  private request(e: number): boolean {
    if (this.stopped) return false;
    const v = this.view;
    const tag = v.getUint32(e, true),
      gen = v.getUint32(e + 4, true),
      op = v.getUint32(e + 8, true),
      blocks = v.getUint32(e + 12, true);
    const lba = v.getUint32(e + 16, true) + v.getUint32(e + 20, true) * 0x1_0000_0000;
    this.run(tag, gen, op, blocks, lba, v.getUint32(e + 24, true));
    return true;
  }

  /** One look at SQ_TAIL while polling; when nothing is in flight, back to kicks (ring.ts, "Polling"). */
  private pollTurn(): void {
    if (this.stopped) {
      this.polling = false; // quiesce cleared SQ_POLLED
      return;
    }
    this.take();
    if (this.inflight > 0 && !this.stopped) {
      setImmediate(this.pollTurnBound);
      return;
    }
    this.sq.setPolled(false);
    if (this.stopped) {
      this.polling = false;
      return;
    }
    this.take();
    if (this.inflight > 0) {
      this.sq.setPolled(true);
      setImmediate(this.pollTurnBound);
      return;
    }
    this.polling = false;
  }

  private run(tag: number, gen: number, op: number, blocks: number, lba: number, flags: number): void {
    const g = this.geometry,
      dev = this.dev!,
      bs = dev.blockSize;
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
      this.sq.setPolled(true);
      setImmediate(this.pollTurnBound);
    }
    const p =
      op === BlockOp.READ
        ? dev.read(tag, lba, blocks)
        : op === BlockOp.WRITE
          ? dev.write(tag, lba, blocks, dev.fua === true && (flags & BlockFlag.FUA) !== 0)
          : op === BlockOp.DISCARD
            ? dev.discard!(lba, blocks)
            : op === BlockOp.WRITE_ZEROES
              ? dev.writeZeroes!(lba, blocks, (flags & BlockFlag.NO_HOLE) !== 0)
              : dev.flush();
    p.then(
      () => {
        this.bytesMoved += BigInt(len);
        this.done(tag, gen, BlockStatus.OK);
      },
      (e: unknown) => {
        this.errors++;
        this.onError(e);
        this.done(tag, gen, BlockStatus.IO_ERROR);
      },
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
    const cq = this.cq,
      v = this.view,
      e = cq.at(0);
    v.setUint32(e, tag, true);
    v.setUint32(e + 4, gen, true);
    v.setUint32(e + 8, status, true);
    v.setUint32(e + 12, 0, true);
    this.completed++;
    if (cq.post(1)) this.sys.eventfdWrite(this.completionFd, 1n);
  }
}
