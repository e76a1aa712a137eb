/**
 * TAP -> NIC, one turn at a time: read up to `batch` frames from the TAP, each straight into a TX
 * buffer the NIC lends, queue them, and offer the queue to the NIC, which may take fewer than
 * offered (the rest stay queued, in order, and are offered first on the next turn).
 *
 * The queue is a preallocated PacketBatch (buffer indices and lengths, the port's view) with a
 * parallel Uint32Array of (length << 3) | class kept by the bridge, so accounting needs no trust in
 * the port. A turn allocates nothing. It never throws: what went wrong is its result, and the
 * bridge's state machine decides what follows (pause, back off, fail).
 */
import { PacketBatch } from '../../drivers/contract/packet-batch.js';
import { countFrame, ETH_HEADER, frameClass, type BridgeCounters } from './counters.js';
import type { NicPort } from './nic-port.js';
import type { BridgeSettings } from './options.js';
import type { FrameIo } from './tun.js';

/** The turn went through (with whenFull 'drop', a full queue is also this: the surplus was dropped). */
export const TX_OK = 0;
/** The queue or the NIC's TX pool is full (whenFull 'wait'): stop reading the TAP for now. */
export const TX_FULL = 1;
/** A TAP read or a port call threw (counted and reported): back off. */
export const TX_FAULT = 2;
/** The port broke the NicPort contract (`violation` says how): buffer ownership is lost. */
export const TX_BROKE = 3;
export type TxResult = typeof TX_OK | typeof TX_FULL | typeof TX_FAULT | typeof TX_BROKE;

export class TxPump {
  /** Frames read from the TAP, waiting for the NIC. */
  readonly queue: PacketBatch;
  /** Parallel to the queue: (length << 3) | class. */
  readonly meta: Uint32Array;
  /** What the port did wrong, after TX_BROKE. */
  violation = '';
  private readonly batch: number;
  private readonly drop: boolean;
  private readonly counters: BridgeCounters;
  /** For whenFull 'drop': where frames that have no room go (made at the first drop). */
  private scratch: Uint8Array | null = null;

  constructor(settings: BridgeSettings, counters: BridgeCounters) {
    this.batch = settings.batch;
    this.drop = settings.whenFull === 'drop';
    this.counters = counters;
    this.queue = new PacketBatch(settings.queueFrames);
    this.meta = new Uint32Array(settings.queueFrames);
  }

  get queued(): number {
    return this.queue.count;
  }

  /** Offer what is queued, read up to a batch from the TAP, offer again. */
  turn(port: NicPort, io: FrameIo): TxResult {
    try {
      return this.turnOrThrow(port, io);
    } catch (e) {
      // A port that throws from txAlloc/txOffset/txFree/txBytes/tx (a dead driver).
      this.counters.portError(e);
      return TX_FAULT;
    }
  }

  private turnOrThrow(port: NicPort, io: FrameIo): TxResult {
    const q = this.queue,
      meta = this.meta,
      c = this.counters.events;
    if (q.count > 0) {
      const r = this.offer(port);
      if (r !== TX_OK) return r;
    }
    const bytes = port.txBytes;
    const max = port.bufferSize;
    let read = 0;
    let full = false;
    let fault = false;
    while (read < this.batch) {
      if (q.count === q.capacity) {
        full = true;
        break;
      }
      const buf = port.txAlloc();
      if (buf < 0) {
        full = true;
        break;
      }
      const off = port.txOffset(buf);
      let n: number;
      try {
        n = io.read(bytes, off, max);
      } catch (e) {
        port.txFree(buf);
        c.tapReadErrors++;
        this.counters.report(e);
        fault = true;
        break;
      }
      if (n === 0) {
        port.txFree(buf);
        break;
      }
      read++;
      if (n < ETH_HEADER || n > port.maxFrame) {
        port.txFree(buf);
        c.malformedFromTap++;
        continue;
      }
      meta[q.count] = (n << 3) | frameClass(bytes, off, n);
      q.push(buf, n);
    }
    if (read > 0) {
      const r = this.offer(port);
      if (r !== TX_OK) return r;
    }
    if (fault) return TX_FAULT;
    if (!full) return TX_OK;
    c.queueFull++;
    if (!this.drop) return TX_FULL;
    return this.dropFromTap(io, this.batch - read);
  }

  /** Offer the queue to the NIC; account what it took. */
  private offer(port: NicPort): TxResult {
    const q = this.queue,
      meta = this.meta;
    const before = q.count;
    const k = port.tx(q);
    if (!Number.isInteger(k) || k < 0 || k > before || q.count !== before - k) {
      this.violation = `tx() returned ${k} for ${before} frames offered and left ${q.count} in the batch; buffer ownership is lost`;
      return TX_BROKE;
    }
    const c = this.counters;
    if (k === 0) {
      c.events.stalls++;
      return TX_OK;
    }
    for (let i = 0; i < k; i++) {
      const m = meta[i]!;
      countFrame(c.toNic, m & 7, m >>> 3);
    }
    if (k < before) {
      meta.copyWithin(0, k, before);
      c.events.stalls++;
    }
    return TX_OK;
  }

  /** whenFull 'drop': read up to `n` frames into scratch and drop them. */
  private dropFromTap(io: FrameIo, n: number): TxResult {
    if (this.scratch === null) this.scratch = new Uint8Array(65536);
    const s = this.scratch,
      c = this.counters.events;
    for (let i = 0; i < n; i++) {
      let got: number;
      try {
        got = io.read(s, 0, s.length);
      } catch (e) {
        c.tapReadErrors++;
        this.counters.report(e);
        return TX_FAULT;
      }
      if (got === 0) break;
      c.queueDrops++;
    }
    return TX_OK;
  }

  /** stop(): queued buffers go back to the port, counted in `stopDrops`. */
  release(port: NicPort): void {
    const q = this.queue;
    for (let i = 0; i < q.count; i++) {
      try {
        port.txFree(q.buf[i]!);
      } catch (e) {
        this.counters.portError(e);
      }
    }
    this.discard();
  }

  /** stop() while suspended: the queue holds copies, not port buffers; counted in `stopDrops`. */
  discard(): void {
    this.counters.events.stopDrops += this.queue.count;
    this.queue.clear();
  }

  /** The port broke the contract: its buffers' owner is unknown, so none is touched again. */
  forget(): void {
    this.queue.clear();
  }
}
