/**
 * SandboxNicPort: the manager's end of a NIC container's packet rings (sandbox/abi/net.ts), as the NicPort
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
 * The four rings follow sandbox/abi/ring.ts (kicks, violations). Nothing the container writes is
 * trusted. Each index it moves is bounded by the slots it holds; each entry names a slot it owns
 * (a slot it does not own, whether unknown or already returned, is a violation), each length lies
 * in [14, 1514]. A violation stops the port reading the ring at once and kills the container (the
 * supervisor then quarantines and restarts it), as the block ring does.
 *
 * Addresses. To the host the TAP *is* the NIC (it carries the NIC's MAC, `mac`), so a frame the
 * container hands over for the TAP is one the NIC received from its wire: it must come from another
 * station and be addressed to this one. A frame whose source is the sandbox's own MAC (the host
 * would see its own address sending to it: a spoof of the host, and of a bridge's forwarding
 * table), whose source is a group address (no station sends from one), or whose destination is
 * another station's unicast address (a NIC delivers only its own, broadcast and multicast) is
 * dropped and counted (`spoofed`), its slot offered back to the container at once. More than
 * `spoofLimit` of them within a second is a violation: a NIC does not receive such frames by
 * accident.
 */
import { EFD_CLOEXEC, EFD_NONBLOCK, type PollHandle, type Sys } from 'linux-sys';
import { SandboxError } from '../errors.js';
import type { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { createShared, type Shared } from '../../abi/shm.js';
import { formatProblem, writeFormat } from '../../abi/format.js';
import { RingConsumer, RingProducer, type RingSink } from '../../abi/ring.js';
import { N, NET_FORMAT, NET_MAX_FRAME, NET_MIN_FRAME, NET_SLOT_BYTES, entry, netLayout, netRings, type NetGeometry, type NetLayout } from '../../abi/net.js';

/** Who the port serves: its sandbox's name, and where a violation goes (the container is then killed). */
export interface NicPortOwner {
  readonly name: string;
  violation(reason: string): void;
}

/**
 * TX completions taken per call (rx() and txAlloc() reap them): one sandbox's ring, however large,
 * takes a bounded share of the manager's turn; RX is bounded by the bridge's batch.
 */
const TX_REAP_PER_CALL = 256;

const TX_FREE = 0,
  TX_BRIDGE = 1,
  TX_CONTAINER = 2;
const RX_CONTAINER = 0,
  RX_BRIDGE = 1,
  /** Handed over with a forged frame, to be offered back once the drain ends (a second entry naming it is a duplicate). */
  RX_REFUSED = 2;

/** What a bridge joined to the port must offer (TapBridge has it). */
export interface SuspendableBridge {
  suspend(): Promise<void>;
  resume(port: SandboxNicPort): void;
  readonly isRunning: boolean;
  /** `failed`: it stopped moving frames after a port broke its contract; a suspend and a resume with a working port revive it. */
  readonly state: string;
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
  /** Frames dropped for their addresses (the sandbox's MAC or a group address as source, another station as destination). */
  spoofed: number;
}

export interface SandboxNicPortOptions {
  sys: Sys;
  geometry?: NetGeometry;
  /** Frames with forged addresses tolerated within a second (default 64); one more is a violation. */
  spoofLimit?: number;
}

export class SandboxNicPort {
  readonly name: string;
  readonly mac = new Uint8Array(6);
  readonly maxFrame = NET_MAX_FRAME;
  readonly bufferSize = NET_SLOT_BYTES;
  readonly layout: NetLayout;
  readonly counters: SandboxNicPortCounters = {
    txFrames: 0,
    rxFrames: 0,
    txBytes: 0,
    rxBytes: 0,
    lostInRestart: 0,
    attaches: 0,
    violations: 0,
    lastViolation: null,
    spoofed: 0,
  };
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
  /** The rings (made with the first resetRing): TXS and RXF produced here, TXC and RXC consumed. */
  private txs!: RingProducer;
  private txc!: RingConsumer;
  private rxf!: RingProducer;
  private rxc!: RingConsumer;
  private readonly txcSink: RingSink = { take: (at) => this.txDone(at) };
  private readonly rxcSink: RingSink = { take: (at) => this.rxTake(at) };
  /** rx(): the batch being filled, and the first bad entry met (the sink stops there). */
  private rxInto: PacketBatch | null = null;
  private rxBad: string | null = null;
  /** rx(): slots of frames refused for their addresses, offered back on RXF after the drain. */
  private rxRefused = 0;
  /** Forged frames in the current one-second window, and when it began (performance.now()). */
  private spoofWindow = -Infinity;
  private spoofInWindow = 0;
  private readonly spoofLimit: number;
  private attached = false;
  private everAttached = false;
  private poller: PollHandle | undefined;
  private waker: (() => void) | null = null;
  private bridge: SuspendableBridge | null = null;
  private transition: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly owner: NicPortOwner,
    options: SandboxNicPortOptions,
  ) {
    this.sys = options.sys;
    this.name = `sandbox:${owner.name}`;
    this.spoofLimit = options.spoofLimit ?? 64;
    if (!Number.isInteger(this.spoofLimit) || this.spoofLimit < 0) {
      throw new SandboxError('ERR_SANDBOX_NET_ARG', `spoofLimit ${options.spoofLimit}: expected a whole number of frames per second, 0 or more`);
    }
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
    const L = this.layout,
      n = batch.count;
    // Checked before anything is written: a bridge's mistake leaves the ring and the batch as they were.
    for (let i = 0; i < n; i++) {
      const slot = batch.buf[i]!,
        len = batch.len[i]!;
      if (slot >= L.txSlots || this.txState[slot] !== TX_BRIDGE || len < NET_MIN_FRAME || len > NET_MAX_FRAME) {
        throw new SandboxError(
          'ERR_SANDBOX_NET_ARG',
          `${this.name}: tx() of slot ${slot} length ${len}: not a TX slot the bridge holds, or a length outside ${NET_MIN_FRAME}..${NET_MAX_FRAME}`,
        );
      }
    }
    const u = this.u32,
      txs = this.txs;
    for (let i = 0; i < n; i++) {
      const slot = batch.buf[i]!,
        len = batch.len[i]!;
      u[txs.at(i) >>> 2] = entry(slot, len);
      this.txState[slot] = TX_CONTAINER;
      this.counters.txBytes += len;
    }
    this.txHeld += n;
    this.counters.txFrames += n;
    if (txs.post(n)) this.sys.eventfdWrite(this.kickFd, 1n);
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
    // Stricter than the ring's own bound: the container can hand over only the slots it holds.
    const avail = this.rxc.claimed();
    if (avail > this.rxHeld) return this.violation(`RX completion index moved by ${avail} while the container holds ${this.rxHeld} RX slots`);
    this.rxInto = batch;
    this.rxBad = null;
    this.rxRefused = 0;
    const before = batch.count;
    this.rxc.drain(this.rxcSink, batch.capacity - batch.count);
    this.rxInto = null;
    const k = batch.count - before;
    this.counters.rxFrames += k;
    if (this.rxRefused > 0) this.refused(this.rxRefused);
    // the frames checked so far are good and go out; nothing after a bad entry is read
    if (this.rxBad !== null) this.violation(this.rxBad);
    return k;
  }

  /**
   * Whether a received frame's addresses are ones a NIC can deliver to its host (see the top of
   * this file): not the sandbox's own MAC nor a group address as source; its own MAC, or a group
   * address, as destination.
   */
  private addressed(off: number): boolean {
    const b = this.shm.bytes,
      m = this.mac;
    if ((b[off + 6]! & 1) !== 0) return false;
    if (b[off + 6] === m[0] && b[off + 7] === m[1] && b[off + 8] === m[2] && b[off + 9] === m[3] && b[off + 10] === m[4] && b[off + 11] === m[5]) return false;
    if ((b[off]! & 1) !== 0) return true;
    return b[off] === m[0] && b[off + 1] === m[1] && b[off + 2] === m[2] && b[off + 3] === m[3] && b[off + 4] === m[4] && b[off + 5] === m[5];
  }

  /** `n` RX slots refused for their frames' addresses (written at RXF from 0): offered back, counted, a flood is a violation. */
  private refused(n: number): void {
    const u = this.u32,
      rxf = this.rxf;
    for (let i = 0; i < n; i++) this.rxState[u[rxf.at(i) >>> 2]!] = RX_CONTAINER;
    this.rxHeld += n;
    if (this.rxf.post(n) && this.attached) this.sys.eventfdWrite(this.kickFd, 1n);
    this.counters.spoofed += n;
    const now = performance.now();
    if (now - this.spoofWindow >= 1000) {
      this.spoofWindow = now;
      this.spoofInWindow = 0;
    }
    this.spoofInWindow += n;
    if (this.spoofInWindow > this.spoofLimit && this.rxBad === null) {
      this.rxBad = `${this.spoofInWindow} received frames with forged addresses within a second (the sandbox's own MAC or a group address as source, or another station's as destination); the limit is ${this.spoofLimit}`;
    }
  }

  /** One RXC entry (the sink): a frame in a slot the container holds, of a frame's length. */
  private rxTake(at: number): boolean {
    const e = this.u32[at >>> 2]!,
      L = this.layout;
    const slot = e & 0xffff,
      len = e >>> 16;
    if (slot >= L.rxSlots) this.rxBad = `RX completion names slot ${slot}; there are ${L.rxSlots}`;
    else if (this.rxState[slot] !== RX_CONTAINER) this.rxBad = `RX completion names slot ${slot}, which the container does not hold (a duplicate)`;
    else if (len < NET_MIN_FRAME || len > NET_MAX_FRAME)
      this.rxBad = `RX completion of ${len} bytes in slot ${slot}; a frame is ${NET_MIN_FRAME} to ${NET_MAX_FRAME} bytes`;
    if (this.rxBad !== null) return false;
    this.rxHeld--;
    if (!this.addressed(this.layout.rxArea + slot * NET_SLOT_BYTES)) {
      // Dropped: the slot goes straight back to the container (posted after the drain).
      this.rxState[slot] = RX_REFUSED;
      this.u32[this.rxf.at(this.rxRefused++) >>> 2] = slot;
      return true;
    }
    this.rxState[slot] = RX_BRIDGE;
    this.rxInto!.push(slot, len);
    this.counters.rxBytes += len;
    return true;
  }

  rxFree(batch: PacketBatch): void {
    const L = this.layout,
      n = batch.count;
    for (let i = 0; i < n; i++) {
      const slot = batch.buf[i]!;
      if (slot >= L.rxSlots || this.rxState[slot] !== RX_BRIDGE) {
        throw new SandboxError('ERR_SANDBOX_NET_ARG', `${this.name}: rxFree of slot ${slot}, which the bridge does not hold`);
      }
    }
    const u = this.u32,
      rxf = this.rxf;
    for (let i = 0; i < n; i++) {
      const slot = batch.buf[i]!;
      this.rxState[slot] = RX_CONTAINER;
      u[rxf.at(i) >>> 2] = slot;
    }
    this.rxHeld += n;
    // Between containers the ring is reset at the next exit, not read: post without a kick then.
    if (rxf.post(n) && this.attached) this.sys.eventfdWrite(this.kickFd, 1n);
    batch.count = 0;
  }

  waitRx(timeoutMs: number): Promise<boolean> {
    if (this.attached && this.rxc.claimed() !== 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(
        () => {
          this.waker = null;
          resolve(false);
        },
        Math.max(0, timeoutMs),
      );
      this.waker = () => {
        clearTimeout(t);
        resolve(this.attached && this.rxc.claimed() !== 0);
      };
    });
  }

  // ---- container lifecycle ----

  /** A container said READY: check what it published and attach; a lie is a violation (the container is killed). */
  onReady(): void {
    if (this.closed || this.attached) return;
    const u = this.u32;
    const header = formatProblem(u, NET_FORMAT);
    if (header !== null) {
      this.violation(`the container changed the ring header: ${header}`);
      return;
    }
    if (Atomics.load(u, N.SERVING) !== 1) {
      this.violation('READY without the packet ring served (SERVING is not 1)');
      return;
    }
    const lo = u[N.MAC_LO]!,
      hi = u[N.MAC_HI]!;
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
      if (w !== null) {
        this.waker = null;
        w();
      }
    });
    const bridge = this.bridge;
    if (bridge !== null && this.counters.attaches > 1) {
      this.transition = this.transition
        .then(() => {
          if (!this.closed && this.attached) bridge.resume(this);
        })
        .catch(() => undefined);
    }
  }

  /** The container is gone: detach, take every slot back, reset the ring for the next one. */
  onExit(): void {
    this.detach();
    // Every TX slot the dead container held, and every RX frame it handed over that was not yet taken, is lost.
    const handed = this.rxc.claimed();
    this.counters.lostInRestart += this.txHeld + (handed <= this.rxHeld ? handed : 0);
    for (let i = 0; i < this.layout.txSlots; i++) {
      if (this.txState[i] === TX_CONTAINER) {
        this.txState[i] = TX_FREE;
        this.txFreeStack[this.txFreeCount++] = i;
      }
    }
    this.resetRing();
    const bridge = this.bridge;
    // A failed bridge is suspended too: the next container's port is a working one, and resume revives it.
    if (bridge !== null && (bridge.isRunning || bridge.state === 'failed')) {
      this.transition = this.transition.then(() => bridge.suspend()).catch(() => undefined);
    }
  }

  /** Stop reading the ring (a violation, an exit, close). */
  private detach(): void {
    this.attached = false;
    this.poller?.close();
    this.poller = undefined;
    const w = this.waker;
    if (w !== null) {
      this.waker = null;
      w();
    }
  }

  /** A fresh ring for the next container: every RX slot offered on RXF, nothing submitted. */
  private resetRing(): void {
    const u = this.u32,
      L = this.layout;
    if (this.txs === undefined) {
      const r = netRings(L),
        violation = (reason: string): void => {
          this.violation(reason);
        };
      this.txs = new RingProducer(r.txs);
      this.txc = new RingConsumer(r.txc, violation);
      this.rxf = new RingProducer(r.rxf);
      this.rxc = new RingConsumer(r.rxc, violation);
    }
    this.shm.bytes.fill(0, 0, L.txArea);
    writeFormat(u, NET_FORMAT);
    u[N.TX_SLOTS] = L.txSlots;
    u[N.RX_SLOTS] = L.rxSlots;
    u[N.SLOT_BYTES] = NET_SLOT_BYTES;
    u[N.MAX_FRAME] = NET_MAX_FRAME;
    this.txHeld = 0;
    for (let i = 0; i < L.rxSlots; i++) {
      this.rxState[i] = RX_CONTAINER;
      u[(L.rxf >>> 2) + i] = i;
    }
    this.rxHeld = L.rxSlots;
    Atomics.store(u, N.RXF_TAIL, L.rxSlots);
    this.txs.bind(u, 0);
    this.txc.bind(u, 0);
    this.rxc.bind(u, 0);
    this.rxf.bind(u, L.rxSlots);
    this.sys.eventfdRead(this.kickFd);
    this.sys.eventfdRead(this.notifyFd);
  }

  /** TXC: slots the container copied out come back to the free stack. */
  private reapTx(): void {
    const n = this.txc.claimed();
    if (n === 0) return;
    if (n > this.txHeld) {
      this.violation(`TX completion index moved by ${n} while the container holds ${this.txHeld} TX slots`);
      return;
    }
    this.txc.drain(this.txcSink, Math.min(this.txHeld, TX_REAP_PER_CALL));
  }

  /** One TXC entry (the sink): a TX slot the container holds comes back; anything else is a violation. */
  private txDone(at: number): boolean {
    const slot = this.u32[at >>> 2]!,
      L = this.layout;
    if (slot >= L.txSlots) {
      this.violation(`TX completion names slot ${slot}; there are ${L.txSlots}`);
      return false;
    }
    if (this.txState[slot] !== TX_CONTAINER) {
      this.violation(`TX completion names slot ${slot}, which the container does not hold (a duplicate or never posted)`);
      return false;
    }
    this.txState[slot] = TX_FREE;
    this.txFreeStack[this.txFreeCount++] = slot;
    this.txHeld--;
    return true;
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
