/**
 * NicServer: the container's side of the packet rings (sandbox/abi/net.ts). It moves frames between the
 * rings and a NIC driver (drivers/contract/net.ts NetDevice), up to NET_BATCH per turn each way:
 *
 * - TX: entries of TXS -> a driver TX buffer each (`txAlloc`, one copy from the slot into the DMA
 *   window), slot returned on TXC at once; then one `tx()` for the batch. Frames the driver's ring
 *   does not take stay in the batch, first in line next turn.
 * - RX: every turn takes the RX slots RXF offers into a free stack of its own; `rx()` harvests
 *   frames into the driver's RX buffers (the device wrote them there); each is copied into one of
 *   those slots and posted on RXC; the driver's buffer goes back to its pool. With no RX slot
 *   free, harvested frames wait in the batch (the manager's bridge holds slots only within one of
 *   its turns) and nothing more is harvested: the NIC's own ring fills and the NIC counts its
 *   drops (MPC), which is the back-pressure Ethernet has.
 *
 * One copy each way, in the container (the brief's fallback): the driver's pools are its own free
 * stacks inside the DMA windows, and lending those buffers across the process boundary would let
 * the manager's ownership of a buffer depend on the container's pool. The manager maps only the
 * ring memfd, which no device can reach.
 *
 * The rings follow sandbox/abi/ring.ts. Wake-ups: the manager's kick eventfd (TX or RX slots
 * posted while we had taken all before them, and were not polling) through the seam's poll, the
 * driver's `waitRx` (its MSI-X vector, or its 1 ms poll) in a loop, and, for POLL_WINDOW_MS after
 * the last frame moved, every event-loop turn (TXS_POLLED and RXF_POLLED say so to the manager).
 * The manager is notified once per turn, when either completion ring says so.
 */
import type { PollHandle, Sys } from 'linux-sys';
import type { NetDevice } from '../../../drivers/contract/net.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import type { Shared } from '../../abi/shm.js';
import { AbiError } from '../../abi/errors.js';
import { checkFormat } from '../../abi/format.js';
import { RingConsumer, RingProducer, type RingSink } from '../../abi/ring.js';
import { N, NET_BATCH, NET_FORMAT, NET_MAX_FRAME, NET_MIN_FRAME, NET_SLOT_BYTES, entry, netLayout, netRings, type NetLayout } from '../../abi/net.js';

/**
 * How long the server goes on looking at the rings and the driver on every event-loop turn after
 * the last frame moved (NAPI's busy polling): the next burst, or the TX descriptors the device has
 * just freed, are found at once instead of at the driver's next 1 ms poll or interrupt.
 */
const POLL_WINDOW_MS = 0.5;

export interface NicServerCounters {
  txFrames: number;
  rxFrames: number;
  bytes: number;
  /** TXS entries the manager posted that were impossible (slot or length): skipped. */
  badEntries: number;
  /** Received frames outside [14, 1514] bytes: dropped in the container. */
  oversized: number;
  /** Ring indices no correct manager could have written (that ring is then not read again). */
  violations: number;
}

export class NicServer {
  readonly layout: NetLayout;
  readonly counters: NicServerCounters = { txFrames: 0, rxFrames: 0, bytes: 0, badEntries: 0, oversized: 0, violations: 0 };
  private readonly u32: Uint32Array;
  /** Buffers over the ring and the driver's pools, made once: Buffer.copy moves a frame without making a view per frame. */
  private readonly ring: Buffer;
  private readonly txPool: Buffer;
  private readonly rxPool: Buffer;
  private readonly txBatch = new PacketBatch(NET_BATCH);
  private readonly rxBatch = new PacketBatch(NET_BATCH);
  private readonly txs: RingConsumer;
  private readonly txc: RingProducer;
  private readonly rxf: RingConsumer;
  private readonly rxc: RingProducer;
  private readonly txsSink: RingSink = { take: (at) => this.txTake(at) };
  private readonly rxfSink: RingSink = { take: (at) => this.rxFreeTake(at) };
  /** RX slots taken from RXF and not yet filled: taken as soon as seen, so a kick on RXF finds us caught up. */
  private readonly rxFree: Uint16Array;
  private rxFreeCount = 0;
  /** This turn: TXC entries written, and whether the driver refused a TX buffer. */
  private txPosted = 0;
  private txBlocked = false;
  /** Polling the rings every turn (TXS_POLLED and RXF_POLLED set), and when a frame last moved. */
  private polling = false;
  private lastWork = 0;
  private readonly pollTurnBound = (): void => this.pollTurn();
  private poller: PollHandle | undefined;
  private running = false;
  private loop: Promise<void> | null = null;
  private retry: NodeJS.Timeout | null = null;
  private again = false;
  private readonly onRetry = (): void => {
    this.retry = null;
    this.turn();
  };
  private readonly onAgain = (): void => {
    this.again = false;
    this.turn();
  };

  constructor(
    private readonly sys: Sys,
    shm: Shared,
    private readonly kickFd: number,
    private readonly notifyFd: number,
    private readonly nic: NetDevice,
  ) {
    const u = (this.u32 = shm.u32);
    this.ring = Buffer.from(shm.bytes.buffer, shm.bytes.byteOffset, shm.bytes.byteLength);
    const tw = nic.txPool.window.bytes,
      rw = nic.rxPool.window.bytes;
    this.txPool = Buffer.from(tw.buffer, tw.byteOffset, tw.byteLength);
    this.rxPool = Buffer.from(rw.buffer, rw.byteOffset, rw.byteLength);
    checkFormat(u, NET_FORMAT);
    if (u[N.SLOT_BYTES] !== NET_SLOT_BYTES || u[N.MAX_FRAME] !== NET_MAX_FRAME) {
      throw new AbiError(
        'ERR_ABI_GEOMETRY',
        `packet rings: slots of ${u[N.SLOT_BYTES]} bytes and frames up to ${u[N.MAX_FRAME]}, where this build has ${NET_SLOT_BYTES} and ${NET_MAX_FRAME}`,
      );
    }
    this.layout = netLayout({ txSlots: u[N.TX_SLOTS]!, rxSlots: u[N.RX_SLOTS]! });
    if (shm.size < this.layout.bytes)
      throw new AbiError('ERR_ABI_GEOMETRY', `packet rings: ${shm.size} bytes of shared memory, and the geometry in the header needs ${this.layout.bytes}`);
    const r = netRings(this.layout),
      violation = (): void => {
        this.counters.violations++;
      };
    this.txs = new RingConsumer(r.txs, violation);
    this.txs.bind(u, Atomics.load(u, N.TXS_HEAD));
    this.txc = new RingProducer(r.txc);
    this.txc.bind(u, Atomics.load(u, N.TXC_TAIL));
    this.rxf = new RingConsumer(r.rxf, violation);
    this.rxf.bind(u, Atomics.load(u, N.RXF_HEAD));
    this.rxc = new RingProducer(r.rxc);
    this.rxc.bind(u, Atomics.load(u, N.RXC_TAIL));
    this.rxFree = new Uint16Array(this.layout.rxSlots);
  }

  /** Publish the MAC and link, then serve. */
  start(): void {
    const u = this.u32,
      m = this.nic.mac;
    u[N.MAC_LO] = (m[0]! | (m[1]! << 8) | (m[2]! << 16) | (m[3]! << 24)) >>> 0;
    u[N.MAC_HI] = m[4]! | (m[5]! << 8);
    this.publishLink();
    Atomics.store(u, N.SERVING, 1);
    this.running = true;
    this.poller = this.sys.poll(this.kickFd, () => {
      this.sys.eventfdRead(this.kickFd);
      this.turn();
    });
    this.loop = this.rxLoop();
    this.turn();
  }

  /** Stop serving; resolves when the RX loop has ended (within its 50 ms wait). */
  async stop(): Promise<void> {
    this.running = false;
    this.poller?.close();
    this.poller = undefined;
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    Atomics.store(this.u32, N.SERVING, 0);
    await this.loop;
  }

  get frames(): number {
    return this.counters.txFrames + this.counters.rxFrames;
  }

  private publishLink(): void {
    Atomics.store(this.u32, N.LINK, this.nic.link().up ? 1 : 0);
  }

  private async rxLoop(): Promise<void> {
    let nextLink = 0;
    while (this.running) {
      await this.nic.waitRx(50);
      if (!this.running) break;
      const now = performance.now();
      if (now >= nextLink) {
        this.publishLink();
        nextLink = now + 200;
      }
      this.turn();
      // let the kick poll and timers run between batches
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /**
   * One turn each way; notify the manager once if a completion ring says so. A turn that moved a
   * frame starts (or extends) the polling window. Outside it, what was left is looked at again on
   * its own: TXS entries on the next event-loop turn, frames the driver's TX ring did not take
   * after 1 ms (no kick will come for either).
   */
  turn(): boolean {
    if (!this.running) return false;
    const before = this.counters.txFrames + this.counters.rxFrames + this.txs.head;
    const txNotify = this.txTurn(),
      rxNotify = this.rxTurn();
    if (txNotify || rxNotify) this.sys.eventfdWrite(this.notifyFd, 1n);
    const moved = this.counters.txFrames + this.counters.rxFrames + this.txs.head !== before;
    if (moved) {
      this.lastWork = performance.now();
      if (!this.polling) {
        this.polling = true;
        this.txs.setPolled(true);
        this.rxf.setPolled(true);
        setImmediate(this.pollTurnBound);
      }
    }
    if (this.polling) return moved;
    if (this.txBatch.count > 0 || this.txBlocked) {
      if (this.retry === null) this.retry = setTimeout(this.onRetry, 1);
    } else if (!this.again && this.txs.available() > 0) {
      this.again = true;
      setImmediate(this.onAgain);
    }
    return moved;
  }

  /**
   * A turn of the polling window (ring.ts, "Polling"): a turn that moved nothing gives the CPU
   * away (the manager, on the same CPU, may be what we wait for); once the window has passed with
   * nothing moving, POLLED back to 0 and one more look, which starts a new window if it found work.
   */
  private pollTurn(): void {
    const moved = this.turn();
    if (this.running && performance.now() - this.lastWork < POLL_WINDOW_MS) {
      if (!moved) this.sys.schedYield();
      setImmediate(this.pollTurnBound);
      return;
    }
    this.polling = false;
    this.txs.setPolled(false);
    this.rxf.setPolled(false);
    this.turn();
  }

  /** TXS -> driver TX buffers -> tx(); slots back on TXC. True when the manager must be notified. */
  private txTurn(): boolean {
    const b = this.txBatch,
      nic = this.nic;
    if (b.count > 0) this.counters.txFrames += nic.tx(b);
    this.txPosted = 0;
    this.txBlocked = false;
    this.txs.drain(this.txsSink, this.layout.txSlots);
    if (b.count > 0) this.counters.txFrames += nic.tx(b);
    return this.txc.post(this.txPosted);
  }

  /** One TXS entry (the sink): copy the frame into a driver TX buffer; the slot goes back at once. */
  private txTake(at: number): boolean {
    const u = this.u32,
      L = this.layout,
      b = this.txBatch,
      nic = this.nic;
    if (b.count >= b.capacity) return false;
    const e = u[at >>> 2]!;
    const slot = e & 0xffff,
      len = e >>> 16;
    if (slot >= L.txSlots || len < NET_MIN_FRAME || len > NET_MAX_FRAME) {
      this.counters.badEntries++;
      return true;
    }
    const buf = nic.txAlloc();
    if (buf < 0) {
      // no driver buffer now: the entry waits for the next turn
      this.txBlocked = true;
      return false;
    }
    const from = L.txArea + slot * NET_SLOT_BYTES;
    this.ring.copy(this.txPool, nic.txPool.offset(buf), from, from + len);
    b.push(buf, len);
    this.counters.bytes += len;
    u[this.txc.at(this.txPosted++) >>> 2] = slot;
    return true;
  }

  /** RXF -> our free RX slots; driver RX buffers -> those slots -> RXC. True when the manager must be notified. */
  private rxTurn(): boolean {
    const u = this.u32,
      L = this.layout,
      b = this.rxBatch,
      nic = this.nic;
    this.rxf.drain(this.rxfSink, L.rxSlots);
    if (b.count === 0) {
      if (this.rxFreeCount === 0) return false;
      nic.rx(b);
    }
    const pool = nic.rxPool,
      rxc = this.rxc;
    let k = 0;
    while (k < b.count && this.rxFreeCount > 0) {
      const len = b.len[k]!;
      if (len < NET_MIN_FRAME || len > NET_MAX_FRAME) {
        // a frame the manager would refuse (tagged or jumbo): dropped here and counted, order kept
        this.counters.oversized++;
        pool.free(b.buf[k]!);
        b.buf.copyWithin(k, k + 1, b.count);
        b.len.copyWithin(k, k + 1, b.count);
        b.count--;
        continue;
      }
      const slot = this.rxFree[--this.rxFreeCount]!;
      const off = pool.offset(b.buf[k]!);
      this.rxPool.copy(this.ring, L.rxArea + slot * NET_SLOT_BYTES, off, off + len);
      u[rxc.at(k) >>> 2] = entry(slot, len);
      this.counters.bytes += len;
      k++;
    }
    if (k < b.count) u[N.RX_NO_SLOT] = (u[N.RX_NO_SLOT]! + 1) >>> 0;
    // the driver's buffers of the frames copied go back to its pool; the rest wait in the batch
    for (let i = 0; i < k; i++) pool.free(b.buf[i]!);
    b.shift(k);
    this.counters.rxFrames += k;
    u[N.TX_FRAMES] = this.counters.txFrames >>> 0;
    u[N.RX_FRAMES] = this.counters.rxFrames >>> 0;
    return rxc.post(k);
  }

  /** One RXF entry (the sink): an empty RX slot is ours to fill. An impossible one is counted and skipped. */
  private rxFreeTake(at: number): boolean {
    const slot = this.u32[at >>> 2]!;
    if (slot >= this.layout.rxSlots || this.rxFreeCount >= this.layout.rxSlots) this.counters.badEntries++;
    else this.rxFree[this.rxFreeCount++] = slot;
    return true;
  }
}
