/**
 * The container's ring server (sandbox/container/services/net.ts) in this process, against the
 * manager's real SandboxNicPort over the same memfd and eventfds and a scripted NetDevice: frames
 * both ways byte for byte, a driver with no TX buffer free (the frames wait, then go), received
 * frames the manager would refuse (dropped, counted, order kept), RX back-pressure when the
 * manager holds every slot, and what a hostile manager can write into the rings (counted, never
 * followed). The container process runs the same code; this is where its branches are checked.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { defaultSys } from 'linux-sys';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import type { NetBufferPool, NetDevice, NetLink } from '../../../drivers/contract/net.js';
import { SandboxNicPort } from '../../../sandbox/manager/services/net.js';
import { NicServer } from '../../../sandbox/container/services/net.js';
import { mapShared, type Shared } from '../../../sandbox/abi/shm.js';
import { N, NET_SLOT_BYTES, entry } from '../../../sandbox/abi/net.js';

const sys = defaultSys();
const MAC = Uint8Array.from([0x52, 0x54, 0, 0x0c, 0x0d, 0x0e]);
const PEER = [0x52, 0x55, 0x0a, 0, 2, 2];

/** A pool of `n` 2 KiB buffers in one window, with a free stack. */
class Pool implements NetBufferPool {
  readonly window: { bytes: Uint8Array };
  readonly free_: number[] = [];
  constructor(readonly n: number) {
    this.window = { bytes: new Uint8Array(n * 2048) };
    for (let i = n - 1; i >= 0; i--) this.free_.push(i);
  }
  offset(i: number): number {
    return i * 2048;
  }
  free(i: number): void {
    if (this.free_.includes(i)) throw new Error(`buffer ${i} freed twice`);
    this.free_.push(i);
  }
}

/** A scripted NIC: `sent` holds what tx() took; `arrive()` queues frames rx() hands over. */
class ScriptedNic implements NetDevice {
  readonly mac = MAC;
  readonly txPool = new Pool(16);
  readonly rxPool = new Pool(16);
  readonly sent: number[][] = [];
  /** tx() takes at most this many frames per call (the device's ring). */
  txRoom = Infinity;
  up = true;
  private readonly queued: number[][] = [];
  closed = false;

  link(): NetLink {
    return { up: this.up };
  }
  txAlloc(): number {
    return this.txPool.free_.pop() ?? -1;
  }
  tx(b: PacketBatch): number {
    const k = Math.min(b.count, this.txRoom);
    for (let i = 0; i < k; i++) {
      const off = this.txPool.offset(b.buf[i]!);
      this.sent.push([...this.txPool.window.bytes.subarray(off, off + b.len[i]!)]);
      this.txPool.free(b.buf[i]!);
    }
    b.shift(k);
    return k;
  }
  rx(b: PacketBatch): number {
    let k = 0;
    while (this.queued.length > 0 && b.count < b.capacity) {
      const f = this.queued.shift()!;
      const buf = this.rxPool.free_.pop()!;
      this.rxPool.window.bytes.set(f, this.rxPool.offset(buf));
      b.push(buf, f.length);
      k++;
    }
    return k;
  }
  async waitRx(ms: number): Promise<boolean> {
    if (this.queued.length > 0) return true;
    await new Promise((r) => setTimeout(r, Math.min(ms, 2)));
    return this.queued.length > 0;
  }
  describe(): string {
    return 'scripted NIC';
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  arrive(f: number[]): void {
    this.queued.push(f);
  }
}

/** A frame to `dst` from `src` with payload byte `tag`, `len` bytes long. */
function frame(len: number, tag: number, dst: ArrayLike<number> = MAC, src: ArrayLike<number> = PEER): number[] {
  const f = new Array<number>(len).fill(tag);
  for (let i = 0; i < 6; i++) {
    f[i] = dst[i]!;
    f[6 + i] = src[i]!;
  }
  return f;
}

class FakeSupervisor extends EventEmitter {
  readonly kills: string[] = [];
  constructor(readonly name: string) {
    super();
  }
  violation(reason: string): void {
    this.kills.push(reason);
  }
}

interface Rig {
  sup: FakeSupervisor;
  port: SandboxNicPort;
  nic: ScriptedNic;
  server: NicServer;
  shm: Shared;
  close(): Promise<void>;
}

/** The manager's port, the container's server over a second mapping of the ring memfd, attached. */
function rig(name: string, nic = new ScriptedNic()): Rig {
  const sup = new FakeSupervisor(name);
  const port = new SandboxNicPort(sup, { sys, geometry: { txSlots: 32, rxSlots: 32 } });
  const fds = port.containerFds();
  const shm = mapShared(sys, fds.ring, fds.bytes);
  const server = new NicServer(sys, shm, fds.kick, fds.notify, nic);
  server.start();
  port.onReady();
  return {
    sup,
    port,
    nic,
    server,
    shm,
    async close() {
      await server.stop();
      port.close();
      shm.close();
    },
  };
}

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Send frames from the manager's side (what the TAP bridge does). */
function send(port: SandboxNicPort, frames: number[][]): void {
  const b = new PacketBatch(32);
  for (const f of frames) {
    const s = port.txAlloc();
    assert.ok(s >= 0, 'a TX slot');
    port.txBytes.set(f, port.txOffset(s));
    b.push(s, f.length);
  }
  assert.is(port.tx(b), frames.length);
}

/** Receive on the manager's side until `n` frames came (each returned to the ring after copying). */
async function receive(port: SandboxNicPort, n: number): Promise<number[][]> {
  const got: number[][] = [];
  const b = new PacketBatch(32);
  const end = performance.now() + 3000;
  while (got.length < n) {
    if (performance.now() > end) throw new Error(`received ${got.length} of ${n} frames`);
    await port.waitRx(20);
    port.rx(b);
    for (let i = 0; i < b.count; i++) {
      const off = port.rxOffset(b.buf[i]!);
      got.push([...port.rxBytes.subarray(off, off + b.len[i]!)]);
    }
    port.rxFree(b);
    b.clear();
  }
  return got;
}

test('the server publishes the MAC and link; frames go both ways byte for byte', async () => {
  const r = rig('nsrv-both');
  try {
    assert.equal([...r.port.mac], [...MAC], 'MAC from the ring');
    assert.ok(r.port.linkUp());
    const out = [frame(60, 1, PEER, MAC), frame(1514, 2, PEER, MAC), frame(14, 3, PEER, MAC)];
    send(r.port, out);
    await until('the driver to send 3 frames', () => r.nic.sent.length === 3);
    assert.equal(r.nic.sent, out);
    const inn = [frame(64, 7), frame(1000, 8), frame(1514, 9)];
    for (const f of inn) r.nic.arrive(f);
    assert.equal(await receive(r.port, 3), inn);
    assert.is(r.server.counters.txFrames, 3);
    assert.is(r.server.counters.rxFrames, 3);
    assert.is(r.server.frames, 6);
    assert.is(r.server.counters.bytes, 60 + 1514 + 14 + 64 + 1000 + 1514);
    assert.is(r.nic.rxPool.free_.length, 16, 'every RX buffer back in the driver pool');
    assert.is(r.sup.kills.length, 0, r.sup.kills.join('; '));
  } finally {
    await r.close();
  }
});

test('no driver TX buffer free: frames wait in the ring, then go in order once the driver frees some', async () => {
  const nic = new ScriptedNic();
  const held = nic.txPool.free_.splice(0); // the driver has none free
  const r = rig('nsrv-txblock', nic);
  try {
    const out = [frame(60, 0x11, PEER, MAC), frame(61, 0x12, PEER, MAC), frame(62, 0x13, PEER, MAC)];
    send(r.port, out);
    await new Promise((res) => setTimeout(res, 20));
    assert.is(nic.sent.length, 0, 'nothing sent without a buffer');
    nic.txPool.free_.push(...held);
    await until('the waiting frames to go', () => nic.sent.length === 3);
    assert.equal(nic.sent, out, 'in order');
  } finally {
    await r.close();
  }
});

test("the driver's TX ring takes one frame per call: the rest stay in the batch, first in line", async () => {
  const nic = new ScriptedNic();
  nic.txRoom = 1;
  const r = rig('nsrv-txroom', nic);
  try {
    const out = [1, 2, 3, 4, 5].map((t) => frame(60 + t, t, PEER, MAC));
    send(r.port, out);
    await until('all 5 frames', () => nic.sent.length === 5);
    assert.equal(nic.sent, out);
  } finally {
    await r.close();
  }
});

test('received frames outside 14..1514 bytes are dropped in the container, counted, and the order of the rest kept', async () => {
  const r = rig('nsrv-oversize');
  try {
    const good1 = frame(100, 0x21),
      jumbo = frame(1600, 0x22),
      good2 = frame(200, 0x23),
      runt = frame(12, 0x24),
      good3 = frame(300, 0x25);
    for (const f of [good1, jumbo, good2, runt, good3]) r.nic.arrive(f);
    assert.equal(await receive(r.port, 3), [good1, good2, good3]);
    assert.is(r.server.counters.oversized, 2);
    assert.is(r.nic.rxPool.free_.length, 16, 'the dropped frames freed their driver buffers too');
  } finally {
    await r.close();
  }
});

test('RX back-pressure: with every ring slot held by the manager, frames wait in the driver; none is lost', async () => {
  const r = rig('nsrv-backpressure');
  try {
    // 40 frames onto a ring of 32 RX slots, the manager reading nothing for a while
    const inn = Array.from({ length: 40 }, (_, i) => frame(60 + i, i));
    const nic = r.nic;
    // the pool has 16 buffers: feed in two halves, reading in between
    for (const f of inn.slice(0, 16)) nic.arrive(f);
    await until('the first 16 posted', () => r.server.counters.rxFrames === 16);
    const first = await receive(r.port, 16);
    for (const f of inn.slice(16, 32)) nic.arrive(f);
    await until('16 more posted', () => r.server.counters.rxFrames === 32);
    // the manager now holds 16 slots it has not read and has handed back 16: feed 8 more and read all
    for (const f of inn.slice(32)) nic.arrive(f);
    const rest = await receive(r.port, 24);
    assert.equal([...first, ...rest], inn);
  } finally {
    await r.close();
  }
});

test('a hostile manager: impossible TXS and RXF entries are counted and skipped, a forged ring index is a violation', async () => {
  const r = rig('nsrv-hostile');
  try {
    const u = r.shm.u32,
      L = r.server.layout;
    // TXS: a slot past the ring, a runt and a jumbo length, then a good frame
    const good = frame(60, 0x31, PEER, MAC);
    r.shm.bytes.set(good, L.txArea + 5 * NET_SLOT_BYTES);
    let t = u[N.TXS_TAIL]!;
    for (const e of [entry(L.txSlots + 3, 60), entry(1, 8), entry(2, 1600), entry(5, 60)]) u[(L.txs >>> 2) + (t++ % L.txSlots)] = e;
    Atomics.store(u, N.TXS_TAIL, t);
    sys.eventfdWrite(r.port.kickFd, 1n);
    await until('the good frame', () => r.nic.sent.length === 1);
    assert.equal(r.nic.sent[0], good);
    assert.is(r.server.counters.badEntries, 3);
    // RXF: a slot past the ring
    t = u[N.RXF_TAIL]!;
    u[(L.rxf >>> 2) + (t++ % L.rxSlots)] = L.rxSlots + 1;
    Atomics.store(u, N.RXF_TAIL, t);
    sys.eventfdWrite(r.port.kickFd, 1n);
    await until('the bad RX slot counted', () => r.server.counters.badEntries === 4);
    // TXS tail moved far past anything the manager could have posted
    Atomics.store(u, N.TXS_TAIL, (u[N.TXS_HEAD]! + L.txSlots * 4) >>> 0);
    sys.eventfdWrite(r.port.kickFd, 1n);
    await until('the forged index seen', () => r.server.counters.violations > 0);
  } finally {
    await r.close();
  }
});

test('the link state follows the driver; stop clears SERVING and ends the RX loop', async () => {
  const r = rig('nsrv-link');
  try {
    r.nic.up = false;
    await until('link down published', () => Atomics.load(r.shm.u32, N.LINK) === 0, 2000);
    r.nic.up = true;
    await until('link up published', () => Atomics.load(r.shm.u32, N.LINK) === 1, 2000);
    await r.server.stop();
    assert.is(Atomics.load(r.shm.u32, N.SERVING), 0);
    assert.is(r.server.turn(), false, 'a stopped server moves nothing');
  } finally {
    await r.close();
  }
});

test('a ring made by another build (slot size) or smaller than its header says is refused', () => {
  const sup = new FakeSupervisor('nsrv-geom');
  const port = new SandboxNicPort(sup, { sys, geometry: { txSlots: 32, rxSlots: 32 } });
  const fds = port.containerFds();
  const shm = mapShared(sys, fds.ring, fds.bytes);
  try {
    const nic = new ScriptedNic();
    const u = shm.u32;
    const slot = u[N.SLOT_BYTES]!;
    u[N.SLOT_BYTES] = 4096;
    assert.throws(
      () => new NicServer(sys, shm, fds.kick, fds.notify, nic),
      (e: { code?: string; message: string }) => e.code === 'ERR_ABI_GEOMETRY' && /4096/.test(e.message),
    );
    u[N.SLOT_BYTES] = slot;
    const rx = u[N.RX_SLOTS]!;
    u[N.RX_SLOTS] = 4096;
    assert.throws(
      () => new NicServer(sys, shm, fds.kick, fds.notify, nic),
      (e: { code?: string; message: string }) => e.code === 'ERR_ABI_GEOMETRY' && /bytes of shared memory/.test(e.message),
    );
    u[N.RX_SLOTS] = rx;
  } finally {
    shm.close();
    port.close();
  }
});

test.run();
