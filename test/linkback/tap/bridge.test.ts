/**
 * The TAP bridge over fake ends (fakes.ts) on fake time (fake-clock.ts): order and batching both
 * ways, back-pressure without loss ('wait'), bounded-queue drops ('drop'), partial acceptance,
 * malformed frames, counters by frame class, link mirroring, back-off, stop(), restarts, and ports
 * that break the contract; the state the bridge says it is in at each step. No test sleeps: time
 * moves only by `clock.advance`, and everything else is awaited in event-loop turns.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TapBridge, frameClass } from '../../../linkback/tap/bridge.js';
import { TapError } from '../../../linkback/tap/errors.js';
import type { TapBridgeOptions } from '../../../linkback/tap/options.js';
import { FakeClock, turns } from './fake-clock.js';
import { FakePort, FakeTap, seqOf, testFrame, type FakePortOptions } from './fakes.js';

const WAIT = 10;

function setup(opts: TapBridgeOptions = {}, portOpts: FakePortOptions = {}) {
  const clock = new FakeClock();
  const tap = new FakeTap();
  const port = new FakePort({ clock, ...portOpts });
  const errors: unknown[] = [];
  const bridge = new TapBridge(tap, port, { waitMs: WAIT, onError: (e) => errors.push(e), clock, ...opts });
  const waitMs = opts.waitMs ?? WAIT;
  /** stop() resolves within one waitRx: the RX loop's bound. */
  const stop = (): Promise<void> => clock.within(bridge.stop(), waitMs);
  const port2 = (): FakePort => new FakePort({ clock });
  return { clock, tap, port, bridge, errors, stop, port2, waitMs };
}

function frames(n: number, from = 0, len = 64): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => testFrame(from + i, len + (i % 7)));
}

async function assertRejects(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TapError, String(e));
    assert.is((e as TapError).code, code);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('TAP -> NIC: every frame, in order, byte for byte, in batches of at most 32; buffers all returned', async () => {
  const { tap, port, bridge, errors, stop } = setup();
  assert.is(bridge.state, 'idle');
  bridge.start();
  assert.is(bridge.state, 'reading');
  const sent = frames(100);
  tap.push(...sent);
  await turns(() => port.sent.length === 100, '100 frames at the NIC');
  for (let i = 0; i < 100; i++) assert.equal(port.sent[i], sent[i], `frame ${i}`);
  assert.ok(Math.max(...port.txOffered) <= 32, `a batch of ${Math.max(...port.txOffered)} was offered`);
  assert.ok(port.txOffered.length <= 10, `${port.txOffered.length} tx calls for 100 frames: not batched`);
  const c = bridge.counters();
  assert.is(c.toNic.frames, 100);
  assert.is(
    c.toNic.bytes,
    sent.reduce((s, f) => s + f.length, 0),
  );
  assert.is(c.toNic.other, 100);
  assert.is(c.queued, 0);
  await stop();
  assert.is(bridge.state, 'stopped');
  assert.is(port.txAvailable, 1024);
  assert.is(errors.length, 0);
});

test('NIC -> TAP: every frame, in order, at most 32 per rx() call; RX buffers all given back', async () => {
  const { tap, port, bridge, stop } = setup();
  bridge.start();
  const got = frames(70, 1000);
  for (const f of got) port.deliver(f);
  await turns(() => tap.written.length === 70, '70 frames on the TAP');
  for (let i = 0; i < 70; i++) assert.equal(tap.written[i], got[i], `frame ${i}`);
  assert.ok(Math.max(...port.rxGiven) <= 32);
  assert.is(port.rxOutstanding, 0);
  assert.is(bridge.counters().toTap.frames, 70);
  await stop();
});

test("back-pressure, whenFull 'wait': a full NIC ring loses nothing; the TAP is paused and looked at every retryMs", async () => {
  const { clock, tap, port, bridge, stop } = setup({ queueFrames: 64 });
  port.txRoom = 0;
  bridge.start();
  tap.push(...frames(300));
  await turns(() => bridge.state === 'paused', 'the queue to fill and the TAP to pause');
  let c = bridge.counters();
  assert.is(c.queued, 64, 'queue bounded');
  assert.is(tap.inbound.length, 300 - 64, 'the rest stays in the host queue, unread');
  assert.not.ok(tap.watching, 'TAP paused');
  const full = c.queueFull,
    stalls = c.stalls;
  await clock.advance(30);
  c = bridge.counters();
  // One look per millisecond (retryMs 1): the queue offered again (a stall), found full again.
  assert.is(c.queueFull - full, 30);
  assert.is(c.stalls - stalls, 30);
  assert.is(c.queued, 64);
  assert.is(c.queueDrops, 0);
  assert.is(bridge.state, 'paused');
  port.txRoom = Infinity;
  await clock.advance(1);
  await turns(() => port.sent.length === 300, 'all 300 frames once the ring has room');
  for (let i = 0; i < 300; i++) assert.is(seqOf(port.sent[i]!), i, `frame ${i} in order`);
  c = bridge.counters();
  assert.is(c.toNic.frames, 300);
  assert.is(c.queueDrops, 0);
  assert.is(bridge.state, 'reading');
  assert.ok(tap.watching, 'TAP watched again');
  await stop();
});

test("whenFull 'drop': the bounded queue keeps the first frames, later ones are dropped and counted", async () => {
  const { clock, tap, port, bridge, stop } = setup({ queueFrames: 64, whenFull: 'drop' });
  port.txRoom = 0;
  bridge.start();
  tap.push(...frames(300));
  await turns(() => tap.inbound.length === 0, 'the TAP drained');
  let c = bridge.counters();
  assert.is(c.queued, 64);
  assert.is(c.queueDrops, 300 - 64);
  assert.is(bridge.state, 'reading', "'drop' never pauses the TAP");
  port.txRoom = Infinity;
  await clock.advance(1);
  await turns(() => port.sent.length === 64, 'the queued 64');
  for (let i = 0; i < 64; i++) assert.is(seqOf(port.sent[i]!), i);
  c = bridge.counters();
  assert.is(c.toNic.frames + c.queueDrops, 300, 'every frame either sent or counted as dropped');
  await stop();
});

test('a NIC that takes five frames per call: order kept, bytes counted once, stalls counted, one retry per retryMs', async () => {
  const { clock, tap, port, bridge, stop } = setup();
  const sent = frames(200);
  bridge.start();
  port.txRoom = 5;
  tap.push(...sent);
  await turns(() => tap.inbound.length === 0 && port.sent.length === 5, 'the TAP read, five frames taken');
  let ms = 0;
  while (port.sent.length < 200 && ms < 1000) {
    port.txRoom = 5;
    await clock.advance(1);
    ms++;
  }
  assert.is(port.sent.length, 200);
  assert.is(ms, 39, 'the 195 queued frames at five a millisecond');
  for (let i = 0; i < 200; i++) assert.equal(port.sent[i], sent[i]);
  const c = bridge.counters();
  assert.is(c.toNic.frames, 200);
  assert.is(
    c.toNic.bytes,
    sent.reduce((s, f) => s + f.length, 0),
  );
  assert.ok(c.stalls >= 39);
  await stop();
  assert.is(port.txAvailable, 1024);
});

test('a NIC out of TX buffers pauses reading, and the bridge picks up again when buffers come back', async () => {
  const { clock, tap, port, bridge, stop } = setup({}, { txBuffers: 4 });
  port.txRoom = 0; // the ring holds nothing and the pool has 4 buffers
  bridge.start();
  tap.push(...frames(20));
  await turns(() => bridge.state === 'paused', 'the pool to run dry');
  assert.is(bridge.counters().queued, 4);
  await clock.advance(20);
  assert.is(tap.inbound.length, 16);
  port.txRoom = Infinity;
  // Each look (one per retryMs) sends what the four buffers hold, then finds the pool dry again.
  for (let ms = 0; ms < 10 && port.sent.length < 20; ms++) await clock.advance(1);
  assert.is(port.sent.length, 20, 'all 20 frames, four per millisecond');
  assert.equal(
    port.sent.map(seqOf),
    Array.from({ length: 20 }, (_, i) => i),
  );
  await stop();
});

test('runts and oversized frames from the TAP are counted and not sent; their buffers go back', async () => {
  const { tap, port, bridge, stop } = setup();
  bridge.start();
  tap.push(new Uint8Array(10), testFrame(1, 1600), testFrame(2, 60), testFrame(3, 1514));
  await turns(() => tap.inbound.length === 0 && port.sent.length === 2, 'the two good frames');
  const c = bridge.counters();
  assert.is(c.malformedFromTap, 2);
  assert.is(c.toNic.frames, 2);
  assert.is(seqOf(port.sent[0]!), 2);
  assert.is(port.sent[1]!.length, 1514);
  await stop();
  assert.is(port.txAvailable, 1024);
});

function ethernet(type: number, payload: number[] = [], len = 60): Uint8Array {
  const f = new Uint8Array(len);
  f.fill(0xff, 0, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

test('frame classes: ARP, IPv4 ICMP, other IPv4, IPv6, tagged ARP, other', async () => {
  const arp = ethernet(0x0806);
  const icmp = ethernet(0x0800, [0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1]);
  const udp = ethernet(0x0800, [0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17]);
  const v6 = ethernet(0x86dd);
  const tagged = ethernet(0x8100, [0x00, 0x05, 0x08, 0x06]);
  const lldp = ethernet(0x88cc);
  assert.is(frameClass(arp, 0, 60), 2);
  assert.is(frameClass(icmp, 0, 60), 3);
  assert.is(frameClass(udp, 0, 60), 4);
  assert.is(frameClass(v6, 0, 60), 5);
  assert.is(frameClass(tagged, 0, 60), 2);
  assert.is(frameClass(lldp, 0, 60), 6);
  // A 14-byte IPv4 "frame" has no protocol byte: counted as IPv4, never read past its end.
  assert.is(frameClass(ethernet(0x0800, [], 14), 0, 14), 4);

  const { tap, port, bridge, stop } = setup();
  bridge.start();
  tap.push(arp, icmp, icmp, udp, v6, tagged, lldp);
  port.deliver(icmp);
  port.deliver(arp);
  await turns(() => port.sent.length === 7 && tap.written.length === 2, 'frames both ways');
  const c = bridge.counters();
  assert.equal(c.toNic, { frames: 7, bytes: 420, arp: 2, icmp: 2, ipv4: 1, ipv6: 1, other: 1 });
  assert.equal(c.toTap, { frames: 2, bytes: 120, arp: 1, icmp: 1, ipv4: 0, ipv6: 0, other: 0 });
  await stop();
});

test('the NIC link is mirrored to the TAP carrier within waitMs, changes counted', async () => {
  const { clock, tap, port, bridge, stop } = setup();
  bridge.start();
  assert.equal(tap.carrier, [true], 'set at start');
  port.link = false;
  await clock.advance(WAIT - 1);
  assert.equal(tap.carrier, [true], 'not looked at again before waitMs');
  await clock.advance(1);
  assert.equal(tap.carrier, [true, false], 'carrier off within waitMs');
  port.link = true;
  await clock.advance(WAIT);
  assert.equal(tap.carrier, [true, false, true]);
  await clock.advance(5 * WAIT);
  assert.equal(tap.carrier, [true, false, true], 'no change, no call');
  assert.is(bridge.counters().linkChanges, 2);
  await stop();
});

test('link failures: a throwing linkUp is a port error, a failing TUNSETCARRIER a TAP write error tried again at the next look', async () => {
  const { clock, tap, port, bridge, errors, stop } = setup();
  bridge.start();
  assert.equal(tap.carrier, [true]);
  port.linkUp = () => {
    throw new Error('link register unreadable');
  };
  await clock.advance(WAIT);
  assert.is(bridge.counters().portErrors, 1);
  assert.equal(tap.carrier, [true], 'no change without an answer');
  port.linkUp = () => false;
  tap.setCarrier = () => {
    throw new Error('TUNSETCARRIER failed (EINVAL)');
  };
  await clock.advance(WAIT);
  assert.is(bridge.counters().tapWriteErrors, 1);
  await clock.advance(WAIT);
  assert.is(bridge.counters().tapWriteErrors, 2, 'tried again at the next look');
  assert.is(bridge.counters().linkChanges, 0);
  assert.is(errors.length, 3);
  await stop();
});

test("RX-side failures: a rejecting waitRx is counted once per waitMs; a frame outside the port's memory is refused, not written", async () => {
  const { clock, tap, port, bridge, stop } = setup();
  bridge.start();
  await clock.advance(WAIT); // the first waitRx ends: the next one rejects
  const waitRx = port.waitRx.bind(port);
  port.waitRx = () => Promise.reject(new Error('the container is gone'));
  await clock.advance(WAIT);
  const n = bridge.counters().portErrors;
  assert.ok(n >= 1 && n <= 2, `${n} errors`);
  await clock.advance(5 * WAIT);
  assert.is(bridge.counters().portErrors - n, 5, 'one per waitMs');
  port.waitRx = waitRx;
  await clock.advance(WAIT);
  const rxOffset = port.rxOffset.bind(port);
  port.rxOffset = (buf) => (buf === 0 ? port.rxBytes.length - 10 : rxOffset(buf));
  port.deliver(testFrame(1)); // lands in RX buffer 0, which the port now says ends past its memory
  port.deliver(testFrame(2));
  await turns(() => bridge.counters().malformedFromNic === 1 && tap.written.length === 1, 'one refused, one written');
  assert.is(seqOf(tap.written[0]!), 2);
  assert.is(port.rxOutstanding, 0, "the refused frame's buffer given back too");
  await stop();
});

test('a TAP that refuses writes: counted as tapWriteErrors, RX buffers still given back', async () => {
  const { tap, port, bridge, stop } = setup();
  tap.writable = false;
  bridge.start();
  for (const f of frames(5)) port.deliver(f);
  await turns(() => bridge.counters().tapWriteErrors === 5, 'five write errors');
  assert.is(port.rxOutstanding, 0);
  assert.is(bridge.counters().toTap.frames, 0);
  await stop();
});

test('stop(): orderly, bounded by one waitMs; queued frames go back to the NIC and are counted; nothing moves after', async () => {
  const { clock, tap, port, bridge } = setup({ queueFrames: 40, waitMs: 20 });
  port.txRoom = 0;
  bridge.start();
  tap.push(...frames(40));
  await turns(() => bridge.counters().queued === 40, 'a full queue');
  let done = false;
  const stopping = bridge.stop().then(() => {
    done = true;
  });
  assert.is(bridge.state, 'stopping');
  assert.not.ok(tap.watching);
  await clock.advance(19);
  assert.not.ok(done, 'the RX loop is still in its waitRx');
  await clock.advance(1);
  assert.ok(done, 'stopped once the waitRx (20 ms) ended');
  await stopping;
  assert.is(bridge.state, 'stopped');
  assert.is(clock.pending, 0, 'no timer left behind');
  const c = bridge.counters();
  assert.is(c.stopDrops, 40);
  assert.is(c.queued, 0);
  assert.is(port.txAvailable, 1024, 'every queued buffer returned');
  const writes = tap.written.length,
    offered = port.txOffered.length;
  port.txRoom = Infinity;
  port.deliver(testFrame(9));
  tap.push(testFrame(10));
  await clock.advance(40);
  assert.is(tap.written.length, writes, 'no write after stop');
  assert.is(port.txOffered.length, offered, 'no tx after stop');
  await bridge.stop(); // idempotent
  assert.throws(
    () => bridge.start(),
    (e: unknown) => e instanceof TapError && e.code === 'ERR_TAP_CLOSED',
  );
});

test('a port whose tx() claims more than it was offered: the bridge fails with ERR_TAP_PORT; suspend and resume recover it', async () => {
  const { clock, tap, port, bridge, errors, stop, port2 } = setup();
  port.lie = 5;
  bridge.start();
  tap.push(testFrame(1));
  await turns(() => errors.length > 0, 'the error');
  assert.ok(errors[0] instanceof TapError);
  assert.is((errors[0] as TapError).code, 'ERR_TAP_PORT');
  assert.match((errors[0] as Error).message, /tx\(\) returned 5 for 1 frames/);
  assert.is(bridge.state, 'failed');
  assert.not.ok(bridge.isRunning);
  assert.not.ok(tap.watching);
  assert.throws(() => bridge.start(), /stopped after its port broke the NicPort contract/);
  await clock.within(bridge.suspend(), WAIT);
  assert.is(bridge.state, 'suspended');
  const next = port2();
  bridge.resume(next);
  tap.push(testFrame(2));
  await turns(() => next.sent.length === 1, 'traffic on the new port');
  assert.is(seqOf(next.sent[0]!), 2);
  await stop();
});

test('a port whose rx() reports frames it did not put in the batch: the bridge fails with ERR_TAP_PORT', async () => {
  const { tap, port, bridge, errors, stop } = setup();
  port.rx = () => 3;
  bridge.start();
  port.deliver(testFrame(1));
  await turns(() => errors.length > 0, 'the error');
  assert.match((errors[0] as Error).message, /rx\(\) returned 3 but the batch holds 0 frames/);
  assert.is(bridge.state, 'failed');
  assert.is(tap.written.length, 0);
  await stop();
});

test('a failing TAP read is backed off: exactly one attempt per waitMs, nothing offered meanwhile; reading resumes when it works', async () => {
  const { clock, tap, port, bridge, errors, stop } = setup({ waitMs: 30 });
  bridge.start();
  port.txRoom = 0;
  tap.push(testFrame(0));
  await turns(() => bridge.counters().queued === 1, 'one frame queued');
  tap.readError = Object.assign(new Error('read failed (EBADFD)'), { code: 'EBADFD' });
  tap.push(testFrame(1));
  await turns(() => bridge.state === 'backoff', 'the read error');
  assert.is(bridge.counters().tapReadErrors, 1);
  assert.not.ok(tap.watching);
  const reads = tap.reads,
    offers = port.txOffered.length;
  await clock.advance(29);
  assert.is(tap.reads, reads, 'no read while backing off');
  assert.is(port.txOffered.length, offers, 'no offer while backing off');
  await clock.advance(1);
  assert.is(bridge.counters().tapReadErrors, 2, 'one more attempt after waitMs');
  assert.is(bridge.state, 'backoff');
  await clock.advance(90);
  assert.is(bridge.counters().tapReadErrors, 5);
  assert.is(errors.length, 5);
  tap.readError = null;
  port.txRoom = Infinity;
  await clock.advance(30);
  await turns(() => port.sent.length === 2, 'both frames once reads work');
  assert.equal(port.sent.map(seqOf), [0, 1]);
  assert.is(bridge.state, 'reading');
  assert.is(port.txAvailable, 1024);
  await stop();
});

test("whenFull 'drop' with a failing TAP read backs off too, instead of spinning on a readable fd", async () => {
  const { clock, tap, port, bridge, stop } = setup({ queueFrames: 32, whenFull: 'drop' });
  port.txRoom = 0;
  bridge.start();
  tap.push(...frames(40));
  await turns(() => bridge.counters().queueDrops === 8, 'eight frames dropped');
  tap.readError = Object.assign(new Error('read failed (EIO)'), { code: 'EIO' });
  tap.push(testFrame(100));
  await turns(() => bridge.state === 'backoff', 'the back-off');
  assert.is(bridge.counters().tapReadErrors, 1);
  await clock.advance(WAIT - 1);
  assert.is(bridge.counters().tapReadErrors, 1);
  await stop();
});

test('replacePort (a driver restart): the TAP stays, queued frames move to the new port in order, the old port is left alone', async () => {
  const { clock, tap, port: oldPort, bridge, errors, stop, port2 } = setup({ waitMs: 20 });
  oldPort.txRoom = 0; // the old driver stopped taking frames
  bridge.start();
  tap.push(...frames(10));
  await turns(() => bridge.counters().queued === 10, 'ten frames queued');
  const next = port2();
  await clock.within(bridge.replacePort(next), 20);
  assert.is(bridge.port, next);
  assert.is(bridge.state, 'reading');
  assert.is(oldPort.txAvailable, 1024, 'the old buffers were given back');
  await clock.advance(1);
  await turns(() => next.sent.length === 10, 'the queued frames on the new port');
  tap.push(...frames(5, 10));
  next.deliver(testFrame(500));
  await turns(() => next.sent.length === 15 && tap.written.length === 1, 'traffic both ways on the new port');
  assert.equal(
    next.sent.map(seqOf),
    Array.from({ length: 15 }, (_, i) => i),
  );
  const oldCalls = oldPort.txOffered.length;
  oldPort.deliver(testFrame(600));
  await clock.advance(30);
  assert.is(tap.written.length, 1, 'nothing read from the old port');
  assert.is(oldPort.txOffered.length, oldCalls, 'nothing offered to the old port');
  const c = bridge.counters();
  assert.is(c.portSwaps, 1);
  assert.is(c.swapDrops, 0);
  assert.is(c.toNic.frames, 15);
  assert.is(tap.unwatches >= 1 && tap.watching, true, 'the TAP was paused during the swap and watched after');
  assert.is(errors.length, 0);
  await stop();
  assert.is(next.txAvailable, 1024);
});

test('replacePort from a dead port: frames whose memory is gone are counted as swapDrops, never read from garbage', async () => {
  const { clock, tap, port: oldPort, bridge, stop, port2 } = setup({ waitMs: 20 });
  oldPort.txRoom = 0;
  bridge.start();
  tap.push(...frames(4));
  await turns(() => bridge.counters().queued === 4, 'four frames queued');
  Object.defineProperty(oldPort, 'txBytes', {
    get() {
      throw new Error('the container is gone');
    },
  });
  oldPort.txFree = () => {
    throw new Error('the container is gone');
  };
  const next = port2();
  await clock.within(bridge.replacePort(next), 20);
  const c = bridge.counters();
  assert.is(c.swapDrops, 4);
  assert.is(c.queued, 0);
  assert.is(next.txAvailable, 1024, 'no buffer of the new port leaked');
  tap.push(testFrame(99));
  await turns(() => next.sent.length === 1, 'new traffic flows');
  await stop();
});

test('resume onto a port that throws at once: the held frames are counted as swapDrops, the error reported', async () => {
  const { clock, tap, port: oldPort, bridge, errors, stop, port2 } = setup();
  oldPort.txRoom = 0;
  bridge.start();
  tap.push(...frames(3));
  await turns(() => bridge.counters().queued === 3, 'three frames queued');
  await clock.within(bridge.suspend(), WAIT);
  const next = port2();
  next.txAlloc = () => {
    throw new Error('the new container died too');
  };
  bridge.resume(next);
  const c = bridge.counters();
  assert.is(c.swapDrops, 3);
  assert.is(c.queued, 0);
  assert.ok(errors.some((e) => /died too/.test((e as Error).message)));
  await stop();
});

test('replacePort checks: a port whose buffers cannot hold its frames is refused; after stop() it says the bridge is not running', async () => {
  const { bridge, stop } = setup();
  bridge.start();
  await assertRejects(bridge.replacePort(new FakePort({ bufferSize: 1024 })), 'ERR_TAP_PORT');
  assert.ok(bridge.isRunning, 'a refused replacement leaves the bridge running');
  await stop();
  await assertRejects(bridge.replacePort(new FakePort()), 'ERR_TAP_CLOSED');
});

test('stop() during replacePort: the replacement gives up, the queue goes back to the old port', async () => {
  const { clock, tap, port: oldPort, bridge, port2 } = setup({ waitMs: 30 });
  oldPort.txRoom = 0;
  bridge.start();
  tap.push(...frames(3));
  await turns(() => bridge.counters().queued === 3, 'three frames queued');
  const next = port2();
  const swap = bridge.replacePort(next);
  assert.is(bridge.state, 'suspending');
  const stopping = bridge.stop();
  assert.is(bridge.state, 'stopping');
  await clock.within(Promise.all([swap, stopping]), 30);
  assert.is(bridge.state, 'stopped');
  assert.is(bridge.port, oldPort);
  assert.is(oldPort.txAvailable, 1024);
  assert.is(next.txAvailable, 1024);
  assert.is(bridge.counters().stopDrops, 3);
  assert.not.ok(bridge.isRunning);
});

test('suspend() then resume(): the bridge keeps no view of the old port, so its memory may go; frames arrive intact', async () => {
  const { clock, tap, port: oldPort, bridge, errors, stop, port2 } = setup({ waitMs: 20 });
  oldPort.txRoom = 0;
  bridge.start();
  const sent = frames(6);
  tap.push(...sent);
  await turns(() => bridge.counters().queued === 6, 'six frames queued');
  await clock.within(bridge.suspend(), 20);
  assert.is(bridge.state, 'suspended');
  assert.is(oldPort.txAvailable, 1024, 'every old buffer given back');
  assert.not.ok(bridge.isRunning);
  assert.not.ok(tap.watching, 'the TAP is not read while suspended');
  assert.is(clock.pending, 0, 'no timer while suspended');
  oldPort.txBytes.fill(0xee); // the old driver closed: its windows are gone
  tap.push(testFrame(6));
  await clock.advance(20);
  assert.is(tap.inbound.length, 1, 'frames wait in the host queue while suspended');
  assert.throws(() => bridge.start(), /suspended; carry on with resume/);
  await assertRejects(bridge.suspend(), 'ERR_TAP_ARG');
  const next = port2();
  bridge.resume(next);
  assert.is(bridge.state, 'reading');
  await clock.advance(1);
  await turns(() => next.sent.length === 7, 'all seven frames on the new port');
  for (let i = 0; i < 6; i++) assert.equal(next.sent[i], sent[i], `held frame ${i} intact`);
  assert.is(seqOf(next.sent[6]!), 6);
  assert.is(bridge.counters().portSwaps, 1);
  assert.is(errors.length, 0);
  assert.throws(
    () => bridge.resume(port2()),
    (e: unknown) => e instanceof TapError && e.code === 'ERR_TAP_ARG',
  );
  await stop();
  assert.throws(
    () => bridge.resume(port2()),
    (e: unknown) => e instanceof TapError && e.code === 'ERR_TAP_CLOSED',
  );
});

test('stop() while suspended: held frames counted in stopDrops, no port touched', async () => {
  const { clock, tap, port: oldPort, bridge } = setup();
  oldPort.txRoom = 0;
  bridge.start();
  tap.push(...frames(5));
  await turns(() => bridge.counters().queued === 5, 'five frames queued');
  await clock.within(bridge.suspend(), WAIT);
  oldPort.txFree = () => {
    throw new Error('must not be called');
  };
  await bridge.stop();
  assert.is(bridge.state, 'stopped');
  assert.is(bridge.counters().stopDrops, 5);
  assert.is(bridge.counters().queued, 0);
});

test('a dead driver (every port call throws): no uncaught exception, at most one attempt per waitMs each way, and a restart recovers', async () => {
  const { clock, tap, port: oldPort, bridge, errors, stop, port2 } = setup({ waitMs: 20 });
  bridge.start();
  tap.push(testFrame(0));
  await turns(() => oldPort.sent.length === 1, 'traffic before the crash');
  const dead = (): never => {
    throw new Error('driver container died');
  };
  oldPort.txAlloc = dead;
  oldPort.tx = dead;
  oldPort.rx = dead;
  oldPort.waitRx = () => Promise.resolve(true);
  tap.push(testFrame(1));
  await turns(() => bridge.state === 'backoff', 'the TX side backing off');
  await clock.advance(100);
  const n = bridge.counters().portErrors;
  // TX: one at the push, then one per 20 ms; RX: one per 20 ms once its waitRx ends: 11 in 100 ms.
  assert.ok(n >= 2, 'the failures are counted');
  assert.ok(n <= 2 * (100 / 20 + 1), `${n} port errors in 100 ms: spinning`);
  assert.is(errors.length, n);
  await clock.within(bridge.suspend(), 20);
  const next = port2();
  bridge.resume(next);
  await clock.advance(1);
  await turns(() => next.sent.length === 1, 'the waiting frame on the restarted driver');
  assert.is(seqOf(next.sent[0]!), 1);
  await stop();
});

test('a throwing onError observer does not break the data path', async () => {
  const clock = new FakeClock();
  const tap = new FakeTap();
  const port = new FakePort({ clock });
  const bridge = new TapBridge(tap, port, {
    waitMs: WAIT,
    clock,
    onError: () => {
      throw new Error('observer');
    },
  });
  bridge.start();
  tap.writable = false;
  port.deliver(testFrame(1));
  tap.readError = new Error('read failed');
  tap.push(testFrame(2));
  await turns(() => bridge.state === 'backoff' && bridge.counters().tapWriteErrors === 1, 'both errors');
  await clock.within(bridge.stop(), WAIT);
});

test('options are checked, with what is allowed', () => {
  const tap = new FakeTap(),
    port = new FakePort();
  const code = (e: unknown): boolean => e instanceof TapError && e.code === 'ERR_TAP_ARG';
  assert.throws(() => new TapBridge(tap, port, { batch: 0 }), code);
  assert.throws(() => new TapBridge(tap, port, { batch: 1.5 }), code);
  assert.throws(() => new TapBridge(tap, port, { batch: 64, queueFrames: 32 }), /queueFrames = 32 must be an integer from 64/);
  assert.throws(() => new TapBridge(tap, port, { retryMs: 0 }), code);
  assert.throws(() => new TapBridge(tap, port, { waitMs: 5000 }), code);
  assert.throws(() => new TapBridge(tap, port, { whenFull: 'block' as 'wait' }), /'wait' or 'drop'/);
  assert.throws(
    () => new TapBridge(tap, new FakePort({ bufferSize: 1000 })),
    (e: unknown) => e instanceof TapError && e.code === 'ERR_TAP_PORT',
  );
});

test.run();
