/**
 * BlockServer: the container's side of the block ring (layout.ts). It takes requests the manager
 * posted, runs them on the driver's block device, and posts completions. It checks what it reads
 * (a confused manager must not make the driver touch blocks outside the device) and keeps the
 * progress counters the container's heartbeats carry.
 */
import type { PollHandle, Sys } from 'vfio-bindings';
import type { Shared } from '../shm.js';
import { B, BLOCK_MAGIC, BlockOp, BlockStatus, cqOffset, CQE_BYTES, dataOffset, SQ_OFFSET, SQE_BYTES, type RingGeometry } from './layout.js';

/** What the driver offers (drivers/nvme Namespace has this shape). */
export interface BlockDevice {
  readonly blockSize: number;
  readonly blockCount: number;
  read(lba: number, blocks: number): Promise<Uint8Array>;
  write(lba: number, data: Uint8Array): Promise<void>;
  flush(): Promise<void>;
}

export class BlockServer {
  private readonly u32: Uint32Array;
  private readonly view: DataView;
  private readonly bytes: Uint8Array;
  private readonly g: RingGeometry;
  private readonly cq: number;
  private readonly data: number;
  private sqHead: number;
  private cqTail: number;
  private poller: PollHandle | undefined;
  private stopped = false;
  private quiesceWaiters: (() => void)[] = [];
  completed = 0n;
  errors = 0n;
  bytesMoved = 0n;
  inflight = 0;

  constructor(private readonly sys: Sys, shm: Shared, private readonly requestFd: number, private readonly completionFd: number, private readonly dev: BlockDevice) {
    this.u32 = shm.u32;
    this.view = shm.view;
    this.bytes = shm.bytes;
    if (shm.u32[B.MAGIC] !== BLOCK_MAGIC) throw new RangeError('block ring: bad magic (not a dmabox block ring)');
    this.g = { entries: shm.u32[B.ENTRIES]!, slotBytes: shm.u32[B.SLOT_BYTES]! };
    if (this.g.entries < 1 || this.g.entries > 1024 || this.g.slotBytes % 4096 !== 0 || shm.size < dataOffset(this.g) + this.g.entries * this.g.slotBytes) {
      throw new RangeError(`block ring: geometry ${this.g.entries} x ${this.g.slotBytes} does not fit ${shm.size} bytes`);
    }
    this.cq = cqOffset(this.g);
    this.data = dataOffset(this.g);
    this.sqHead = shm.u32[B.SQ_HEAD]!;
    this.cqTail = shm.u32[B.CQ_TAIL]!;
  }

  /** Publish the device's geometry, then serve. */
  start(): void {
    this.u32[B.BLOCK_SIZE] = this.dev.blockSize;
    this.u32[B.BLOCKS_LO] = this.dev.blockCount >>> 0;
    this.u32[B.BLOCKS_HI] = Math.floor(this.dev.blockCount / 0x1_0000_0000);
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

  private take(): void {
    if (this.stopped) return;
    const g = this.g, v = this.view;
    const tail = Atomics.load(this.u32, B.SQ_TAIL);
    let n = (tail - this.sqHead) >>> 0;
    if (n > g.entries) n = g.entries; // a confused manager: take at most one ring's worth
    for (let i = 0; i < n; i++) {
      const e = SQ_OFFSET + (this.sqHead % g.entries) * SQE_BYTES;
      this.sqHead = (this.sqHead + 1) >>> 0;
      const tag = v.getUint32(e, true), gen = v.getUint32(e + 4, true), op = v.getUint32(e + 8, true), blocks = v.getUint32(e + 12, true);
      const lba = v.getUint32(e + 16, true) + v.getUint32(e + 20, true) * 0x1_0000_0000;
      this.run(tag, gen, op, blocks, lba);
    }
    Atomics.store(this.u32, B.SQ_HEAD, this.sqHead);
  }

  private run(tag: number, gen: number, op: number, blocks: number, lba: number): void {
    const g = this.g, bs = this.dev.blockSize;
    if (tag >= g.entries || (op !== BlockOp.READ && op !== BlockOp.WRITE && op !== BlockOp.FLUSH)) return this.complete(tag, gen, BlockStatus.BAD_REQUEST);
    if (op !== BlockOp.FLUSH) {
      if (blocks < 1 || blocks * bs > g.slotBytes) return this.complete(tag, gen, BlockStatus.BAD_REQUEST);
      if (lba + blocks > this.dev.blockCount) return this.complete(tag, gen, BlockStatus.RANGE);
    }
    const at = this.data + tag * g.slotBytes, len = blocks * bs;
    this.inflight++;
    let p: Promise<unknown>;
    if (op === BlockOp.READ) p = this.dev.read(lba, blocks).then((d) => { this.bytes.set(d, at); });
    else if (op === BlockOp.WRITE) p = this.dev.write(lba, this.bytes.subarray(at, at + len));
    else p = this.dev.flush();
    p.then(
      () => { this.bytesMoved += BigInt(len); this.done(tag, gen, BlockStatus.OK); },
      () => { this.errors++; this.done(tag, gen, BlockStatus.IO_ERROR); },
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
    const e = this.cq + (this.cqTail % this.g.entries) * CQE_BYTES;
    this.view.setUint32(e, tag, true);
    this.view.setUint32(e + 4, gen, true);
    this.view.setUint32(e + 8, status, true);
    this.view.setUint32(e + 12, 0, true);
    this.cqTail = (this.cqTail + 1) >>> 0;
    Atomics.store(this.u32, B.CQ_TAIL, this.cqTail);
    this.completed++;
    this.sys.eventfdWrite(this.completionFd, 1n);
  }
}
