/**
 * The TAP bridge over fake ends (fakes.ts): order and batching both ways, back-pressure without
 * loss ('wait'), bounded-queue drops ('drop'), partial acceptance, malformed frames, counters by
 * frame class, link mirroring, stop(), and a port that breaks the contract.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TapBridge, frameClass } from '../../../linkback/tap/bridge.js';
import { TapError } from '../../../linkback/tap/errors.js';
import { FakePort, FakeTap, seqOf, settle, testFrame, until } from './fakes.js';

function setup(opts: ConstructorParameters<typeof TapBridge>[2] = {}, portOpts: ConstructorParameters<typeof FakePort>[0] = {}) {
  const tap = new FakeTap();
  const port = new FakePort(portOpts);
  const errors: unknown[] = [];
  const bridge = new TapBridge(tap, port, { waitMs: 10, onError: (e) => errors.push(e), ...opts });
  return { tap, port, bridge, errors };
}

function frames(n: number, from = 0, len = 64): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => testFrame(from + i, len + (i % 7)));
}

test('TAP -> NIC: every frame, in order, byte for byte, in batches of at most 32; buffers all returned', async () => {
  const { tap, port, bridge, errors } = setup();
  bridge.start();
  const sent = frames(100);
  tap.push(...sent);
  await until(() => port.sent.length === 100, '100 frames at the NIC');
  for (let i = 0; i < 100; i++) assert.equal(port.sent[i], sent[i], `frame ${i}`);
  assert.ok(Math.max(...port.txOffered) <= 32, `a batch of ${Math.max(...port.txOffered)} was offered`);
  assert.ok(port.txOffered.length <= 10, `${port.txOffered.length} tx calls for 100 frames: not batched`);
  const c = bridge.counters();
  assert.is(c.toNic.frames, 100);
  assert.is(c.toNic.bytes, sent.reduce((s, f) => s + f.length, 0));
  assert.is(c.toNic.other, 100);
  assert.is(c.queued, 0);
  await bridge.stop();
  assert.is(port.txAvailable, 1024);
  assert.is(errors.length, 0);
});

test('NIC -> TAP: every frame, in order, at most 32 per rx() call; RX buffers all given back', async () => {
  const { tap, port, bridge } = setup();
  bridge.start();
  const got = frames(70, 1000);
  for (const f of got) port.deliver(f);
  await until(() => tap.written.length === 70, '70 frames on the TAP');
  for (let i = 0; i < 70; i++) assert.equal(tap.written[i], got[i], `frame ${i}`);
  assert.ok(Math.max(...port.rxGiven) <= 32);
  assert.is(port.rxOutstanding, 0);
  assert.is(bridge.counters().toTap.frames, 70);
  await bridge.stop();
});

test("back-pressure, whenFull 'wait': a full NIC ring loses nothing; the TAP is paused while the queue is full", async () => {
  const { tap, port, bridge } = setup({ queueFrames: 64 });
  port.txRoom = 0;
  bridge.start();
  tap.push(...frames(300));
  await until(() => bridge.counters().queued === 64, 'the queue to fill');
  await settle(30);
  let c = bridge.counters();
  assert.is(c.queued, 64, 'queue bounded');
  assert.is(tap.inbound.length, 300 - 64, 'the rest stays in the host queue, unread');
  assert.is(c.queueDrops, 0);
  assert.ok(c.stalls > 0, 'retries counted as stalls');
  assert.ok(c.queueFull > 0);
  assert.not.ok(tap.watching, 'TAP paused');
  port.txRoom = Infinity;
  await until(() => port.sent.length === 300, 'all 300 frames once the ring has room');
  for (let i = 0; i < 300; i++) assert.is(seqOf(port.sent[i]!), i, `frame ${i} in order`);
  c = bridge.counters();
  assert.is(c.toNic.frames, 300);
  assert.is(c.queueDrops, 0);
  assert.ok(tap.watching, 'TAP watched again');
  await bridge.stop();
});

test("whenFull 'drop': the bounded queue keeps the first frames, later ones are dropped and counted", async () => {
  const { tap, port, bridge } = setup({ queueFrames: 64, whenFull: 'drop' });
  port.txRoom = 0;
  bridge.start();
  tap.push(...frames(300));
  await until(() => tap.inbound.length === 0, 'the TAP drained');
  let c = bridge.counters();
  assert.is(c.queued, 64);
  assert.is(c.queueDrops, 300 - 64);
  port.txRoom = Infinity;
  await until(() => port.sent.length === 64, 'the queued 64');
  for (let i = 0; i < 64; i++) assert.is(seqOf(port.sent[i]!), i);
  c = bridge.counters();
  assert.is(c.toNic.frames + c.queueDrops, 300, 'every frame either sent or counted as dropped');
  await bridge.stop();
});

test('a NIC that takes a few frames per call: order kept, bytes counted once, stalls counted', async () => {
  const { tap, port, bridge } = setup();
  const sent = frames(200);
  bridge.start();
  // Five frames of room per millisecond or so.
  port.txRoom = 5;
  const refill = setInterval(() => { port.txRoom = 5; }, 1);
  tap.push(...sent);
  try {
    await until(() => port.sent.length === 200, '200 frames at five per call');
  } finally {
    clearInterval(refill);
  }
  for (let i = 0; i < 200; i++) assert.equal(port.sent[i], sent[i]);
  const c = bridge.counters();
  assert.is(c.toNic.frames, 200);
  assert.is(c.toNic.bytes, sent.reduce((s, f) => s + f.length, 0));
  assert.ok(c.stalls > 0);
  await bridge.stop();
  assert.is(port.txAvailable, 1024);
});

test('a NIC out of TX buffers pauses reading, and the bridge picks up again when buffers come back', async () => {
  const { tap, port, bridge } = setup({}, { txBuffers: 4 });
  port.txRoom = 0; // the ring holds nothing and the pool has 4 buffers
  bridge.start();
  tap.push(...frames(20));
  await until(() => bridge.counters().queued === 4, 'four frames in hand');
  await settle(20);
  assert.is(tap.inbound.length, 16);
  port.txRoom = Infinity;
  await until(() => port.sent.length === 20, 'all 20 frames');
  await bridge.stop();
});

test('runts and oversized frames from the TAP are counted and not sent; their buffers go back', async () => {
  const { tap, port, bridge } = setup();
  bridge.start();
  tap.push(new Uint8Array(10), testFrame(1, 1600), testFrame(2, 60), testFrame(3, 1514));
  await until(() => port.sent.length === 2, 'the two good frames');
  await settle(10);
  const c = bridge.counters();
  assert.is(c.malformedFromTap, 2);
  assert.is(c.toNic.frames, 2);
  assert.is(seqOf(port.sent[0]!), 2);
  assert.is(port.sent[1]!.length, 1514);
  await bridge.stop();
  assert.is(port.txAvailable, 1024);
});

function ethernet(type: number, payload: number[] = [], len = 60): Uint8Array {
  const f = new Uint8Array(len);
  f.fill(0xff, 0, 6);
  f[12] = type >> 8; f[13] = type & 0xff;
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

  const { tap, port, bridge } = setup();
  bridge.start();
  tap.push(arp, icmp, icmp, udp, v6, tagged, lldp);
  port.deliver(icmp);
  port.deliver(arp);
  await until(() => port.sent.length === 7 && tap.written.length === 2, 'frames both ways');
  const c = bridge.counters();
  assert.equal(c.toNic, { frames: 7, bytes: 420, arp: 2, icmp: 2, ipv4: 1, ipv6: 1, other: 1 });
  assert.equal(c.toTap, { frames: 2, bytes: 120, arp: 1, icmp: 1, ipv4: 0, ipv6: 0, other: 0 });
  await bridge.stop();
});

test('the NIC link is mirrored to the TAP carrier, changes counted', async () => {
  const { tap, port, bridge } = setup();
  bridge.start();
  assert.equal(tap.carrier, [true]);
  port.link = false;
  await until(() => tap.carrier.length === 2, 'carrier off');
  port.link = true;
  await until(() => tap.carrier.length === 3, 'carrier on');
  assert.equal(tap.carrier, [true, false, true]);
  assert.is(bridge.counters().linkChanges, 2);
  await bridge.stop();
});

test('a TAP that refuses writes: counted as tapWriteErrors, RX buffers still given back', async () => {
  const { tap, port, bridge } = setup();
  tap.writable = false;
  bridge.start();
  for (const f of frames(5)) port.deliver(f);
  await until(() => bridge.counters().tapWriteErrors === 5, 'five write errors');
  assert.is(port.rxOutstanding, 0);
  assert.is(bridge.counters().toTap.frames, 0);
  await bridge.stop();
});

test('stop(): orderly and bounded; queued frames go back to the NIC and are counted; nothing moves after', async () => {
  const { tap, port, bridge } = setup({ queueFrames: 40, waitMs: 20 });
  port.txRoom = 0;
  bridge.start();
  tap.push(...frames(40));
  await until(() => bridge.counters().queued === 40, 'a full queue');
  const t0 = Date.now();
  await bridge.stop();
  // Bounded by one waitRx (20 ms); generous for a loaded machine, far below "hangs".
  assert.ok(Date.now() - t0 < 1000, `stop took ${Date.now() - t0} ms`);
  const c = bridge.counters();
  assert.is(c.stopDrops, 40);
  assert.is(c.queued, 0);
  assert.is(port.txAvailable, 1024, 'every queued buffer returned');
  assert.not.ok(tap.watching);
  const writes = tap.written.length, offered = port.txOffered.length;
  port.txRoom = Infinity;
  port.deliver(testFrame(9));
  tap.push(testFrame(10));
  await settle(40);
  assert.is(tap.written.length, writes, 'no write after stop');
  assert.is(port.txOffered.length, offered, 'no tx after stop');
  await bridge.stop(); // idempotent
  assert.throws(() => bridge.start(), (e: unknown) => e instanceof TapError && e.code === 'ERR_TAP_CLOSED');
});

test('a port whose tx() claims more than it was offered stops the bridge with ERR_TAP_PORT', async () => {
  const { tap, port, bridge, errors } = setup();
  port.lie = 5;
  bridge.start();
  tap.push(testFrame(1));
  await until(() => errors.length > 0, 'the error');
  assert.ok(errors[0] instanceof TapError);
  assert.is((errors[0] as TapError).code, 'ERR_TAP_PORT');
  assert.match((errors[0] as Error).message, /tx\(\) returned 5 for 1 frames/);
  assert.not.ok(bridge.isRunning);
  await bridge.stop();
});

test('a failing TAP read is counted and backed off (no spin), and reading resumes when it works again', async () => {
  const { tap, port, bridge, errors } = setup({ waitMs: 30 });
  bridge.start();
  // Queued frames keep the retry timer running through the back-off: it must not read either.
  port.txRoom = 0;
  tap.push(testFrame(0));
  await until(() => bridge.counters().queued === 1, 'one frame queued');
  tap.readError = Object.assign(new Error('read failed (EBADFD)'), { code: 'EBADFD' });
  tap.push(testFrame(1));
  const t0 = Date.now();
  await until(() => bridge.counters().tapReadErrors >= 1, 'the read error');
  await settle(40);
  // One attempt per back-off period (30 ms) at most, however late the timers run on a loaded machine.
  const bound = Math.floor((Date.now() - t0) / 30) + 2;
  assert.ok(bridge.counters().tapReadErrors <= bound, `${bridge.counters().tapReadErrors} read errors in ${Date.now() - t0} ms: spinning`);
  assert.is(errors.length, bridge.counters().tapReadErrors);
  tap.readError = null;
  port.txRoom = Infinity;
  await until(() => port.sent.length === 2, 'both frames once reads work');
  assert.equal(port.sent.map(seqOf), [0, 1]);
  assert.is(port.txAvailable, 1024);
  await bridge.stop();
});

test('replacePort (a driver restart): the TAP stays, queued frames move to the new port in order, the old port is left alone', async () => {
  const { tap, port: oldPort, bridge, errors } = setup({ waitMs: 20 });
  oldPort.txRoom = 0; // the old driver stopped taking frames
  bridge.start();
  tap.push(...frames(10));
  await until(() => bridge.counters().queued === 10, 'ten frames queued');
  const next = new FakePort();
  await bridge.replacePort(next);
  assert.is(bridge.port, next);
  assert.is(oldPort.txAvailable, 1024, 'the old buffers were given back');
  await until(() => next.sent.length === 10, 'the queued frames on the new port');
  tap.push(...frames(5, 10));
  next.deliver(testFrame(500));
  await until(() => next.sent.length === 15 && tap.written.length === 1, 'traffic both ways on the new port');
  assert.equal(next.sent.map(seqOf), Array.from({ length: 15 }, (_, i) => i));
  const oldCalls = oldPort.txOffered.length;
  oldPort.deliver(testFrame(600));
  await settle(30);
  assert.is(tap.written.length, 1, 'nothing read from the old port');
  assert.is(oldPort.txOffered.length, oldCalls, 'nothing offered to the old port');
  const c = bridge.counters();
  assert.is(c.portSwaps, 1);
  assert.is(c.swapDrops, 0);
  assert.is(c.toNic.frames, 15);
  assert.is(tap.unwatches >= 1 && tap.watching, true, 'the TAP was paused during the swap and watched after');
  assert.is(errors.length, 0);
  await bridge.stop();
  assert.is(next.txAvailable, 1024);
});

test('replacePort from a dead port: frames whose memory is gone are counted as swapDrops, never read from garbage', async () => {
  const { tap, port: oldPort, bridge } = setup({ waitMs: 20 });
  oldPort.txRoom = 0;
  bridge.start();
  tap.push(...frames(4));
  await until(() => bridge.counters().queued === 4, 'four frames queued');
  Object.defineProperty(oldPort, 'txBytes', { get() { throw new Error('the container is gone'); } });
  oldPort.txFree = () => { throw new Error('the container is gone'); };
  const next = new FakePort();
  await bridge.replacePort(next);
  const c = bridge.counters();
  assert.is(c.swapDrops, 4);
  assert.is(c.queued, 0);
  assert.is(next.txAvailable, 1024, 'no buffer of the new port leaked');
  tap.push(testFrame(99));
  await until(() => next.sent.length === 1, 'new traffic flows');
  await bridge.stop();
});

test('replacePort checks: a port whose buffers cannot hold its frames is refused; after stop() it says the bridge is not running', async () => {
  const { bridge } = setup({ waitMs: 10 });
  bridge.start();
  await assertRejects(bridge.replacePort(new FakePort({ bufferSize: 1024 })), 'ERR_TAP_PORT');
  assert.ok(bridge.isRunning, 'a refused replacement leaves the bridge running');
  await bridge.stop();
  await assertRejects(bridge.replacePort(new FakePort()), 'ERR_TAP_CLOSED');
});

test('stop() during replacePort: the replacement gives up, the queue goes back to the old port', async () => {
  const { tap, port: oldPort, bridge } = setup({ waitMs: 30 });
  oldPort.txRoom = 0;
  bridge.start();
  tap.push(...frames(3));
  await until(() => bridge.counters().queued === 3, 'three frames queued');
  const next = new FakePort();
  const swap = bridge.replacePort(next);
  await bridge.stop();
  await swap;
  assert.is(bridge.port, oldPort);
  assert.is(oldPort.txAvailable, 1024);
  assert.is(next.txAvailable, 1024);
  assert.is(bridge.counters().stopDrops, 3);
  assert.not.ok(bridge.isRunning);
});

test('suspend() then resume(): the bridge keeps no view of the old port, so its memory may go; frames arrive intact', async () => {
  const { tap, port: oldPort, bridge, errors } = setup({ waitMs: 20 });
  oldPort.txRoom = 0;
  bridge.start();
  const sent = frames(6);
  tap.push(...sent);
  await until(() => bridge.counters().queued === 6, 'six frames queued');
  await bridge.suspend();
  assert.is(oldPort.txAvailable, 1024, 'every old buffer given back');
  assert.not.ok(bridge.isRunning);
  assert.not.ok(tap.watching, 'the TAP is not read while suspended');
  oldPort.txBytes.fill(0xee); // the old driver closed: its windows are gone
  tap.push(testFrame(6));
  await settle(20);
  assert.is(tap.inbound.length, 1, 'frames wait in the host queue while suspended');
  assert.throws(() => bridge.start(), /suspended; carry on with resume/);
  await assertRejects(bridge.suspend(), 'ERR_TAP_ARG');
  const next = new FakePort();
  bridge.resume(next);
  await until(() => next.sent.length === 7, 'all seven frames on the new port');
  for (let i = 0; i < 6; i++) assert.equal(next.sent[i], sent[i], `held frame ${i} intact`);
  assert.is(seqOf(next.sent[6]!), 6);
  assert.is(bridge.counters().portSwaps, 1);
  assert.is(errors.length, 0);
  assert.throws(() => bridge.resume(new FakePort()), (e: unknown) => e instanceof TapError && e.code === 'ERR_TAP_ARG');
  await bridge.stop();
});

test('stop() while suspended: held frames counted in stopDrops, no port touched', async () => {
  const { tap, port: oldPort, bridge } = setup({ waitMs: 10 });
  oldPort.txRoom = 0;
  bridge.start();
  tap.push(...frames(5));
  await until(() => bridge.counters().queued === 5, 'five frames queued');
  await bridge.suspend();
  oldPort.txFree = () => { throw new Error('must not be called'); };
  await bridge.stop();
  assert.is(bridge.counters().stopDrops, 5);
  assert.is(bridge.counters().queued, 0);
});

test('a dead driver (every port call throws): no uncaught exception, errors at a bounded rate, and a restart recovers', async () => {
  const { tap, port: oldPort, bridge, errors } = setup({ waitMs: 20 });
  bridge.start();
  tap.push(testFrame(0));
  await until(() => oldPort.sent.length === 1, 'traffic before the crash');
  const dead = (): never => { throw new Error('driver container died'); };
  oldPort.txAlloc = dead; oldPort.tx = dead; oldPort.rx = dead; oldPort.waitRx = () => Promise.resolve(true);
  const t0 = Date.now();
  tap.push(testFrame(1));
  await settle(100);
  const elapsed = Date.now() - t0;
  const n = bridge.counters().portErrors;
  assert.ok(n >= 1, 'the failures are counted');
  // Each side retries at most once per waitMs (20 ms): about 2 x 100 / 20, never thousands.
  assert.ok(n <= 2 * (elapsed / 20 + 2), `${n} port errors in ${elapsed} ms: spinning`);
  assert.is(errors.length, n);
  await bridge.suspend();
  const next = new FakePort();
  bridge.resume(next);
  await until(() => next.sent.length === 1, 'the waiting frame on the restarted driver');
  assert.is(seqOf(next.sent[0]!), 1);
  await bridge.stop();
});

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

test('options are checked, with what is allowed', () => {
  const tap = new FakeTap(), port = new FakePort();
  const code = (e: unknown): boolean => e instanceof TapError && e.code === 'ERR_TAP_ARG';
  assert.throws(() => new TapBridge(tap, port, { batch: 0 }), code);
  assert.throws(() => new TapBridge(tap, port, { batch: 1.5 }), code);
  assert.throws(() => new TapBridge(tap, port, { batch: 64, queueFrames: 32 }), /queueFrames = 32 must be an integer from 64/);
  assert.throws(() => new TapBridge(tap, port, { retryMs: 0 }), code);
  assert.throws(() => new TapBridge(tap, port, { waitMs: 5000 }), code);
  assert.throws(() => new TapBridge(tap, port, { whenFull: 'block' as 'wait' }), /'wait' or 'drop'/);
  assert.throws(() => new TapBridge(tap, new FakePort({ bufferSize: 1000 })), (e: unknown) => e instanceof TapError && e.code === 'ERR_TAP_PORT');
});

test.run();
