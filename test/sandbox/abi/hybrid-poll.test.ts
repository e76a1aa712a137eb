/**
 * Hybrid polling (sandbox/abi/hybrid-poll.ts) and the POLLED words of the block ring and the register
 * mailbox (sandbox/abi/ring.ts, "Polling"): the poller looks every turn while work flows and stops an
 * idle window later; a poster leaves its kick out while the taker polls and kicks again after;
 * requests posted while polling still complete with no kick at all.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSys, EFD_CLOEXEC, EFD_NONBLOCK } from 'linux-sys';
import { HybridPoller, type Pollable } from '../../../sandbox/abi/hybrid-poll.js';
import { SandboxBlockClient } from '../../../sandbox/manager/services/block.js';
import { BlockServer, type DirectBlockDevice } from '../../../sandbox/container/services/block.js';
import { B, dataAreaBytes, ringBytes, type DataAreas } from '../../../sandbox/abi/block.js';
import { W } from '../../../sandbox/abi/mailbox.js';
import { HostMailbox, type MailboxTarget } from '../../../sandbox/device/mailbox.js';
import { GuestMailbox } from '../../../sandbox/container/mailbox.js';
import { MAILBOX_BYTES, initMailbox } from '../../../sandbox/abi/mailbox.js';
import { createShared } from '../../../sandbox/abi/shm.js';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { pattern, simPolicy, until } from '../helpers.js';

const sys = defaultSys();
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A queue with entries to hand out, recording what the poller told it. */
class FakeQueue implements Pollable {
  entries = 0;
  polls = 0;
  polled = false;
  flips: boolean[] = [];
  poll(): number {
    this.polls++;
    const n = this.entries;
    this.entries = 0;
    return n;
  }
  setPolled(on: boolean): void {
    if (on === this.polled) return;
    this.polled = on;
    this.flips.push(on);
  }
}

test('the poller looks every turn while entries come, and stops an idle window after the last', async () => {
  let now = 0;
  const q = new FakeQueue();
  let yields = 0;
  const p = new HybridPoller({
    idleMs: 1,
    queues: () => [q],
    clock: () => now,
    yield: () => {
      yields++;
    },
  });
  p.wake();
  assert.ok(p.polling);
  assert.ok(q.polled, 'the queue is told at once, before the first turn');
  for (let i = 0; i < 5; i++) {
    now += 0.4;
    q.entries = 1; // work keeps the window open
    await turn();
  }
  assert.ok(p.polling);
  assert.ok(q.polls >= 5, `polled ${q.polls} times`);
  assert.is(yields, 0, 'a turn that found work keeps the CPU');
  now += 0.6;
  await turn();
  assert.ok(p.polling, 'inside the window after the last entry');
  assert.is(yields, 1, 'a turn that found nothing gives the CPU away');
  now += 0.5;
  await turn();
  await turn();
  assert.not.ok(p.polling, 'stopped once the window passed with nothing found');
  assert.equal(q.flips, [true, false]);
  assert.is(p.periods, 1);
  const before = q.polls;
  await turn();
  await turn();
  assert.is(q.polls, before, 'no looking while stopped');
});

test('an entry found by the last look after the POLLED word is cleared keeps the poller going', async () => {
  let now = 0;
  const q = new FakeQueue();
  const p = new HybridPoller({ idleMs: 1, queues: () => [q], clock: () => now });
  p.wake();
  now += 2;
  // The window has passed: the poller clears the word, fences, and looks once more. Something
  // posted just then (no kick: the poster still saw the word set) must not be left behind.
  const orig = q.setPolled.bind(q);
  q.setPolled = (on: boolean) => {
    orig(on);
    if (!on) q.entries = 1;
  };
  await turn();
  assert.ok(p.polling, 'the late entry was taken and polling went on');
  assert.equal(q.flips, [true, false, true]);
  q.setPolled = orig;
  now += 2;
  await turn();
  await turn();
  assert.not.ok(p.polling);
  p.close();
});

test('a zero window never polls; close stops polling and clears the words', async () => {
  const q = new FakeQueue();
  const off = new HybridPoller({ idleMs: 0, queues: () => [q] });
  off.wake();
  assert.not.ok(off.polling);
  assert.equal(q.flips, []);
  const on = new HybridPoller({ idleMs: 1000, queues: () => [q] });
  on.wake();
  await turn();
  assert.ok(on.polling);
  on.close();
  assert.not.ok(on.polling);
  assert.equal(q.flips, [true, false]);
  on.wake();
  assert.not.ok(on.polling, 'a closed poller stays closed');
});

class MemDevice implements DirectBlockDevice {
  readonly blockSize = 512;
  readonly blockCount = 64;
  readonly store = new Uint8Array(512 * 64);
  constructor(
    private readonly areas: DataAreas<Uint8Array>,
    private readonly slot: number,
  ) {}
  async read(tag: number, lba: number, blocks: number): Promise<void> {
    this.areas.read.set(this.store.subarray(lba * 512, (lba + blocks) * 512), tag * this.slot);
  }
  async write(tag: number, lba: number, blocks: number): Promise<void> {
    this.store.set(this.areas.write.subarray(tag * this.slot, tag * this.slot + blocks * 512), lba * 512);
  }
  async flush(): Promise<void> {}
}

test('block ring: completion kicks are left out while the manager polls, request kicks while the container does', async () => {
  const G = { entries: 4, slotBytes: 4096 };
  const a = { read: new Uint8Array(dataAreaBytes(G)), write: new Uint8Array(dataAreaBytes(G)) };
  const client = new SandboxBlockClient(G, a);
  const shm = createShared(sys, 'poll-test', ringBytes(G));
  client.initRing(shm);
  const req = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
    cpl = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const server = new BlockServer(sys, shm, req, cpl, { pollWhileBusy: true });
  server.start(new MemDevice(a, G.slotBytes));
  client.setPolled(true); // before attach: the fresh ring gets it when attached
  client.attach({ sys, shm, requestFd: req, completionFd: cpl });
  assert.is(shm.u32[B.CQ_POLLED], 1);
  const poller = new HybridPoller({ idleMs: 1000, queues: () => [client] });
  client.onPost = () => poller.wake();
  try {
    const data = pattern(512 * 8, 7);
    await client.write(0, data);
    assert.equal(await client.read(0, 8), data);
    await Promise.all(Array.from({ length: 12 }, (_, i) => client.read(i * 4, 4)));
    assert.is(server.kicks, 0, 'no completion kick while the manager polls');
    assert.ok(server.kicksSaved >= 14, `completion kicks left out: ${server.kicksSaved}`);
    // The container polls SQ_TAIL only while its requests are in flight; idle, it is kicked again.
    await until('the container stops polling', () => shm.u32[B.SQ_POLLED] === 0, 5000);
    const kicks = client.kicks;
    await client.read(0, 1);
    assert.is(client.kicks, kicks + 1, 'an idle container gets its kick');
    // The manager stops polling: the container kicks its completions again.
    poller.close();
    client.onPost = () => {};
    assert.is(shm.u32[B.CQ_POLLED], 0);
    await client.read(0, 1);
    assert.ok(server.kicks >= 1, 'completion kicks are back when the manager sleeps');
  } finally {
    // A failed assertion must not leave pollers keeping the test process alive.
    poller.close();
    client.detach();
    await server.quiesce();
    // Its last poll turn writes SQ_POLLED once more: let it run before the ring is unmapped.
    await new Promise((r) => setTimeout(r, 5));
    shm.close();
    sys.close(req);
    sys.close(cpl);
  }
});

test('register mailbox: no kick while the manager polls, a kick after; every write applied', () => {
  const shm = createShared(sys, 'poll-mailbox', MAILBOX_BYTES);
  initMailbox(shm.u32);
  const kick = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const writes: number[] = [];
  const target: MailboxTarget = {
    barSize: () => 0x4000,
    barRead32: () => 0,
    barWrite32: (_b, _o, v) => {
      writes.push(v);
    },
    cfgRead: () => 0,
    cfgWrite: () => {},
    irqEnable: () => 0,
    irqDisable: () => {},
    reset: () => {},
  };
  const host = new HostMailbox(sys, shm, kick, target, (r) => assert.unreachable(r));
  const guest = new GuestMailbox(sys, shm, kick);
  host.setPolled(true);
  assert.is(shm.u32[W.HOST_POLLED], 1);
  for (let i = 0; i < 10; i++) guest.write(0, 4, 0x1000, i);
  assert.is(guest.kicks, 0);
  assert.is(guest.kicksSaved, 10);
  assert.is(host.poll(), 10);
  host.setPolled(false);
  guest.write(0, 4, 0x1000, 10);
  assert.is(guest.kicks, 1, 'kicked once the manager sleeps');
  assert.is(host.poll(), 1);
  assert.equal(writes, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  host.close();
  shm.close();
  sys.close(kick);
});

test('a sandbox polls its ring and doorbells with the policy window, across a restart, and then sleeps', async () => {
  const policy = simPolicy('poll-cycle', 'linkback: { nbd: { socket: /tmp/unused-poll.sock, export: e, poll: 2ms } }');
  assert.is((policy.linkback as { nbd: { poll: number } }).nbd.poll, 2);
  const s = new Supervisor(policy, { hangMs: 2000 });
  try {
    await s.start();
    const poller = s.poller!;
    assert.ok(poller, 'a policy with a poll window gets a poller');
    const data = pattern(4096 * 4, 9);
    await s.block.write(64, data);
    const reads = await Promise.all(Array.from({ length: 16 }, () => s.block.read(64, 32)));
    for (const r of reads) assert.equal(r, data);
    assert.ok(poller.turns > 0 && poller.periods >= 1, `turns ${poller.turns}, periods ${poller.periods}`);
    const io = s.status().io as { poll: { windowMs: number; periods: number } };
    assert.is(io.poll.windowMs, 2);
    await until('the poller sleeps after its window', () => !poller.polling, 5000);
    // A new container's ring and mailbox are polled too: kill the first, keep reading.
    const pid = s.pid;
    process.kill(pid!, 'SIGKILL');
    await until('restarted', () => s.state === 'running' && s.pid !== pid, 20_000);
    assert.equal(await s.block.read(64, 32), data);
    assert.ok(poller.periods >= 2);
  } finally {
    await s.stop();
  }
  assert.not.ok(s.poller!.polling, 'stopped with the sandbox');
  const off = new Supervisor(simPolicy('poll-off', 'linkback: { nbd: { socket: /tmp/unused-poll.sock, export: e, poll: 0ms } }'));
  assert.is(off.poller, undefined, 'a zero window makes no poller');
  await off.stop();
});

test.run();
