/**
 * NicServer: the container's side of the packet rings (layout.ts). It moves frames between the
 * rings and a NIC driver (drivers/contract/net.ts NetDevice), up to NET_BATCH per turn each way:
 *
 * - TX: entries of TXS -> a driver TX buffer each (`txAlloc`, one copy from the slot into the DMA
 *   window), slot returned on TXC at once; then one `tx()` for the batch. Frames the driver's ring
 *   does not take stay in the batch, first in line next turn.
 * - RX: `rx()` harvests frames into the driver's RX buffers (the device wrote them there); each
 *   is copied into a slot taken from RXF and posted on RXC; the driver's buffer goes back to its
 *   pool. With no RX slot free, harvested frames wait in the batch (the manager's bridge holds
 *   slots only within one of its turns) and nothing more is harvested: the NIC's own ring fills
 *   and the NIC counts its drops (MPC), which is the back-pressure Ethernet has.
 *
 * One copy each way, in the container (the brief's fallback): the driver's pools are its own free
 * stacks inside the DMA windows, and lending those buffers across the process boundary would let
 * the manager's ownership of a buffer depend on the container's pool. The manager maps only the
 * ring memfd, which no device can reach.
 *
 * Wake-ups: the manager's kick eventfd (TX or RX slots posted) through the seam's poll, and the
 * driver's `waitRx` (its MSI-X vector, or its 1 ms poll) in a loop. A turn with frames left in
 * the TX batch (driver ring full) retries after 1 ms.
 */
import type { PollHandle, Sys } from 'linux-sys';
import type { NetDevice } from '../../../drivers/contract/net.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import type { Shared } from '../../abi/shm.js';
import { N, NET_BATCH, NET_MAGIC, NET_MAX_FRAME, NET_MIN_FRAME, NET_SLOT_BYTES, NET_VERSION, entry, netLayout, type NetLayout } from '../../abi/net.js';

export interface NicServerCounters {
  txFrames: number;
  rxFrames: number;
  bytes: number;
  /** TXS entries the manager posted that were impossible (slot or length): skipped. */
  badEntries: number;
  /** Received frames outside [14, 1514] bytes: dropped in the container. */
  oversized: number;
}

export class NicServer {
  readonly layout: NetLayout;
  readonly counters: NicServerCounters = { txFrames: 0, rxFrames: 0, bytes: 0, badEntries: 0, oversized: 0 };
  private readonly u32: Uint32Array;
  /** Buffers over the ring and the driver's pools, made once: Buffer.copy moves a frame without making a view per frame. */
  private readonly ring: Buffer;
  private readonly txPool: Buffer;
  private readonly rxPool: Buffer;
  private readonly txBatch = new PacketBatch(NET_BATCH);
  private readonly rxBatch = new PacketBatch(NET_BATCH);
  private txsHead: number;
  private txcTail: number;
  private rxfHead: number;
  private rxcTail: number;
  private poller: PollHandle | undefined;
  private running = false;
  private loop: Promise<void> | null = null;
  private retry: NodeJS.Timeout | null = null;
  private readonly onRetry = (): void => { this.retry = null; this.turn(); };

  constructor(private readonly sys: Sys, shm: Shared, private readonly kickFd: number, private readonly notifyFd: number, private readonly nic: NetDevice) {
    const u = (this.u32 = shm.u32);
    this.ring = Buffer.from(shm.bytes.buffer, shm.bytes.byteOffset, shm.bytes.byteLength);
    const tw = nic.txPool.window.bytes, rw = nic.rxPool.window.bytes;
    this.txPool = Buffer.from(tw.buffer, tw.byteOffset, tw.byteLength);
    this.rxPool = Buffer.from(rw.buffer, rw.byteOffset, rw.byteLength);
    if (u[N.MAGIC] !== NET_MAGIC || u[N.VERSION] !== NET_VERSION) {
      throw new RangeError(`net ring: magic 0x${u[N.MAGIC]!.toString(16)} version ${u[N.VERSION]} (expected 0x${NET_MAGIC.toString(16)} version ${NET_VERSION})`);
    }
    if (u[N.SLOT_BYTES] !== NET_SLOT_BYTES || u[N.MAX_FRAME] !== NET_MAX_FRAME) throw new RangeError('net ring: slot size or frame limit differs from this build');
    this.layout = netLayout({ txSlots: u[N.TX_SLOTS]!, rxSlots: u[N.RX_SLOTS]! });
    if (shm.size < this.layout.bytes) throw new RangeError(`net ring: ${shm.size} bytes, the geometry needs ${this.layout.bytes}`);
    this.txsHead = u[N.TXS_HEAD]!;
    this.txcTail = u[N.TXC_TAIL]!;
    this.rxfHead = u[N.RXF_HEAD]!;
    this.rxcTail = u[N.RXC_TAIL]!;
  }

  /** Publish the MAC and link, then serve. */
  start(): void {
    const u = this.u32, m = this.nic.mac;
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
      if (now >= nextLink) { this.publishLink(); nextLink = now + 200; }
      this.turn();
      // let the kick poll and timers run between batches
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** One turn each way; notify the manager once if anything was posted. */
  turn(): void {
    if (!this.running) return;
    const posted = this.txTurn() + this.rxTurn();
    if (posted > 0) this.sys.eventfdWrite(this.notifyFd, 1n);
    if (this.txBatch.count > 0 && this.retry === null) this.retry = setTimeout(this.onRetry, 1);
  }

  /** TXS -> driver TX buffers -> tx(). Returns the TXC entries posted. */
  private txTurn(): number {
    const u = this.u32, L = this.layout, b = this.txBatch, nic = this.nic;
    if (b.count > 0) this.counters.txFrames += nic.tx(b);
    const tail = Atomics.load(u, N.TXS_TAIL);
    let n = (tail - this.txsHead) >>> 0;
    if (n > L.txSlots) n = L.txSlots; // a confused manager: at most one ring's worth
    let posted = 0;
    const txcBase = L.txc >>> 2;
    while (n > 0 && b.count < b.capacity) {
      const e = u[(L.txs >>> 2) + (this.txsHead % L.txSlots)]!;
      const slot = e & 0xffff, len = e >>> 16;
      if (slot >= L.txSlots || len < NET_MIN_FRAME || len > NET_MAX_FRAME) {
        this.counters.badEntries++;
      } else {
        const buf = nic.txAlloc();
        if (buf < 0) break; // no driver buffer now: leave the entry for the next turn
        const from = L.txArea + slot * NET_SLOT_BYTES;
        this.ring.copy(this.txPool, nic.txPool.offset(buf), from, from + len);
        b.push(buf, len);
        this.counters.bytes += len;
        u[txcBase + (this.txcTail % L.txSlots)] = slot;
        this.txcTail = (this.txcTail + 1) >>> 0;
        posted++;
      }
      this.txsHead = (this.txsHead + 1) >>> 0;
      n--;
    }
    Atomics.store(u, N.TXS_HEAD, this.txsHead);
    if (posted > 0) Atomics.store(u, N.TXC_TAIL, this.txcTail);
    if (b.count > 0) this.counters.txFrames += nic.tx(b);
    return posted;
  }

  /** Driver RX buffers -> RX slots from RXF -> RXC. Returns the RXC entries posted. */
  private rxTurn(): number {
    const u = this.u32, L = this.layout, b = this.rxBatch, nic = this.nic;
    let free = (Atomics.load(u, N.RXF_TAIL) - this.rxfHead) >>> 0;
    if (free > L.rxSlots) free = L.rxSlots;
    if (b.count === 0) {
      if (free === 0) return 0;
      nic.rx(b);
    }
    const pool = nic.rxPool, rxcBase = L.rxc >>> 2, rxfBase = L.rxf >>> 2;
    let k = 0;
    while (k < b.count && free > 0) {
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
      const slot = u[rxfBase + (this.rxfHead % L.rxSlots)]!;
      this.rxfHead = (this.rxfHead + 1) >>> 0;
      free--;
      if (slot >= L.rxSlots) { this.counters.badEntries++; continue; }
      const off = pool.offset(b.buf[k]!);
      this.rxPool.copy(this.ring, L.rxArea + slot * NET_SLOT_BYTES, off, off + len);
      u[rxcBase + (this.rxcTail % L.rxSlots)] = entry(slot, len);
      this.rxcTail = (this.rxcTail + 1) >>> 0;
      this.counters.bytes += len;
      k++;
    }
    Atomics.store(u, N.RXF_HEAD, this.rxfHead);
    if (k > 0) Atomics.store(u, N.RXC_TAIL, this.rxcTail);
    if (k < b.count) u[N.RX_NO_SLOT] = (u[N.RX_NO_SLOT]! + 1) >>> 0;
    // the driver's buffers of the frames copied go back to its pool; the rest wait in the batch
    for (let i = 0; i < k; i++) pool.free(b.buf[i]!);
    b.shift(k);
    this.counters.rxFrames += k;
    u[N.TX_FRAMES] = this.counters.txFrames >>> 0;
    u[N.RX_FRAMES] = this.counters.rxFrames >>> 0;
    return k;
  }
}
