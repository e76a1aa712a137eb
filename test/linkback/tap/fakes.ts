/**
 * Fakes for the bridge tests: a TAP (FrameIo) whose readability is level-triggered like the
 * seam's poll, and a NIC (NicPort) with a TX buffer pool, a TX "ring" whose room the test controls,
 * and an RX queue the test fills. Both record what crossed them, as copies. The port's `waitRx`
 * times out on the clock it is given (the bridge tests give it their fake one).
 */
import type { FrameIo } from '../../../linkback/tap/tun.js';
import type { NicPort } from '../../../linkback/tap/nic-port.js';
import type { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { realClock, type BridgeClock } from '../../../linkback/tap/clock.js';

export class FakeTap implements FrameIo {
  readonly name = 'faketap0';
  /** Frames the host "sends": the bridge reads them. */
  readonly inbound: Uint8Array[] = [];
  /** Frames the bridge wrote. */
  readonly written: Uint8Array[] = [];
  lastError: string | undefined;
  /** When false, write() fails with EIO. */
  writable = true;
  carrier: boolean[] = [];
  watches = 0;
  unwatches = 0;
  reads = 0;
  private cb: (() => void) | null = null;
  private scheduled = false;

  /** Queue frames and, like a level-triggered poll, call back while any are waiting. */
  push(...frames: Uint8Array[]): void {
    this.inbound.push(...frames);
    this.kick();
  }

  get watching(): boolean {
    return this.cb !== null;
  }

  /** When set, read() throws it (a TAP whose interface went away). */
  readError: Error | null = null;

  read(bytes: Uint8Array, offset: number, max: number): number {
    this.reads++;
    if (this.readError !== null) throw this.readError;
    const f = this.inbound.shift();
    if (f === undefined) return 0;
    const n = Math.min(f.length, max);
    bytes.set(f.subarray(0, n), offset);
    return n;
  }

  write(bytes: Uint8Array, offset: number, len: number): boolean {
    if (!this.writable) {
      this.lastError = 'EIO';
      return false;
    }
    this.written.push(bytes.slice(offset, offset + len));
    return true;
  }

  watch(onReadable: () => void): void {
    this.watches++;
    this.cb = onReadable;
    this.kick();
  }

  unwatch(): void {
    this.unwatches++;
    this.cb = null;
  }

  setCarrier(up: boolean): void {
    this.carrier.push(up);
  }

  private kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.cb !== null && this.inbound.length > 0) {
        this.cb();
        this.kick();
      }
    });
  }
}

export interface FakePortOptions {
  txBuffers?: number;
  rxBuffers?: number;
  bufferSize?: number;
  maxFrame?: number;
  /** What `waitRx` times out on (default: real time). */
  clock?: BridgeClock;
}

export class FakePort implements NicPort {
  readonly name = 'fakenic0';
  readonly mac = Uint8Array.from([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]);
  readonly maxFrame: number;
  readonly bufferSize: number;
  readonly txBytes: Uint8Array;
  readonly rxBytes: Uint8Array;
  /** Frames the NIC took, as copies, in order. */
  readonly sent: Uint8Array[] = [];
  /** Sizes of the batches offered to tx() and given by rx(). */
  readonly txOffered: number[] = [];
  readonly rxGiven: number[] = [];
  /** How many frames tx() takes per call (Infinity: all). 0 = ring full. */
  txRoom = Infinity;
  link = true;
  /** When set, tx() returns this (a broken port). */
  lie: number | null = null;
  private readonly txFreeStack: number[] = [];
  private readonly txOut = new Set<number>();
  private readonly rxFreeStack: number[] = [];
  private readonly rxOut = new Set<number>();
  private readonly rxWaiting: Array<{ buf: number; len: number }> = [];
  private wake: (() => void) | null = null;
  private readonly clock: BridgeClock;

  constructor(o: FakePortOptions = {}) {
    this.clock = o.clock ?? realClock;
    this.bufferSize = o.bufferSize ?? 2048;
    this.maxFrame = o.maxFrame ?? 1514;
    const tx = o.txBuffers ?? 1024,
      rx = o.rxBuffers ?? 1024;
    this.txBytes = new Uint8Array(tx * this.bufferSize);
    this.rxBytes = new Uint8Array(rx * this.bufferSize);
    for (let i = tx - 1; i >= 0; i--) this.txFreeStack.push(i);
    for (let i = rx - 1; i >= 0; i--) this.rxFreeStack.push(i);
  }

  get txAvailable(): number {
    return this.txFreeStack.length;
  }

  get rxOutstanding(): number {
    return this.rxOut.size;
  }

  linkUp(): boolean {
    return this.link;
  }

  txOffset(buf: number): number {
    return buf * this.bufferSize;
  }

  txAlloc(): number {
    const b = this.txFreeStack.pop();
    if (b === undefined) return -1;
    this.txOut.add(b);
    return b;
  }

  txFree(buf: number): void {
    if (!this.txOut.delete(buf)) throw new Error(`fake port: TX buffer ${buf} freed but not allocated`);
    this.txFreeStack.push(buf);
  }

  tx(batch: PacketBatch): number {
    this.txOffered.push(batch.count);
    if (this.lie !== null) return this.lie;
    const n = Math.min(batch.count, this.txRoom);
    for (let i = 0; i < n; i++) {
      const off = this.txOffset(batch.buf[i]!);
      this.sent.push(this.txBytes.slice(off, off + batch.len[i]!));
      this.txFree(batch.buf[i]!); // "sent at once"
    }
    if (this.txRoom !== Infinity) this.txRoom -= n;
    batch.shift(n);
    return n;
  }

  /** The wire delivers a frame to the NIC's RX side. */
  deliver(frame: Uint8Array): void {
    const buf = this.rxFreeStack.pop();
    if (buf === undefined) throw new Error('fake port: RX pool empty');
    this.rxBytes.set(frame, buf * this.bufferSize);
    this.rxWaiting.push({ buf, len: frame.length });
    const w = this.wake;
    if (w !== null) {
      this.wake = null;
      w();
    }
  }

  rxOffset(buf: number): number {
    return buf * this.bufferSize;
  }

  rx(batch: PacketBatch): number {
    let n = 0;
    while (batch.count < batch.capacity && this.rxWaiting.length > 0) {
      const f = this.rxWaiting.shift()!;
      this.rxOut.add(f.buf);
      batch.push(f.buf, f.len);
      n++;
    }
    this.rxGiven.push(n);
    return n;
  }

  rxFree(batch: PacketBatch): void {
    for (let i = 0; i < batch.count; i++) {
      const b = batch.buf[i]!;
      if (!this.rxOut.delete(b)) throw new Error(`fake port: RX buffer ${b} freed but not lent`);
      this.rxFreeStack.push(b);
    }
    batch.count = 0;
  }

  waitRx(timeoutMs: number): Promise<boolean> {
    if (this.rxWaiting.length > 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = this.clock.timer(() => {
        this.wake = null;
        resolve(false);
      });
      t.start(timeoutMs);
      this.wake = () => {
        t.cancel();
        resolve(true);
      };
    });
  }
}

/** A frame of `len` bytes: broadcast dst, src, ethertype, then bytes numbered from `seq`. */
export function testFrame(seq: number, len = 64, ethertype = 0x88b5): Uint8Array {
  const f = new Uint8Array(len);
  f.fill(0xff, 0, 6);
  f.set([0x52, 0x54, 0x00, 0x01, 0x02, 0x03], 6);
  f[12] = ethertype >> 8;
  f[13] = ethertype & 0xff;
  for (let i = 14; i < len; i++) f[i] = (seq + i) & 0xff;
  if (len >= 18) new DataView(f.buffer).setUint32(14, seq);
  return f;
}

export function seqOf(f: Uint8Array): number {
  return new DataView(f.buffer, f.byteOffset).getUint32(14);
}

/**
 * Wait (bounded) until `cond` holds, letting timers and immediates run: for tests against the real
 * kernel (TAP interfaces, network namespaces), where what is awaited is not the bridge's timers.
 */
export async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
