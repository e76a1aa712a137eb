/**
 * SandboxBlockClient: the manager's side of the block ring (sandbox/abi/block.ts). Callers get
 * Promises for read, write and flush; the client owns every request until it completes, so when a
 * container dies the supervisor detaches the ring, and on the fresh container's ring the same
 * requests are posted again (replay): callers see latency, not errors. Writes keep the caller's
 * buffer until they complete, so a replayed write carries the same bytes.
 *
 * Nothing the container writes is trusted: the completion index must be within N of ours (the
 * ring's own check, sandbox/abi/ring.ts), every tag must be in flight with the same generation,
 * the status must be known. A violation is dropped, counted and reported (`onViolation`), never
 * thrown.
 *
 * The request ring's producer and the completion ring's consumer follow sandbox/abi/ring.ts
 * (kicks, polling); requests are kicked at once as they are posted, not at the end of the turn:
 * the container starts on the first while we post the rest (measured: twice the QD16 rate of a
 * kick per turn). While the manager polls (`setPolled`), the container leaves out its completion kicks.
 */
import { OpStats } from './op-stats.js';
import type { PollHandle, Sys } from 'linux-sys';
import { SandboxError } from '../errors.js';
import type { Shared } from '../../abi/shm.js';
import type { Pollable } from '../../abi/hybrid-poll.js';
import { formatProblem, writeFormat } from '../../abi/format.js';
import { RingConsumer, RingProducer, type RingSink } from '../../abi/ring.js';
import {
  B,
  BLOCK_CAPS_KNOWN,
  BLOCK_FORMAT,
  BlockCap,
  BlockFlag,
  BlockOp,
  BlockStatus,
  cqLayout,
  dataAreaBytes,
  SQ_OFFSET,
  sqLayout,
  checkGeometry,
  type DataAreas,
  type RingGeometry,
} from '../../abi/block.js';

export interface BlockLink {
  sys: Sys;
  shm: Shared;
  /** Kicked by the manager when requests are posted. */
  requestFd: number;
  /** Kicked by the container when completions are posted. */
  completionFd: number;
}

interface Req {
  op: BlockOp;
  lba: number;
  blocks: number;
  /** SQ entry flags (BlockFlag). */
  flags: number;
  /** WRITE: the caller's bytes; READ: where the data goes. */
  buf: Uint8Array | undefined;
  resolve: () => void;
  reject: (e: Error) => void;
  /** Submission order, to replay in order. */
  order: number;
  /** performance.now() when the client took it (latency counts its wait for a tag and any replay). */
  t0: number;
}

/** Completions taken per call of `reap` (the poller calls it once a turn); the rest on the next turn. */
export const REAP_PER_TURN = 256;

const OP_NAMES: Record<number, string> = {
  [BlockOp.READ]: 'read',
  [BlockOp.WRITE]: 'write',
  [BlockOp.FLUSH]: 'flush',
  [BlockOp.DISCARD]: 'discard',
  [BlockOp.WRITE_ZEROES]: 'write zeroes',
};

export class BlockIoError extends SandboxError {
  constructor(
    what: string,
    readonly status: number,
  ) {
    super(
      'ERR_SANDBOX_IO',
      `${what}: the sandboxed driver reports ${status === BlockStatus.RANGE ? 'a range error' : status === BlockStatus.BAD_REQUEST ? 'a malformed request' : 'an I/O error'} (status ${status})`,
    );
  }
}

export class SandboxBlockClient implements Pollable {
  readonly geometry: RingGeometry;
  private link: BlockLink | undefined;
  private poller: PollHandle | undefined;
  private view!: DataView;
  private readonly data: DataAreas<Uint8Array>;
  private readonly sq: RingProducer;
  private readonly cq: RingConsumer;
  private readonly cqSink: RingSink = { take: (at) => this.complete(at) };
  /** In flight per tag, and each tag's generation. */
  private readonly inflight: (Req | undefined)[];
  private readonly gen: Uint32Array;
  private readonly freeTags: number[] = [];
  /** Waiting for a tag or for a container. */
  private backlog: Req[] = [];
  private order = 0;
  private failed: Error | undefined;
  blockSize = 0;
  blockCount = 0;
  /** What the device does besides read, write and flush (the container's CAPS, fixed at the first READY). */
  canDiscard = false;
  canWriteZeroes = false;
  canFua = false;
  private caps = -1;
  completed = 0;
  errors = 0;
  bytes = 0;
  violations = 0;
  replayed = 0;
  /** Requests, errors, bytes and latency by operation (the metrics endpoint reads them; op-stats.ts). */
  readonly opStats = new OpStats();
  /** Ring occupancy: requests posted to the container and not yet completed. */
  get inflightCount(): number {
    return this.geometry.entries - this.freeTags.length;
  }
  /** Requests waiting for a free tag or for a container. */
  get backlogCount(): number {
    return this.backlog.length;
  }
  /** Called with a description of each thing the container wrote that could not be right. */
  onViolation: (reason: string) => void = () => {};
  /** Kicks of the request eventfd sent, and those left out (the container was still taking, or polls). */
  get kicks(): number {
    return this.sq.kicks;
  }
  get kicksSaved(): number {
    return this.sq.kicksSaved;
  }
  private reapScheduled = false;
  private readonly reapLater = (): void => {
    this.reapScheduled = false;
    this.reap();
  };
  private polled = false;

  /**
   * `data`: the manager's views of the two data areas in the DMA windows (sandbox/abi/block.ts), each
   * `entries * slotBytes`; they outlive containers, so replayed writes are copied in again.
   */
  constructor(geometry: RingGeometry, data: DataAreas<Uint8Array>) {
    checkGeometry(geometry);
    const need = dataAreaBytes(geometry);
    if (data.read.length < need || data.write.length < need)
      throw new SandboxError('ERR_SANDBOX_ARG', `block data areas of ${data.read.length} and ${data.write.length} bytes: each needs ${need}`);
    this.geometry = geometry;
    this.data = data;
    this.inflight = new Array<Req | undefined>(geometry.entries).fill(undefined);
    this.gen = new Uint32Array(geometry.entries);
    for (let t = geometry.entries - 1; t >= 0; t--) this.freeTags.push(t);
    this.sq = new RingProducer(sqLayout(geometry));
    this.cq = new RingConsumer(cqLayout(geometry), (reason) => {
      this.violations++;
      this.onViolation(reason);
    });
  }

  /** Requests in flight in the container plus those waiting. */
  get pending(): number {
    return this.geometry.entries - this.freeTags.length + this.backlog.length;
  }
  get attached(): boolean {
    return this.link !== undefined;
  }

  /** Prepare a fresh ring memory for a container, before it is spawned (header written, indices zero). */
  initRing(shm: Shared): void {
    shm.bytes.fill(0, 0, SQ_OFFSET);
    writeFormat(shm.u32, BLOCK_FORMAT);
    shm.u32[B.ENTRIES] = this.geometry.entries;
    shm.u32[B.SLOT_BYTES] = this.geometry.slotBytes;
  }

  /**
   * Start using a container's ring once it said READY: check the geometry it published, then post
   * everything waiting (replayed requests first, in their original order).
   */
  attach(link: BlockLink): void {
    if (this.link) throw new SandboxError('ERR_SANDBOX_STATE', 'the block client is already attached to a container');
    const u32 = link.shm.u32;
    // The header is read back here: the magic and version we wrote must still be there.
    const header = formatProblem(u32, BLOCK_FORMAT);
    if (header !== null) {
      this.onViolation(`the container changed the ring header: ${header}`);
      throw new SandboxError('ERR_SANDBOX_GEOMETRY', `the container changed the block ring's header (${header})`);
    }
    const bs = u32[B.BLOCK_SIZE]!,
      count = u32[B.BLOCKS_LO]! + u32[B.BLOCKS_HI]! * 0x1_0000_0000;
    if (bs < 512 || bs > 65536 || (bs & (bs - 1)) !== 0 || bs > this.geometry.slotBytes || count < 1 || !Number.isSafeInteger(count)) {
      this.onViolation(`the container published block size ${bs} and ${count} blocks: not a device`);
      throw new SandboxError('ERR_SANDBOX_GEOMETRY', `the container published an impossible geometry (block size ${bs}, ${count} blocks)`);
    }
    if (this.blockSize !== 0 && (bs !== this.blockSize || count !== this.blockCount)) {
      throw new SandboxError(
        'ERR_SANDBOX_GEOMETRY',
        `the device changed geometry across a restart (${this.blockSize} x ${this.blockCount} -> ${bs} x ${count})`,
      );
    }
    const caps = u32[B.CAPS]!;
    if ((caps & ~BLOCK_CAPS_KNOWN) !== 0) {
      this.onViolation(`the container published capabilities 0x${caps.toString(16)}: unknown bits`);
      throw new SandboxError('ERR_SANDBOX_GEOMETRY', `the container published unknown device capabilities (0x${caps.toString(16)})`);
    }
    // Clients were told what the export does; a restarted driver must offer the same.
    if (this.caps !== -1 && caps !== this.caps) {
      throw new SandboxError(
        'ERR_SANDBOX_GEOMETRY',
        `the device changed capabilities across a restart (0x${this.caps.toString(16)} -> 0x${caps.toString(16)})`,
      );
    }
    this.caps = caps;
    this.canDiscard = (caps & BlockCap.DISCARD) !== 0;
    this.canWriteZeroes = (caps & BlockCap.WRITE_ZEROES) !== 0;
    this.canFua = (caps & BlockCap.FUA) !== 0;
    this.blockSize = bs;
    this.blockCount = count;
    this.link = link;
    this.view = link.shm.view;
    // initRing left both indices at 0, before the container started.
    this.sq.bind(u32, 0);
    this.cq.bind(u32, 0);
    this.cq.setPolled(this.polled);
    this.poller = link.sys.poll(link.completionFd, () => {
      link.sys.eventfdRead(link.completionFd);
      this.reap();
    });
    this.pump();
  }

  /**
   * The container is gone: stop reading its ring and take every request in flight back, to be
   * posted again on the next container. Returns how many were in flight.
   */
  detach(): number {
    if (!this.link) return 0;
    this.poller?.close();
    this.poller = undefined;
    this.link = undefined;
    const back: Req[] = [];
    for (let t = 0; t < this.inflight.length; t++) {
      const r = this.inflight[t];
      if (r === undefined) continue;
      this.inflight[t] = undefined;
      this.freeTags.push(t);
      back.push(r);
    }
    back.sort((a, b) => a.order - b.order);
    this.replayed += back.length;
    this.backlog = back.concat(this.backlog);
    return back.length;
  }

  /** The device is failed for good: every request, now and later, rejects with `error`. */
  fail(error: Error): void {
    this.failed = error;
    this.detach();
    const all = this.backlog;
    this.backlog = [];
    for (const r of all) r.reject(error);
  }

  /** Read `blocks` blocks at `lba`. Every problem, an argument out of range too, is a rejection. */
  read(lba: number, blocks: number): Promise<Uint8Array> {
    try {
      this.checkRange('read', lba, blocks);
    } catch (e) {
      return Promise.reject(e);
    }
    const out = new Uint8Array(blocks * this.blockSize);
    return this.readInto(lba, blocks, out).then(() => out);
  }

  /**
   * Read `blocks` blocks at `lba` straight into `into` (at least `blocks * blockSize` bytes; the
   * data lands in its first bytes): no buffer of the client's, one copy out of the ring's data area.
   */
  readInto(lba: number, blocks: number, into: Uint8Array): Promise<void> {
    try {
      this.checkRange('read', lba, blocks);
      if (into.length < blocks * this.blockSize) {
        throw new SandboxError('ERR_SANDBOX_ARG', `read of ${blocks} block(s) into ${into.length} bytes: needs ${blocks * this.blockSize}`, {
          fix: 'pass a buffer of blocks * blockSize bytes',
        });
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const bs = this.blockSize,
      per = this.geometry.slotBytes / bs;
    if (blocks <= per) return this.submit(BlockOp.READ, lba, blocks, into);
    const parts: Promise<void>[] = [];
    for (let done = 0; done < blocks; done += per) {
      const n = Math.min(per, blocks - done);
      parts.push(this.submit(BlockOp.READ, lba + done, n, into.subarray(done * bs, (done + n) * bs)));
    }
    return Promise.all(parts).then(() => undefined);
  }

  /**
   * Write `data` (whole blocks) at `lba`; the client keeps `data` until the write completes (replay).
   * `fua`: durable when it completes (Force Unit Access; the device must offer it: `canFua`).
   */
  write(lba: number, data: Uint8Array, fua = false): Promise<void> {
    if (fua && !this.canFua) {
      return Promise.reject(
        new SandboxError('ERR_SANDBOX_UNSUPPORTED', 'a FUA write: the sandboxed device does not offer it', {
          fix: 'check canFua first, or follow the write with a flush',
        }),
      );
    }
    const flags = fua ? BlockFlag.FUA : 0;
    if (this.blockSize === 0) return Promise.reject(this.notReady());
    if (data.length === 0 || data.length % this.blockSize !== 0) {
      return Promise.reject(
        new SandboxError('ERR_SANDBOX_ARG', `write of ${data.length} bytes: not a whole number of ${this.blockSize}-byte blocks`, {
          fix: 'pad the data to the block size',
        }),
      );
    }
    const blocks = data.length / this.blockSize;
    try {
      this.checkRange('write', lba, blocks);
    } catch (e) {
      return Promise.reject(e);
    }
    const per = this.geometry.slotBytes / this.blockSize;
    if (blocks <= per) return this.submit(BlockOp.WRITE, lba, blocks, data, flags);
    const parts: Promise<void>[] = [];
    for (let done = 0; done < blocks; done += per) {
      const n = Math.min(per, blocks - done);
      parts.push(this.submit(BlockOp.WRITE, lba + done, n, data.subarray(done * this.blockSize, (done + n) * this.blockSize), flags));
    }
    return Promise.all(parts).then(() => undefined);
  }

  flush(): Promise<void> {
    return this.submit(BlockOp.FLUSH, 0, 0, undefined);
  }

  /** Deallocate `blocks` blocks at `lba` (the device must offer it: `canDiscard`). */
  discard(lba: number, blocks: number): Promise<void> {
    return this.noData(BlockOp.DISCARD, 'discard', this.canDiscard, lba, blocks, 0);
  }

  /** Zero `blocks` blocks at `lba`, deallocating them unless `noHole` (the device must offer it: `canWriteZeroes`). */
  writeZeroes(lba: number, blocks: number, noHole: boolean): Promise<void> {
    return this.noData(BlockOp.WRITE_ZEROES, 'write zeroes', this.canWriteZeroes, lba, blocks, noHole ? BlockFlag.NO_HOLE : 0);
  }

  private noData(op: BlockOp, what: string, offered: boolean, lba: number, blocks: number, flags: number): Promise<void> {
    try {
      this.checkRange(what, lba, blocks);
      if (!offered)
        throw new SandboxError('ERR_SANDBOX_UNSUPPORTED', `${what}: the sandboxed device does not offer it`, {
          fix: 'check canDiscard / canWriteZeroes first',
        });
      if (blocks > 0xffff_ffff)
        throw new SandboxError('ERR_SANDBOX_ARG', `${what} of ${blocks} blocks: at most 2^32 - 1 per request`, { fix: 'split the range' });
    } catch (e) {
      return Promise.reject(e);
    }
    return this.submit(op, lba, blocks, undefined, flags);
  }

  private notReady(): SandboxError {
    return new SandboxError('ERR_SANDBOX_NOT_READY', 'the sandboxed device has not published its geometry yet', {
      fix: 'wait for the sandbox to be ready (sandbox.ready())',
    });
  }

  private checkRange(what: string, lba: number, blocks: number): void {
    if (this.blockSize === 0) throw this.notReady();
    if (!Number.isSafeInteger(lba) || lba < 0 || !Number.isSafeInteger(blocks) || blocks < 1 || lba + blocks > this.blockCount) {
      throw new SandboxError('ERR_SANDBOX_ARG', `${what} of ${blocks} block(s) at LBA ${lba}: outside the device (LBAs 0..${this.blockCount - 1})`, {
        fix: 'pass a whole LBA and a count of at least 1 that ends inside the device',
      });
    }
  }

  private submit(op: BlockOp, lba: number, blocks: number, buf: Uint8Array | undefined, flags = 0): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<void>((resolve, reject) => {
      this.backlog.push({ op, lba, blocks, flags, buf, resolve, reject, order: this.order++, t0: performance.now() });
      this.pump();
    });
  }

  /** Post waiting requests while tags are free, and kick the container for them (ring.ts). */
  private pump(): void {
    const link = this.link;
    if (!link || this.backlog.length === 0) return;
    let posted = 0;
    const g = this.geometry,
      v = this.view,
      sq = this.sq;
    while (this.backlog.length > 0 && this.freeTags.length > 0) {
      const r = this.backlog.shift()!;
      const tag = this.freeTags.pop()!;
      const gen = (this.gen[tag] = (this.gen[tag]! + 1) >>> 0);
      this.inflight[tag] = r;
      if (r.op === BlockOp.WRITE) this.data.write.set(r.buf!, tag * g.slotBytes);
      const e = sq.at(posted++);
      v.setUint32(e, tag, true);
      v.setUint32(e + 4, gen, true);
      v.setUint32(e + 8, r.op, true);
      v.setUint32(e + 12, r.blocks, true);
      v.setUint32(e + 16, r.lba >>> 0, true);
      v.setUint32(e + 20, Math.floor(r.lba / 0x1_0000_0000), true);
      v.setUint32(e + 24, r.flags, true);
    }
    if (posted > 0) {
      if (sq.post(posted)) link.sys.eventfdWrite(link.requestFd, 1n);
      this.onPost();
    }
  }

  /**
   * Take the completions the container posted (ring.ts: until CQ_TAIL stops moving, at most
   * REAP_PER_TURN per call, so one sandbox's ring takes a bounded share of the manager's turn;
   * more waits for the next turn), then post what waited for their tags.
   */
  reap(): number {
    if (!this.link) return 0;
    const n = this.cq.drain(this.cqSink, REAP_PER_TURN);
    if (n > 0) this.pump();
    if (this.link && !this.reapScheduled && this.cq.available() > 0) {
      this.reapScheduled = true;
      setImmediate(this.reapLater);
    }
    return n;
  }

  /**
   * The manager polls (sandbox/abi/hybrid-poll.ts): while `on`, CQ_POLLED tells the container to leave
   * its completion kicks out, and `reap` is called every turn. Kept across containers: a fresh
   * ring gets the current value when it is attached.
   */
  setPolled(on: boolean): void {
    if (this.polled === on) return;
    this.polled = on;
    if (this.link) this.cq.setPolled(on);
  }

  /** Pollable: take completions (the manager's hybrid poller, every turn). */
  poll(): number {
    return this.reap();
  }

  /** Called after requests were posted (the manager's poller starts on it). */
  onPost: () => void = () => {};

  /** One completion (the CQ sink): settle its request, or count a violation and go on. */
  private complete(e: number): boolean {
    const g = this.geometry,
      v = this.view;
    const tag = v.getUint32(e, true),
      gen = v.getUint32(e + 4, true),
      status = v.getUint32(e + 8, true);
    const r = tag < g.entries ? this.inflight[tag] : undefined;
    if (r === undefined || this.gen[tag] !== gen || status > BlockStatus.IO_ERROR) {
      this.violations++;
      this.onViolation(`completion for tag ${tag} gen ${gen} status ${status}: no such request in flight`);
      return true;
    }
    this.inflight[tag] = undefined;
    this.freeTags.push(tag);
    const seconds = (performance.now() - r.t0) / 1000;
    if (status === BlockStatus.OK) {
      let len = 0;
      if (r.op === BlockOp.READ || r.op === BlockOp.WRITE) {
        len = r.blocks * this.blockSize;
        if (r.op === BlockOp.READ) r.buf!.set(this.data.read.subarray(tag * g.slotBytes, tag * g.slotBytes + len));
        this.bytes += len;
      }
      this.opStats.record(r.op - 1, true, len, seconds);
      this.completed++;
      r.resolve();
    } else {
      this.opStats.record(r.op - 1, false, 0, seconds);
      this.errors++;
      r.reject(new BlockIoError(`${OP_NAMES[r.op] ?? 'request'} of ${r.blocks} block(s) at LBA ${r.lba}`, status));
    }
    return true;
  }
}
