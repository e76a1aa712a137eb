/**
 * The TAP linkback: a TAP interface on the host and a NIC driver, joined frame for frame.
 *
 *   host stack -> TAP fd -> (read into a NIC TX buffer) -> queue -> NicPort.tx -> wire
 *   wire -> NicPort.rx -> (write from the NIC RX buffer) -> TAP fd -> host stack
 *
 * Driven by two events: the TAP fd becoming readable (the seam's poll, level-triggered) and the
 * NIC's `waitRx` (its MSI-X interrupt or its polling). Up to `batch` frames move per turn each way;
 * a full batch yields to the event loop before the next, so neither direction starves the other.
 *
 * No copy and no allocation per frame: a frame read from the TAP lands in a TX buffer the NIC lent
 * (inside its DMA window), and a received frame is written to the TAP from its RX buffer; the queue
 * is a preallocated PacketBatch with a parallel Uint32Array of lengths and classes.
 *
 * Back-pressure. When the NIC takes fewer frames than offered (TX ring full, a driver restarting),
 * the rest stay queued, in order, and are offered again every `retryMs`; nothing is dropped for
 * that. Only when the queue itself is full does `whenFull` decide: 'wait' (default) stops reading
 * the TAP, so frames wait in the host's queue (which drops, and counts in the interface's
 * tx_dropped, only when its own txqueuelen overflows); 'drop' keeps reading and drops, counting
 * `queueDrops`. A NIC with no TX buffer free counts as a full queue.
 *
 * The bridge owns neither end: stop() detaches it (orderly: no more reads, the RX loop ends within
 * `waitMs`, queued TX buffers go back to the NIC and are counted in `stopDrops`); closing the TAP
 * and the NIC is the caller's.
 */
import { TapError } from './errors.js';
import { PacketBatch } from '../../drivers/contract/packet-batch.js';
import type { NicPort } from './nic-port.js';
import type { FrameIo } from './tun.js';

export interface TapBridgeOptions {
  /** Frames per turn each way, 1 to 256. Default 32. */
  batch?: number;
  /** Frames read from the TAP and waiting for the NIC, at least `batch`, at most 65536. Default 256. */
  queueFrames?: number;
  /** When the queue is full: 'wait' (stop reading the TAP, default) or 'drop' (read and drop). */
  whenFull?: 'wait' | 'drop';
  /** Interval of TX retries while frames are queued, ms, 1 to 1000. Default 1. */
  retryMs?: number;
  /** Longest single wait on the NIC's RX, ms (bounds stop() and link checks), 1 to 1000. Default 50. */
  waitMs?: number;
  /** Mirror the NIC's link to the TAP's carrier (TUNSETCARRIER). Default true. */
  mirrorLink?: boolean;
  /** Called with each port or TAP error (the bridge counts it and carries on, unless it says it stopped). */
  onError?: (error: unknown) => void;
}

/** Frame classes counted each way: enough to check ARP/ICMP flows and see what else passes. */
export interface ClassCounters {
  arp: number;
  /** IPv4 ICMP (protocol 1). */
  icmp: number;
  /** IPv4, ICMP excluded. */
  ipv4: number;
  ipv6: number;
  other: number;
}

export interface DirectionCounters extends ClassCounters {
  frames: number;
  bytes: number;
}

export interface TapBridgeCounters {
  /** Frames the NIC accepted from the TAP. */
  toNic: DirectionCounters;
  /** Frames written to the TAP from the NIC. */
  toTap: DirectionCounters;
  /** Frames read from the TAP and dropped because the queue was full (whenFull 'drop'). */
  queueDrops: number;
  /** Frames from the TAP shorter than an Ethernet header or longer than the NIC's largest frame. */
  malformedFromTap: number;
  /** Frames from the NIC the bridge refused: length out of range or buffer outside the port's memory. */
  malformedFromNic: number;
  /** Frames still queued when stop() was called (their buffers went back to the NIC). */
  stopDrops: number;
  /** Turns on which the NIC took fewer frames than offered (back-pressure, not loss). */
  stalls: number;
  /** Turns on which the queue was full ('wait': the TAP was paused). */
  queueFull: number;
  tapReadErrors: number;
  tapWriteErrors: number;
  portErrors: number;
  linkChanges: number;
  /** Ports replaced under the running bridge (driver restarts: suspend + resume). */
  portSwaps: number;
  /** Queued frames lost at a restart: the old port's memory was gone, or the new port had no buffer for them. */
  swapDrops: number;
  /** Frames queued now. */
  queued: number;
}

// Per-direction slots in a Float64Array (exact integers up to 2^53).
const FRAMES = 0, BYTES = 1, ARP = 2, ICMP = 3, IPV4 = 4, IPV6 = 5, OTHER = 6, SLOTS = 7;
const ETH_HEADER = 14;
const ETHERTYPE_VLAN = 0x8100, ETHERTYPE_ARP = 0x0806, ETHERTYPE_IPV4 = 0x0800, ETHERTYPE_IPV6 = 0x86dd;
const IP_PROTO_ICMP = 1;

/** The class slot of a frame (ARP..OTHER), looking through one 802.1Q tag. */
export function frameClass(b: Uint8Array, off: number, len: number): number {
  let h = off + 12;
  let type = (b[h]! << 8) | b[h + 1]!;
  if (type === ETHERTYPE_VLAN && len >= ETH_HEADER + 4) {
    h += 4;
    type = (b[h]! << 8) | b[h + 1]!;
  }
  if (type === ETHERTYPE_ARP) return ARP;
  if (type === ETHERTYPE_IPV4) {
    // IPv4 protocol field: byte 9 of the IP header, which starts after the ethertype.
    return h + 2 + 9 < off + len && b[h + 2 + 9] === IP_PROTO_ICMP ? ICMP : IPV4;
  }
  return type === ETHERTYPE_IPV6 ? IPV6 : OTHER;
}

function count(c: Float64Array, cls: number, len: number): void {
  c[FRAMES]!++;
  c[BYTES]! += len;
  c[cls]!++;
}

function snapshot(c: Float64Array): DirectionCounters {
  return { frames: c[FRAMES]!, bytes: c[BYTES]!, arp: c[ARP]!, icmp: c[ICMP]!, ipv4: c[IPV4]!, ipv6: c[IPV6]!, other: c[OTHER]! };
}

function intOption(name: string, v: number | undefined, dflt: number, min: number, max: number): number {
  const n = v ?? dflt;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new TapError('ERR_TAP_ARG', `TAP bridge: ${name} = ${String(v)} must be an integer from ${min} to ${max} (default ${dflt})`);
  }
  return n;
}

function checkPort(port: NicPort): void {
  if (!Number.isInteger(port.bufferSize) || port.bufferSize < port.maxFrame || port.maxFrame < ETH_HEADER) {
    throw new TapError('ERR_TAP_PORT', `TAP bridge: port ${port.name} has bufferSize ${port.bufferSize} and maxFrame ${port.maxFrame}; buffers must hold a whole frame`);
  }
}

export class TapBridge {
  readonly io: FrameIo;
  private nic: NicPort;
  private readonly batch: number;
  private readonly whenFull: 'wait' | 'drop';
  private readonly retryMs: number;
  private readonly waitMs: number;
  private readonly mirrorLink: boolean;
  private readonly onError: ((error: unknown) => void) | undefined;

  /** Frames read from the TAP, waiting for the NIC: buffer indices and lengths (the port's view). */
  private readonly queue: PacketBatch;
  /** Parallel to the queue: (length << 3) | class, kept by the bridge so accounting needs no trust in the port. */
  private readonly meta: Uint32Array;
  private readonly rxBatch: PacketBatch;
  private readonly toNic = new Float64Array(SLOTS);
  private readonly toTap = new Float64Array(SLOTS);
  private readonly c = {
    queueDrops: 0, malformedFromTap: 0, malformedFromNic: 0, stopDrops: 0, stalls: 0, queueFull: 0,
    tapReadErrors: 0, tapWriteErrors: 0, portErrors: 0, linkChanges: 0, portSwaps: 0, swapDrops: 0,
  };
  /** For 'drop' mode: where frames that have no room go. */
  private scratch: Uint8Array | null = null;

  private running = false;
  private stopping = false;
  private suspending = false;
  private suspended = false;
  /** Frames held across a suspension (a driver restart): `heldSlot` bytes per queue entry. */
  private held: Uint8Array | null = null;
  private heldSlot = 0;
  private watching = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryArmed = false;
  private backingOff = false;
  private backoffTimer: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;
  private link: boolean | null = null;
  private readonly pumpTapBound = (): void => this.pumpTap();
  private readonly onRetryBound = (): void => { this.retryArmed = false; this.pumpTap(); };

  constructor(io: FrameIo, port: NicPort, options: TapBridgeOptions = {}) {
    this.io = io;
    this.nic = port;
    this.batch = intOption('batch', options.batch, 32, 1, 256);
    const queueFrames = intOption('queueFrames', options.queueFrames, 256, this.batch, 65536);
    this.retryMs = intOption('retryMs', options.retryMs, 1, 1, 1000);
    this.waitMs = intOption('waitMs', options.waitMs, 50, 1, 1000);
    const whenFull = options.whenFull ?? 'wait';
    if (whenFull !== 'wait' && whenFull !== 'drop') {
      throw new TapError('ERR_TAP_ARG', `TAP bridge: whenFull = ${String(whenFull)} must be 'wait' or 'drop'`);
    }
    this.whenFull = whenFull;
    this.mirrorLink = options.mirrorLink ?? true;
    this.onError = options.onError;
    checkPort(port);
    this.queue = new PacketBatch(queueFrames);
    this.meta = new Uint32Array(queueFrames);
    this.rxBatch = new PacketBatch(this.batch);
  }

  /** The NIC port frames go to and come from now (replacePort changes it). */
  get port(): NicPort {
    return this.nic;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Start moving frames both ways. */
  start(): void {
    if (this.running) return;
    if (this.suspended || this.suspending) throw new TapError('ERR_TAP_ARG', `TAP bridge ${this.io.name}: suspended; carry on with resume(port)`);
    if (this.loop !== null) throw new TapError('ERR_TAP_CLOSED', `TAP bridge ${this.io.name}: stopped bridges do not restart; make a new one`);
    this.running = true;
    this.checkLink();
    this.resumeTap();
    this.loop = this.rxLoop();
  }

  /**
   * A driver restart, first half: detach from the NIC port while the TAP stays (the host keeps its
   * interface, addresses and routes, and sees a pause, not a failure). Reading the TAP pauses
   * (frames wait in the host's queue), the RX loop ends (within `waitMs`), and frames still queued
   * are copied out of the port's TX buffers into the bridge's own holding area (allocated once, at
   * the first suspension) and their buffers given back if the port still answers. When this
   * resolves the bridge holds no buffer and no view of the port: the old driver may close and
   * unmap its windows. Frames the old driver had already accepted are the old device's: Ethernet
   * is best effort, and the peers' protocols resend.
   */
  async suspend(): Promise<void> {
    if (this.loop === null || this.stopping) {
      throw new TapError('ERR_TAP_CLOSED', `TAP bridge ${this.io.name}: suspend on a bridge that is not running`);
    }
    if (this.suspended || this.suspending) throw new TapError('ERR_TAP_ARG', `TAP bridge ${this.io.name}: already suspended (resume it with the new port)`);
    this.suspending = true;
    try {
      this.running = false;
      this.pauseTap();
      this.clearTimers();
      await this.loop;
      if (this.stopping) return;
      this.holdQueue(this.nic);
      this.suspended = true;
    } finally {
      this.suspending = false;
    }
  }

  /**
   * A driver restart, second half: carry on with `next` (the restarted driver's port). Held frames
   * are copied into its TX buffers, in order, and offered first (a frame it has no buffer for, or
   * longer than its maxFrame, is counted in `swapDrops`); its link is mirrored afresh.
   */
  resume(next: NicPort): void {
    if (!this.suspended || this.stopping) {
      throw new TapError('ERR_TAP_ARG', `TAP bridge ${this.io.name}: resume() needs a suspended bridge (call suspend() first)`);
    }
    checkPort(next);
    const q = this.queue, meta = this.meta, held = this.held!, slot = this.heldSlot;
    const bytes = next.txBytes;
    let kept = 0;
    for (let i = 0; i < q.count; i++) {
      const len = q.len[i]!, m = meta[i]!, from = q.buf[i]! * slot;
      const nb = len <= next.maxFrame ? next.txAlloc() : -1;
      if (nb < 0) { this.c.swapDrops++; continue; }
      bytes.set(held.subarray(from, from + len), next.txOffset(nb));
      q.buf[kept] = nb;
      q.len[kept] = len;
      meta[kept] = m;
      kept++;
    }
    q.count = kept;
    this.nic = next;
    this.link = null;
    this.suspended = false;
    this.c.portSwaps++;
    this.running = true;
    this.checkLink();
    this.resumeTap();
    if (q.count > 0) this.armRetry();
    this.loop = this.rxLoop();
  }

  /** suspend() then resume(next), for a port replaced while the old one is still open. */
  async replacePort(next: NicPort): Promise<void> {
    checkPort(next);
    await this.suspend();
    if (this.stopping) return;
    this.resume(next);
  }

  /** Queued frames out of the port's TX buffers into the holding area; queue entries become slot indices. */
  private holdQueue(old: NicPort): void {
    const q = this.queue, meta = this.meta;
    if (this.held === null) {
      this.heldSlot = old.maxFrame;
      this.held = new Uint8Array(q.capacity * this.heldSlot);
    }
    const held = this.held, slot = this.heldSlot;
    let oldBytes: Uint8Array | null = null;
    try { oldBytes = old.txBytes; } catch { /* the old port is gone with its memory */ }
    let kept = 0;
    for (let i = 0; i < q.count; i++) {
      const buf = q.buf[i]!, len = q.len[i]!, m = meta[i]!;
      let src = -1;
      try { src = old.txOffset(buf); } catch { /* as above */ }
      if (oldBytes !== null && src >= 0 && src + len <= oldBytes.length && len <= slot) {
        held.set(oldBytes.subarray(src, src + len), kept * slot);
        q.buf[kept] = kept;
        q.len[kept] = len;
        meta[kept] = m;
        kept++;
      } else {
        this.c.swapDrops++;
      }
      try { old.txFree(buf); } catch { /* a dead port's buffers die with it */ }
    }
    q.count = kept;
  }

  /** Stop: no more reads or writes; resolves once the RX loop has ended (within `waitMs`). Idempotent. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.running) {
      this.running = false;
      this.pauseTap();
      this.clearTimers();
    }
    if (this.loop !== null) await this.loop;
    const q = this.queue;
    if (q.count > 0) {
      // Suspended, the queue holds slots of the holding area, not port buffers.
      if (!this.suspended) {
        for (let i = 0; i < q.count; i++) {
          try { this.port.txFree(q.buf[i]!); } catch (e) { this.portError(e); }
        }
      }
      this.c.stopDrops += q.count;
      q.clear();
    }
  }

  counters(): TapBridgeCounters {
    return { toNic: snapshot(this.toNic), toTap: snapshot(this.toTap), ...this.c, queued: this.queue.count };
  }

  // ---- TAP -> NIC ----

  /** Runs in the poll callback and in timers: nothing may escape it (an escape would be an uncaught exception). */
  private pumpTap(): void {
    try {
      this.pumpTapTurn();
    } catch (e) {
      // A port that throws from txAlloc/txOffset/txFree/txBytes (a dead driver): count, back off.
      this.portError(e);
      this.backOff();
    }
  }

  private pumpTapTurn(): void {
    if (!this.running) return;
    const port = this.port, io = this.io, q = this.queue, meta = this.meta;
    if (q.count > 0) this.offer();
    if (!this.running) return;
    const bytes = port.txBytes;
    const max = port.bufferSize;
    let read = 0;
    let full = false;
    // While backing off a failing read, the retry timer still offers queued frames, but reads nothing.
    while (read < this.batch && !this.backingOff) {
      if (q.count === q.capacity) { full = true; break; }
      const buf = port.txAlloc();
      if (buf < 0) { full = true; break; }
      const off = port.txOffset(buf);
      let n: number;
      try {
        n = io.read(bytes, off, max);
      } catch (e) {
        port.txFree(buf);
        this.c.tapReadErrors++;
        this.report(e);
        this.backOff();
        break;
      }
      if (n === 0) { port.txFree(buf); break; }
      read++;
      if (n < ETH_HEADER || n > port.maxFrame) {
        port.txFree(buf);
        this.c.malformedFromTap++;
        continue;
      }
      meta[q.count] = (n << 3) | frameClass(bytes, off, n);
      q.push(buf, n);
    }
    if (read > 0) this.offer();
    if (!this.running) return;
    if (full) {
      this.c.queueFull++;
      if (this.whenFull === 'drop') this.dropFromTap(this.batch - read);
      else this.pauseTap();
    } else if (!this.watching && !this.backingOff) {
      this.resumeTap();
    }
    // Queued frames are offered again; a paused TAP (queue or NIC pool full) is looked at again.
    if (q.count > 0 || (!this.watching && !this.backingOff)) this.armRetry();
  }

  /**
   * A failing TAP read (the interface deleted under us) or a port that throws (a dead driver):
   * neither read nor retry for `waitMs`, then try again, so a lasting failure costs one attempt per
   * `waitMs`, never a spin.
   */
  private backOff(): void {
    if (this.backingOff || !this.running) return;
    this.backingOff = true;
    this.pauseTap();
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = null;
      this.backingOff = false;
      this.pumpTap();
    }, this.waitMs);
  }

  /** Offer the queue to the NIC; account what it took. */
  private offer(): void {
    const q = this.queue, meta = this.meta;
    const before = q.count;
    let k: number;
    try {
      k = this.port.tx(q);
    } catch (e) {
      this.portError(e);
      this.backOff();
      return;
    }
    if (!Number.isInteger(k) || k < 0 || k > before || q.count !== before - k) {
      this.fail(`tx() returned ${k} for ${before} frames offered and left ${q.count} in the batch; buffer ownership is lost`);
      return;
    }
    if (k === 0) { this.c.stalls++; return; }
    const c = this.toNic;
    for (let i = 0; i < k; i++) {
      const m = meta[i]!;
      count(c, m & 7, m >>> 3);
    }
    if (k < before) {
      meta.copyWithin(0, k, before);
      this.c.stalls++;
    }
  }

  /** whenFull 'drop': read up to `n` frames into scratch and drop them. */
  private dropFromTap(n: number): void {
    if (this.scratch === null) this.scratch = new Uint8Array(65536);
    const s = this.scratch;
    for (let i = 0; i < n; i++) {
      let got: number;
      try {
        got = this.io.read(s, 0, s.length);
      } catch (e) {
        this.c.tapReadErrors++;
        this.report(e);
        return;
      }
      if (got === 0) return;
      this.c.queueDrops++;
    }
  }

  private armRetry(): void {
    if (this.retryArmed || !this.running || this.backingOff) return;
    this.retryArmed = true;
    if (this.retryTimer === null) this.retryTimer = setTimeout(this.onRetryBound, this.retryMs);
    else this.retryTimer.refresh();
  }

  private pauseTap(): void {
    if (!this.watching) return;
    this.watching = false;
    this.io.unwatch();
  }

  private resumeTap(): void {
    if (this.watching || !this.running) return;
    this.watching = true;
    this.io.watch(this.pumpTapBound);
  }

  // ---- NIC -> TAP ----

  private async rxLoop(): Promise<void> {
    const port = this.port;
    let nextLinkCheck = 0;
    while (this.running) {
      let ready: boolean;
      try {
        ready = await port.waitRx(this.waitMs);
      } catch (e) {
        this.portError(e);
        await sleep(this.waitMs);
        continue;
      }
      if (!this.running) break;
      const now = performance.now();
      if (now >= nextLinkCheck) {
        this.checkLink();
        nextLinkCheck = now + this.waitMs;
      }
      if (!ready) continue;
      // Yield a whole event-loop turn after every drain (a port may say ready and give nothing:
      // awaiting only microtasks would starve the TAP side); after a throwing port, wait longer.
      if (this.drainRx() >= 0) await yieldTurn();
      else await sleep(this.waitMs);
    }
  }

  /** Move up to one batch from the NIC to the TAP; returns how many frames the NIC gave, -1 when the port threw. */
  private drainRx(): number {
    try {
      return this.drainRxTurn();
    } catch (e) {
      this.portError(e);
      return -1;
    }
  }

  private drainRxTurn(): number {
    const port = this.port, io = this.io, b = this.rxBatch;
    b.clear();
    const k = port.rx(b);
    if (!Number.isInteger(k) || k < 0 || k !== b.count) {
      this.fail(`rx() returned ${k} but the batch holds ${b.count} frames`);
      return 0;
    }
    const bytes = port.rxBytes;
    const max = port.maxFrame;
    const c = this.toTap;
    for (let i = 0; i < k; i++) {
      const len = b.len[i]!;
      const off = port.rxOffset(b.buf[i]!);
      if (len < ETH_HEADER || len > max || !(off >= 0) || off + len > bytes.length) {
        this.c.malformedFromNic++;
        continue;
      }
      if (io.write(bytes, off, len)) count(c, frameClass(bytes, off, len), len);
      else this.c.tapWriteErrors++;
    }
    port.rxFree(b);
    return k;
  }

  // ---- link and errors ----

  private checkLink(): void {
    if (!this.mirrorLink || this.io.setCarrier === undefined) return;
    let up: boolean;
    try {
      up = this.port.linkUp();
    } catch (e) {
      this.portError(e);
      return;
    }
    if (up === this.link) return;
    try {
      this.io.setCarrier(up);
      if (this.link !== null) this.c.linkChanges++;
      this.link = up;
    } catch (e) {
      this.c.tapWriteErrors++;
      this.report(e);
    }
  }

  private clearTimers(): void {
    if (this.retryTimer !== null) { clearTimeout(this.retryTimer); this.retryTimer = null; this.retryArmed = false; }
    if (this.backoffTimer !== null) { clearTimeout(this.backoffTimer); this.backoffTimer = null; this.backingOff = false; }
  }

  private portError(e: unknown): void {
    this.c.portErrors++;
    this.report(e);
  }

  /** A port broke the contract: stop (its buffers' owner is unknown) and report. */
  private fail(what: string): void {
    this.c.portErrors++;
    const err = new TapError('ERR_TAP_PORT', `TAP bridge ${this.io.name}: port ${this.port.name}: ${what}; the bridge stopped`, {
      fix: 'a NicPort must take frames from the batch front and return how many it took (see linkback/tap/nic-port.ts)',
    });
    this.running = false;
    this.pauseTap();
    this.clearTimers();
    this.queue.clear();
    this.report(err);
  }

  private report(e: unknown): void {
    if (this.onError !== undefined) {
      try { this.onError(e); } catch { /* a throwing observer must not break the data path */ }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function yieldTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
