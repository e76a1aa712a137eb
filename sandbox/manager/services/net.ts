/**
 * SandboxNicPort: the manager's end of a NIC container's packet rings (layout.ts), as the NicPort
 * the TAP bridge (linkback/tap) drives. The bridge reads a frame from the TAP straight into a TX
 * slot of the ring memfd and writes a received frame to the TAP straight from an RX slot: no copy
 * in the manager; the container copies each frame once, between a slot and its driver's buffer.
 *
 * It outlives the containers of its sandbox: the ring memfd and its two eventfds are made once and
 * handed to every container (the net service, net-service.ts, publishes them); on a container's
 * exit (`onExit`) the port detaches (no frame is taken or given), takes back every slot and resets
 * the ring for the next one; on its READY (`onReady`) it checks what the container published and
 * attaches. A bridge joined with `join(bridge)`
 * is suspended at each exit and resumed at each READY (queued frames move to the next container,
 * frames lost with the old one counted in `lostInRestart`).
 *
 * Nothing the container writes is trusted. Each index it moves is bounded by the slots it holds;
 * each entry names a slot it owns (a slot it does not own, whether unknown or already returned,
 * is a violation), each length lies in [14, 1514]. A violation stops the port reading the ring at
 * once and kills the container (the supervisor then quarantines and restarts it), as the block
 * ring does.
 */
import { EFD_CLOEXEC, EFD_NONBLOCK, type PollHandle, type Sys } from 'linux-sys';
import { SandboxError } from '../errors.js';
import type { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { createShared, type Shared } from '../../abi/shm.js';
import { N, NET_MAGIC, NET_MAX_FRAME, NET_MIN_FRAME, NET_SLOT_BYTES, NET_VERSION, entry, netLayout, type NetGeometry, type NetLayout } from '../../abi/net.js';

/** Who the port serves: its sandbox's name, and where a violation goes (the container is then killed). */
export interface NicPortOwner {
  readonly name: string;
  violation(reason: string): void;
}

const TX_FREE = 0, TX_BRIDGE = 1, TX_CONTAINER = 2;
const RX_CONTAINER = 0, RX_BRIDGE = 1;

/** What a bridge joined to the port must offer (TapBridge has it). */
export interface SuspendableBridge {
  suspend(): Promise<void>;
  resume(port: SandboxNicPort): void;
  readonly isRunning: boolean;
}

export interface SandboxNicPortCounters {
  txFrames: number;
  rxFrames: number;
  txBytes: number;
  rxBytes: number;
  /** Frames posted to a container that died before taking them, or it had received and not yet handed over. */
  lostInRestart: number;
  /** Containers attached (READY seen and accepted). */
  attaches: number;
  /** Ring violations (each one killed its container). */
  violations: number;
  lastViolation: string | null;
}

export interface SandboxNicPortOptions {
  sys: Sys;
  geometry?: NetGeometry;
}

export class SandboxNicPort {
  readonly name: string;
  readonly mac = new Uint8Array(6);
  readonly maxFrame = NET_MAX_FRAME;
  readonly bufferSize = NET_SLOT_BYTES;
  readonly layout: NetLayout;
  readonly counters: SandboxNicPortCounters = { txFrames: 0, rxFrames: 0, txBytes: 0, rxBytes: 0, lostInRestart: 0, attaches: 0, violations: 0, lastViolation: null };
  private readonly sys: Sys;
  private readonly shm: Shared;
  private readonly u32: Uint32Array;
  /** manager -> container */
  readonly kickFd: number;
  /** container -> manager */
  readonly notifyFd: number;
  private readonly txState: Uint8Array;
  private readonly rxState: Uint8Array;
  private readonly txFreeStack: Uint16Array;
  private txFreeCount = 0;
  /** Slots the container holds: TX posted and not returned, RX given and not handed back. */
  private txHeld = 0;
  private rxHeld = 0;
  private txsTail = 0;
  private txcHead = 0;
  private rxfTail = 0;
  private rxcHead = 0;
  private attached = false;
  private everAttached = false;
  private poller: PollHandle | undefined;
  private waker: (() => void) | null = null;
  private bridge: SuspendableBridge | null = null;
  private transition: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly owner: NicPortOwner, options: SandboxNicPortOptions) {
    this.sys = options.sys;
    this.name = `sandbox:${owner.name}`;
    this.layout = netLayout(options.geometry ?? { txSlots: 256, rxSlots: 256 });
    const L = this.layout;
    this.shm = createShared(this.sys, `${owner.name}-net`, L.bytes);
    this.u32 = this.shm.u32;
    this.kickFd = this.sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    this.notifyFd = this.sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    this.txState = new Uint8Array(L.txSlots);
    this.rxState = new Uint8Array(L.rxSlots);
    this.txFreeStack = new Uint16Array(L.txSlots);
    for (let i = L.txSlots - 1; i >= 0; i--) this.txFreeStack[this.txFreeCount++] = i;
    this.resetRing();
  }

  /** What every container of the sandbox gets: the ring memfd (and its size), the kick and notify eventfds. */
  containerFds(): { ring: number; bytes: number; kick: number; notify: number } {
    return { ring: this.shm.fd, bytes: this.layout.bytes, kick: this.kickFd, notify: this.notifyFd };
  }

  /** Suspend `bridge` at every container exit and resume it at every READY (null: no more). */
  join(bridge: SuspendableBridge | null): void {
    this.bridge = bridge;
  }

  /** True while a container serves the ring. */
  get isAttached(): boolean {
    return this.attached;
  }

  // ---- NicPort ----

  linkUp(): boolean {
    return this.attached && Atomics.load(this.u32, N.LINK) === 1;
  }

  get txBytes(): Uint8Array {
    return this.shm.bytes;
  }

  txOffset(buf: number): number {
    return this.layout.txArea + buf * NET_SLOT_BYTES;
  }

  txAlloc(): number {
    if (this.txFreeCount === 0 && this.attached) this.reapTx();
    if (this.txFreeCount === 0) return -1;
    const slot = this.txFreeStack[--this.txFreeCount]!;
    this.txState[slot] = TX_BRIDGE;
    return slot;
  }

  txFree(buf: number): void {
    if (!Number.isInteger(buf) || buf < 0 || buf >= this.layout.txSlots || this.txState[buf] !== TX_BRIDGE) {
      throw new SandboxError('ERR_SANDBOX_NET_ARG', `${this.name}: txFree(${buf}): not a TX slot the bridge holds`);
    }
    this.txState[buf] = TX_FREE;
    this.txFreeStack[this.txFreeCount++] = buf;
  }

  tx(batch: PacketBatch): number {
    if (!this.attached) return 0;
    const u = this.u32, L = this.layout, base = L.txs >>> 2;
    const n = batch.count;
    for (let i = 0; i < n; i++) {
      const slot = batch.buf[i]!, len = batch.len[i]!;
      if (slot >= L.txSlots || this.txState[slot] !== TX_BRIDGE || len < NET_MIN_FRAME || len > NET_MAX_FRAME) {
        throw new SandboxError('ERR_SANDBOX_NET_ARG', `${this.name}: tx() of slot ${slot} length ${len}: not a TX slot the bridge holds, or a length outside ${NET_MIN_FRAME}..${NET_MAX_FRAME}`);
      }
      u[base + (this.txsTail % L.txSlots)] = entry(slot, len);
      this.txsTail = (this.txsTail + 1) >>> 0;
      this.txState[slot] = TX_CONTAINER;
      this.counters.txBytes += len;
    }
    this.txHeld += n;
    this.counters.txFrames += n;
    Atomics.store(u, N.TXS_TAIL, this.txsTail);
    if (n > 0) this.sys.eventfdWrite(this.kickFd, 1n);
    batch.count = 0;
    return n;
  }

  get rxBytes(): Uint8Array {
    return this.shm.bytes;
  }

  rxOffset(buf: number): number {
    return this.layout.rxArea + buf * NET_SLOT_BYTES;
  }

  rx(batch: PacketBatch): number {
    if (!this.attached) return 0;
    this.reapTx();
    if (!this.attached) return 0;
    const u = this.u32, L = this.layout, base = L.rxc >>> 2;
    const tail = Atomics.load(u, N.RXC_TAIL);
    const avail = (tail - this.rxcHead) >>> 0;
    if (avail > this.rxHeld) return this.violation(`RX completion index moved by ${avail} while the container holds ${this.rxHeld} RX slots`);
    let k = 0, bad: string | null = null;
    while (k < avail && batch.count < batch.capacity) {
      const e = u[base + (this.rxcHead % L.rxSlots)]!;
      const slot = e & 0xffff, len = e >>> 16;
      if (slot >= L.rxSlots) { bad = `RX completion names slot ${slot}; there are ${L.rxSlots}`; break; }
      if (this.rxState[slot] !== RX_CONTAINER) { bad = `RX completion names slot ${slot}, which the container does not hold (a duplicate)`; break; }
      if (len < NET_MIN_FRAME || len > NET_MAX_FRAME) { bad = `RX completion of ${len} bytes in slot ${slot}; a frame is ${NET_MIN_FRAME} to ${NET_MAX_FRAME} bytes`; break; }
      this.rxState[slot] = RX_BRIDGE;
      this.rxHeld--;
      this.rxcHead = (this.rxcHead + 1) >>> 0;
      batch.push(slot, len);
      this.counters.rxBytes += len;
      k++;
    }
    Atomics.store(u, N.RXC_HEAD, this.rxcHead);
    this.counters.rxFrames += k;
    // the frames checked so far are good and go out; nothing after a bad entry is read
    if (bad !== null) this.violation(bad);
    return k;
  }

  rxFree(batch: PacketBatch): void {
    const u = this.u32, L = this.layout, base = L.rxf >>> 2;
    for (let i = 0; i < batch.count; i++) {
      const slot = batch.buf[i]!;
      if (slot >= L.rxSlots || this.rxState[slot] !== RX_BRIDGE) {
        throw new SandboxError('ERR_SANDBOX_NET_ARG', `${this.name}: rxFree of slot ${slot}, which the bridge does not hold`);
      }
      this.rxState[slot] = RX_CONTAINER;
      u[base + (this.rxfTail % L.rxSlots)] = slot;
      this.rxfTail = (this.rxfTail + 1) >>> 0;
    }
    this.rxHeld += batch.count;
    Atomics.store(u, N.RXF_TAIL, this.rxfTail);
    if (batch.count > 0 && this.attached) this.sys.eventfdWrite(this.kickFd, 1n);
    batch.count = 0;
  }

  waitRx(timeoutMs: number): Promise<boolean> {
    if (this.attached && Atomics.load(this.u32, N.RXC_TAIL) !== this.rxcHead) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waker = null; resolve(false); }, Math.max(0, timeoutMs));
      this.waker = () => {
        clearTimeout(t);
        resolve(this.attached && Atomics.load(this.u32, N.RXC_TAIL) !== this.rxcHead);
      };
    });
  }

  // ---- container lifecycle ----

  /** A container said READY: check what it published and attach; a lie is a violation (the container is killed). */
  onReady(): void {
    if (this.closed || this.attached) return;
    const u = this.u32;
    if (Atomics.load(u, N.SERVING) !== 1) {
      this.violation('READY without the packet ring served (SERVING is not 1)');
      return;
    }
    const lo = u[N.MAC_LO]!, hi = u[N.MAC_HI]!;
    const mac = [lo & 0xff, (lo >>> 8) & 0xff, (lo >>> 16) & 0xff, lo >>> 24, hi & 0xff, (hi >>> 8) & 0xff];
    if ((mac[0]! & 1) !== 0 || mac.every((b) => b === 0) || hi > 0xffff) {
      this.violation(`the container published MAC ${mac.map((b) => b.toString(16).padStart(2, '0')).join(':')}: not a unicast station address`);
      return;
    }
    if (this.everAttached && mac.some((b, i) => b !== this.mac[i])) {
      this.violation('the restarted container published another MAC than the device had (the TAP keeps the first)');
      return;
    }
    this.mac.set(mac);
    this.everAttached = true;
    this.attached = true;
    this.counters.attaches++;
    this.poller = this.sys.poll(this.notifyFd, () => {
      this.sys.eventfdRead(this.notifyFd);
      const w = this.waker;
      if (w !== null) { this.waker = null; w(); }
    });
    const bridge = this.bridge;
    if (bridge !== null && this.counters.attaches > 1) {
      this.transition = this.transition.then(() => { if (!this.closed && this.attached) bridge.resume(this); }).catch(() => undefined);
    }
  }

  /** The container is gone: detach, take every slot back, reset the ring for the next one. */
  onExit(): void {
    this.detach();
    // Every TX slot the dead container held, and every RX frame it handed over that was not yet taken, is lost.
    const handed = (Atomics.load(this.u32, N.RXC_TAIL) - this.rxcHead) >>> 0;
    this.counters.lostInRestart += this.txHeld + (handed <= this.rxHeld ? handed : 0);
    for (let i = 0; i < this.layout.txSlots; i++) {
      if (this.txState[i] === TX_CONTAINER) { this.txState[i] = TX_FREE; this.txFreeStack[this.txFreeCount++] = i; }
    }
    this.resetRing();
    const bridge = this.bridge;
    if (bridge !== null && bridge.isRunning) {
      this.transition = this.transition.then(() => bridge.suspend()).catch(() => undefined);
    }
  }

  /** Stop reading the ring (a violation, an exit, close). */
  private detach(): void {
    this.attached = false;
    this.poller?.close();
    this.poller = undefined;
    const w = this.waker;
    if (w !== null) { this.waker = null; w(); }
  }

  /** A fresh ring for the next container: every RX slot offered on RXF, nothing submitted. */
  private resetRing(): void {
    const u = this.u32, L = this.layout;
    this.shm.bytes.fill(0, 0, L.txArea);
    u[N.MAGIC] = NET_MAGIC;
    u[N.VERSION] = NET_VERSION;
    u[N.TX_SLOTS] = L.txSlots;
    u[N.RX_SLOTS] = L.rxSlots;
    u[N.SLOT_BYTES] = NET_SLOT_BYTES;
    u[N.MAX_FRAME] = NET_MAX_FRAME;
    this.txsTail = this.txcHead = this.rxcHead = 0;
    this.txHeld = 0;
    for (let i = 0; i < L.rxSlots; i++) {
      this.rxState[i] = RX_CONTAINER;
      u[(L.rxf >>> 2) + i] = i;
    }
    this.rxfTail = L.rxSlots;
    this.rxHeld = L.rxSlots;
    Atomics.store(u, N.RXF_TAIL, this.rxfTail);
    this.sys.eventfdRead(this.kickFd);
    this.sys.eventfdRead(this.notifyFd);
  }

  /** TXC: slots the container copied out come back to the free stack. */
  private reapTx(): void {
    const u = this.u32, L = this.layout, base = L.txc >>> 2;
    const tail = Atomics.load(u, N.TXC_TAIL);
    const n = (tail - this.txcHead) >>> 0;
    if (n === 0) return;
    if (n > this.txHeld) { this.violation(`TX completion index moved by ${n} while the container holds ${this.txHeld} TX slots`); return; }
    for (let i = 0; i < n; i++) {
      const slot = u[base + (this.txcHead % L.txSlots)]!;
      if (slot >= L.txSlots) { this.violation(`TX completion names slot ${slot}; there are ${L.txSlots}`); return; }
      if (this.txState[slot] !== TX_CONTAINER) { this.violation(`TX completion names slot ${slot}, which the container does not hold (a duplicate or never posted)`); return; }
      this.txState[slot] = TX_FREE;
      this.txFreeStack[this.txFreeCount++] = slot;
      this.txHeld--;
      this.txcHead = (this.txcHead + 1) >>> 0;
    }
    Atomics.store(u, N.TXC_HEAD, this.txcHead);
  }

  private violation(reason: string): 0 {
    this.counters.violations++;
    this.counters.lastViolation = reason;
    this.detach();
    this.owner.violation(`net ring: ${reason}`);
    return 0;
  }

  /** Counters the container published (informational, untrusted). */
  containerCounters(): { txFrames: number; rxFrames: number; rxNoSlot: number } {
    const u = this.u32;
    return { txFrames: u[N.TX_FRAMES]!, rxFrames: u[N.RX_FRAMES]!, rxNoSlot: u[N.RX_NO_SLOT]! };
  }

  /** Release the ring (after the sandbox stopped). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    this.shm.close();
    this.sys.close(this.kickFd);
    this.sys.close(this.notifyFd);
  }
}
