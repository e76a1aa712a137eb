/**
 * The block ring in one process: SandboxBlockClient (manager side) and BlockServer (container
 * side) over a real memfd and eventfds, a memory-backed device. Round trips, splitting at the slot
 * size, range errors, replay after detach, and what the client does with a ring it cannot trust.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSys, EFD_CLOEXEC, EFD_NONBLOCK } from 'linux-sys';
import { REAP_PER_TURN, SandboxBlockClient } from '../../sandbox/manager/services/block.js';
import { BlockServer, type DirectBlockDevice } from '../../sandbox/container/services/block.js';
import { B, CQE_BYTES, cqOffset, dataAreaBytes, ringBytes, type DataAreas } from '../../sandbox/abi/block.js';
import { createShared } from '../../sandbox/abi/shm.js';
import { pattern, until } from './helpers.js';

const sys = defaultSys();

/** A device that DMAs between its store and the ring's data areas, as the NVMe device does. */
class MemDevice implements DirectBlockDevice {
  readonly blockSize = 512;
  readonly blockCount = 256;
  readonly store = new Uint8Array(512 * 256);
  hold = false;
  private held: (() => void)[] = [];
  constructor(
    private readonly areas: DataAreas<Uint8Array>,
    private readonly slot: number,
  ) {}
  async read(tag: number, lba: number, blocks: number): Promise<void> {
    await this.gate();
    this.areas.read.set(this.store.subarray(lba * 512, (lba + blocks) * 512), tag * this.slot);
  }
  async write(tag: number, lba: number, blocks: number): Promise<void> {
    await this.gate();
    this.store.set(this.areas.write.subarray(tag * this.slot, tag * this.slot + blocks * 512), lba * 512);
  }
  async flush(): Promise<void> {
    await this.gate();
  }
  private gate(): Promise<void> {
    return this.hold ? new Promise((r) => this.held.push(r)) : Promise.resolve();
  }
}

const G = { entries: 4, slotBytes: 4096 };
function areas(): DataAreas<Uint8Array> {
  return { read: new Uint8Array(dataAreaBytes(G)), write: new Uint8Array(dataAreaBytes(G)) };
}

function pair(client: SandboxBlockClient, dev: DirectBlockDevice) {
  const shm = createShared(sys, 'block-test', ringBytes(client.geometry));
  client.initRing(shm);
  const req = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
    cpl = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const server = new BlockServer(sys, shm, req, cpl);
  server.start(dev);
  const link = { sys, shm, requestFd: req, completionFd: cpl };
  return {
    shm,
    server,
    link,
    close: () => {
      void server.quiesce();
      shm.close();
      sys.close(req);
      sys.close(cpl);
    },
  };
}

test('round trips, transfers split at the slot size, flush, range errors', async () => {
  const a = areas();
  const client = new SandboxBlockClient(G, a);
  const dev = new MemDevice(a, G.slotBytes);
  const p = pair(client, dev);
  client.attach(p.link);
  assert.is(client.blockSize, 512);
  const data = pattern(512 * 40, 3); // 40 blocks: 5 slots of 8 blocks with only 4 tags
  await client.write(10, data);
  assert.equal(dev.store.subarray(10 * 512, 50 * 512), data);
  assert.equal(await client.read(10, 40), data);
  await client.flush();
  try {
    await client.read(250, 10);
    assert.unreachable('a read past the end must reject');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_SANDBOX_ARG');
    assert.match((e as Error).message, /outside the device/);
  }
  assert.is(client.completed, 11);
  assert.is(client.pending, 0);
  client.detach();
  p.close();
});

test('detach keeps requests in flight; a fresh ring replays them in order', async () => {
  const a = areas();
  const client = new SandboxBlockClient(G, a);
  const dev = new MemDevice(a, G.slotBytes);
  dev.hold = true;
  const p1 = pair(client, dev);
  client.attach(p1.link);
  const d = pattern(1024, 5);
  const w = client.write(0, d);
  const r = client.read(0, 2);
  await until('the server to take both', () => p1.server.inflight === 2, 2000);
  assert.is(client.detach(), 2);
  p1.close();
  dev.hold = false;
  const p2 = pair(client, dev);
  client.attach(p2.link);
  await w;
  assert.equal(await r, d, 'the replayed read sees the replayed write: order kept');
  assert.is(client.replayed, 2);
  client.detach();
  p2.close();
});

test('a ring the client cannot trust: forged tags and an impossible index are violations, never completions', async () => {
  const a = areas();
  const client = new SandboxBlockClient(G, a);
  const dev = new MemDevice(a, G.slotBytes);
  dev.hold = true;
  const p = pair(client, dev);
  const seen: string[] = [];
  client.onViolation = (m) => seen.push(m);
  client.attach(p.link);
  let settled = false;
  client.read(0, 1).then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  await until('the request to be taken', () => p.server.inflight === 1, 2000);
  // Forge: a completion for tag 3 (not in flight) and one with a wrong generation.
  const cq = 64 + 4 * 32;
  p.shm.view.setUint32(cq, 3, true);
  p.shm.view.setUint32(cq + 16, 0, true);
  p.shm.view.setUint32(cq + 20, 999, true);
  Atomics.store(p.shm.u32, B.CQ_TAIL, 2);
  client.reap();
  assert.is(seen.length, 2, seen.join('\n'));
  assert.is(settled, false);
  Atomics.store(p.shm.u32, B.CQ_TAIL, 1000);
  client.reap();
  assert.match(seen[2]!, /^completion ring tail 1000 is 998 entries ahead of head 2 \(the ring holds 4\)$/);
  assert.is(client.violations, 3);
  client.reap();
  assert.is(client.violations, 3, 'reported once: the ring is not read again');
  assert.is(settled, false);
  client.fail(new Error('done'));
  p.close();
});

test('quiesce while polling: SQ_POLLED is cleared at once and the ring is not touched afterwards (it may be unmapped by then)', async () => {
  const a = areas();
  const client = new SandboxBlockClient(G, a);
  const shm = createShared(sys, 'block-quiesce', ringBytes(client.geometry));
  client.initRing(shm);
  const req = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
    cpl = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const dev = new MemDevice(a, G.slotBytes);
  const server = new BlockServer(sys, shm, req, cpl, { pollWhileBusy: true });
  try {
    server.start(dev);
    client.attach({ sys, shm, requestFd: req, completionFd: cpl });
    dev.hold = true;
    void client.read(0, 1).catch(() => undefined); // held by the device: in flight throughout
    await until('the server to poll', () => Atomics.load(shm.u32, B.SQ_POLLED) === 1, 2000);
    void server.quiesce();
    assert.is(Atomics.load(shm.u32, B.SQ_POLLED), 0, 'back to kicks at quiesce');
    // A sentinel: any write the server makes to the ring from now on would change it.
    Atomics.store(shm.u32, B.SQ_POLLED, 7);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.is(Atomics.load(shm.u32, B.SQ_POLLED), 7, 'no poll turn touched the ring after quiesce');
    client.detach();
  } finally {
    shm.close();
    sys.close(req);
    sys.close(cpl);
  }
});

test('a full completion ring is taken REAP_PER_TURN entries a turn, the rest on later turns', async () => {
  const g = { entries: 1024, slotBytes: 4096 };
  const a = { read: new Uint8Array(dataAreaBytes(g)), write: new Uint8Array(dataAreaBytes(g)) };
  const client = new SandboxBlockClient(g, a);
  const p = pair(client, new MemDevice(a, g.slotBytes));
  let seen = 0;
  client.onViolation = () => seen++;
  client.attach(p.link);
  // 1000 completions for no request: each one is looked at (and is a violation), none trusted
  for (let i = 0; i < 1000; i++) p.shm.view.setUint32(cqOffset(g) + i * CQE_BYTES, 5000, true);
  Atomics.store(p.shm.u32, B.CQ_TAIL, 1000);
  assert.is(client.reap(), REAP_PER_TURN);
  assert.is(seen, REAP_PER_TURN);
  await until('the rest, on later turns', () => seen === 1000, 2000);
  client.fail(new Error('done'));
  p.close();
});

test.run();
