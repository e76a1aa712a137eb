import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, connect, type Socket } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FaultKind,
  HcStatus,
  HypercallError,
  HypercallRefused,
  LogLevel,
  ShutdownReason,
  type FaultReport,
  type Heartbeat,
  type LogRecord,
  type WindowMapping,
} from '../../../sandbox/abi/hypercall/index.js';
import { GuestEndpoint } from '../../../sandbox/container/hypercall/guest.js';
import { HostEndpoint, type HostHandler } from '../../../sandbox/manager/hypercall/host.js';
import { duplexPair, tick, type WriteCounts } from './helpers.js';
import { FakeTimers } from '../../helpers/fake-timers.js';

const WINDOWS: WindowMapping[] = [
  { iova: 0x100000n, length: 0x200000n, offset: 0n, fdSlot: 3, deviceRead: true, deviceWrite: true, hugePages: false },
  { iova: 0x40000000n, length: 0x1000000n, offset: 0x200000n, fdSlot: 3, deviceRead: false, deviceWrite: true, hugePages: true },
];

/** Host and guest over an in-process pair, both on one fake clock (`timers`). */
function setup(handler: Partial<HostHandler> = {}, hostExtra: Record<string, unknown> = {}, writes: WriteCounts = { a: 0, b: 0 }) {
  const [h, g] = duplexPair(writes);
  const timers = new FakeTimers();
  const violations: HypercallError[] = [];
  const guestViolations: HypercallError[] = [];
  const logs: LogRecord[] = [];
  const beats: Heartbeat[] = [];
  const faults: FaultReport[] = [];
  let readyQueues = 0;
  const host = new HostEndpoint(h, {
    windowCount: WINDOWS.length,
    handler: {
      mapWindow: (id) => WINDOWS[id]!,
      irqSetup: (r) => ({ granted: Math.min(r.vectors, 4), firstFdSlot: 5 }),
      log: (r) => logs.push(r),
      heartbeat: (b) => beats.push(b),
      fault: (f) => faults.push(f),
      ready: (r) => {
        readyQueues = r.queues;
      },
      ...handler,
    },
    onViolation: (e) => violations.push(e),
    timers,
    ...hostExtra,
  });
  const shutdowns: number[] = [];
  const guest = new GuestEndpoint(g, {
    name: 'nvme-test',
    handler: {
      shutdown: async (r) => {
        shutdowns.push(r.deadlineMs);
      },
      quiesce: (r) => (r.deadlineMs === 77 ? 3 : 0),
    },
    onViolation: (e) => guestViolations.push(e),
    timers,
  });
  return { host, guest, timers, violations, guestViolations, logs, beats, faults, shutdowns, ready: () => readyQueues };
}

test('round trip of every call', async () => {
  const s = setup();
  const session = await s.guest.hello();
  assert.equal(session, { version: 1, windowCount: 2, maxPayload: 1024, heartbeatMs: 1000 });
  assert.is(s.host.state, 'running');
  assert.is(s.host.peer?.name, 'nvme-test');
  assert.is(s.host.peer?.pid, process.pid);
  assert.equal(await s.guest.mapWindow(0), WINDOWS[0]);
  assert.equal(await s.guest.mapWindow(1), WINDOWS[1]);
  assert.equal(await s.guest.irqSetup('msix', 9), { granted: 4, firstFdSlot: 5 });
  const before = process.hrtime.bigint();
  const c = await s.guest.clock();
  assert.ok(c.monotonicNs >= before && c.monotonicNs <= process.hrtime.bigint());
  assert.ok(Math.abs(Number(c.realtimeNs / 1_000_000n) - Date.now()) < 1000);
  s.guest.log(LogLevel.WARN, 'controller ready: CSTS.RDY=1 ✓');
  s.guest.heartbeat({ completed: 10n, errors: 1n, bytes: 40960n, inflight: 2 });
  s.guest.fault({ kind: FaultKind.DMA, code: 0x04, iova: 0x20000000n });
  s.guest.ready(2);
  await tick();
  assert.equal(s.logs, [{ level: LogLevel.WARN, text: 'controller ready: CSTS.RDY=1 ✓' }]);
  assert.equal(s.beats, [{ completed: 10n, errors: 1n, bytes: 40960n, inflight: 2 }]);
  assert.equal(s.host.lastHeartbeat, s.beats[0]);
  assert.equal(s.faults, [{ kind: FaultKind.DMA, code: 4, iova: 0x20000000n }]);
  assert.is(s.ready(), 2);
  assert.is(s.host.state, 'ready');
  assert.equal(await s.host.quiesce(77), { inflight: 3 });
  await s.host.shutdown(250, ShutdownReason.RESTART);
  assert.equal(s.shutdowns, [250]);
  assert.equal(s.violations, []);
  assert.equal(s.guestViolations, []);
  s.host.close();
  await tick();
  assert.is(s.guest.stopped?.code, 'ERR_HC_CLOSED');
});

test('requests made in a batch leave in one write, and the replies to one chunk of frames in one write back', async () => {
  const writes = { a: 0, b: 0 };
  const s = setup({}, {}, writes);
  await s.guest.hello();
  writes.a = writes.b = 0;
  const both = await Promise.all(s.guest.batch(() => [s.guest.mapWindow(0), s.guest.mapWindow(1), s.guest.clock()]));
  assert.equal(both.slice(0, 2), WINDOWS);
  assert.is(writes.b, 1, 'the guest sent its three requests in one write');
  assert.is(writes.a, 1, 'the host answered the three in one write');
  writes.a = writes.b = 0;
  await Promise.all([s.guest.mapWindow(0), s.guest.mapWindow(1)]);
  assert.is(writes.b, 2, 'outside a batch, a write per request');
  s.host.close();
});

test('log text is bounded to 512 bytes at a character boundary and control characters are neutralised', async () => {
  const s = setup();
  await s.guest.hello();
  s.guest.log(LogLevel.INFO, 'é'.repeat(400));
  s.guest.log(LogLevel.ERROR, 'fake\nERROR line \x1b[31mred');
  await tick();
  assert.is(Buffer.byteLength(s.logs[0]!.text), 512);
  assert.is(s.logs[0]!.text, 'é'.repeat(256));
  assert.is(s.logs[1]!.text, 'fake?ERROR line ?[31mred');
  s.host.close();
});

test('a window outside the grant is denied and reported; the channel keeps working', async () => {
  const s = setup();
  await s.guest.hello();
  const e = await s.guest.mapWindow(2).catch((x) => x);
  assert.instance(e, HypercallRefused);
  assert.is(e.status, HcStatus.DENIED);
  assert.is(e.code, 'ERR_HC_REFUSED');
  assert.is(s.violations.length, 1);
  assert.is(s.violations[0]!.code, 'ERR_HC_BAD_FIELD');
  assert.is(s.violations[0]!.decision, 'drop');
  assert.equal(await s.guest.mapWindow(1), WINDOWS[1]);
  s.host.close();
});

test('handler answers: a status is passed on; a throw or rejection becomes INTERNAL, not a crash', async () => {
  const errors: unknown[] = [];
  const s = setup(
    {
      mapWindow: (id) => (id === 0 ? HcStatus.EXHAUSTED : Promise.reject(new Error('manager bug'))),
      irqSetup: () => {
        throw new Error('also a bug');
      },
    },
    { onHandlerError: (e: unknown) => errors.push(e) },
  );
  await s.guest.hello();
  assert.is((await s.guest.mapWindow(0).catch((x) => x)).status, HcStatus.EXHAUSTED);
  assert.is((await s.guest.mapWindow(1).catch((x) => x)).status, HcStatus.INTERNAL);
  assert.is((await s.guest.irqSetup('msix', 1).catch((x) => x)).status, HcStatus.INTERNAL);
  assert.is(errors.length, 2);
  assert.equal(s.violations, []);
  s.host.close();
});

test('a guest whose handler fails answers INTERNAL; the host sees a refusal', async () => {
  const [h, g] = duplexPair();
  const host = new HostEndpoint(h, { windowCount: 0, handler: { mapWindow: () => HcStatus.DENIED, irqSetup: () => HcStatus.DENIED } });
  const guest = new GuestEndpoint(g, {
    name: 'x',
    handler: {
      shutdown: () => {
        throw new Error('boom');
      },
      quiesce: () => Promise.reject(new Error('no')),
    },
  });
  await guest.hello();
  assert.is((await host.shutdown(10).catch((x) => x)).status, HcStatus.INTERNAL);
  assert.is((await host.quiesce(10).catch((x) => x)).status, HcStatus.INTERNAL);
  host.close();
});

test('a silent guest: no HELLO in time is a kill', async () => {
  const [h] = duplexPair();
  const violations: HypercallError[] = [];
  const timers = new FakeTimers();
  const host = new HostEndpoint(h, {
    windowCount: 1,
    helloTimeoutMs: 30,
    timers,
    handler: { mapWindow: () => HcStatus.DENIED, irqSetup: () => HcStatus.DENIED },
    onViolation: (e) => violations.push(e),
  });
  timers.advance(29);
  assert.equal(violations, [], 'not before the bound');
  assert.is(host.state, 'hello');
  timers.advance(1);
  assert.equal(
    violations.map((v) => [v.code, v.decision]),
    [['ERR_HC_TIMEOUT', 'kill']],
  );
  assert.is(host.state, 'stopped');
});

test('a HELLO in time clears the HELLO bound', async () => {
  const s = setup({}, { helloTimeoutMs: 30 });
  s.timers.advance(20);
  await s.guest.hello();
  s.timers.advance(100);
  assert.equal(s.violations, []);
  s.host.close();
});

test('a guest that stops its heartbeats is declared dead; one that keeps them is not', async () => {
  const s = setup({}, { heartbeatMs: 20, missedHeartbeats: 2 });
  await s.guest.hello();
  let n = 0n;
  for (let i = 0; i < 12; i++) {
    // 120 ms, a heartbeat every 10
    s.timers.advance(10);
    s.guest.heartbeat({ completed: ++n, errors: 0n, bytes: 0n, inflight: 0 });
    await tick();
  }
  assert.equal(s.violations, []);
  assert.is(s.beats.length, 12);
  s.timers.advance(39); // the last heartbeat was 0 ms ago: the bound is 2 x 20 ms
  assert.equal(s.violations, [], 'not before the bound');
  s.timers.advance(1);
  assert.equal(s.violations, [], 'the watchdog looks once more a turn later: heartbeats may be waiting unread after a stall');
  s.timers.advance(1);
  assert.equal(
    s.violations.map((v) => [v.code, v.decision]),
    [['ERR_HC_HEARTBEAT', 'kill']],
  );
  assert.match(s.violations[0]!.message, /no heartbeat from 'nvme-test' \(pid \d+\) for 40 ms/);
  assert.is(s.host.state, 'stopped');
});

test('a guest that never answers SHUTDOWN: the wait is bounded and ends in a kill', async () => {
  const s = setup({}, { replyGraceMs: 20 });
  await s.guest.hello();
  // Replace the guest's answer with silence by stopping its decoding.
  (s.guest as unknown as { decoder: { stop(): void } }).decoder.stop();
  let settled: unknown;
  void s.host.shutdown(10).then(
    (v) => {
      settled = v;
    },
    (e: unknown) => {
      settled = e;
    },
  );
  await tick();
  s.timers.advance(29); // the deadline (10 ms) plus the grace (20 ms)
  await tick();
  assert.is(settled, undefined, 'still waiting within deadline + grace');
  s.timers.advance(1);
  await tick();
  assert.is((settled as HypercallError).code, 'ERR_HC_TIMEOUT');
  assert.equal(
    s.violations.map((v) => [v.code, v.decision]),
    [['ERR_HC_TIMEOUT', 'kill']],
  );
  assert.is(s.host.state, 'stopped');
});

test('a silent manager: the guest wait is bounded', async () => {
  const [, g] = duplexPair();
  const timers = new FakeTimers();
  const guest = new GuestEndpoint(g, { name: 'x', timeoutMs: 30, timers, handler: { shutdown: () => {}, quiesce: () => 0 } });
  const p = guest.hello().catch((x) => x);
  timers.advance(30);
  const e = await p;
  assert.instance(e, HypercallError);
  assert.is(e.code, 'ERR_HC_TIMEOUT');
  assert.match(e.message, /no reply to HELLO seq 1 within 30 ms/);
  guest.close();
});

test('pending requests fail with ERR_HC_CLOSED when the peer goes away', async () => {
  const s = setup({ mapWindow: () => new Promise<WindowMapping>(() => {}) });
  await s.guest.hello();
  const p = s.guest.mapWindow(0).catch((x) => x);
  await tick();
  s.host.close();
  const e = await p;
  assert.is(e.code, 'ERR_HC_CLOSED');
});

test('works over a real unix socket, whatever the chunking', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-hc-'));
  const path = join(dir, 'hc.sock');
  let listening!: () => void;
  const isListening = new Promise<void>((r) => {
    listening = r;
  });
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer((sock) => {
      server.close();
      resolve(sock);
    });
    server.listen(path, listening);
  });
  await isListening;
  const client = connect(path);
  const sock = await accepted;
  const host = new HostEndpoint(sock, { windowCount: 2, handler: { mapWindow: (id) => WINDOWS[id]!, irqSetup: () => HcStatus.DENIED } });
  const guest = new GuestEndpoint(client, { name: 'sock', handler: { shutdown: () => {}, quiesce: () => 0 } });
  await guest.hello();
  const maps = await Promise.all(Array.from({ length: 50 }, (_, i) => guest.mapWindow(i % 2)));
  maps.forEach((m, i) => assert.equal(m, WINDOWS[i % 2]));
  host.close();
  guest.close();
});

test('guest calls before hello() fail here, clearly, instead of getting the container killed', async () => {
  const s = setup();
  const e = await s.guest.mapWindow(0).catch((x) => x);
  assert.is(e.code, 'ERR_HC_NOT_STARTED');
  assert.throws(() => s.guest.log(LogLevel.INFO, 'early'), /before hello\(\)/);
  assert.throws(() => s.guest.heartbeat({ completed: 0n, errors: 0n, bytes: 0n, inflight: 0 }), /ERR_HC_NOT_STARTED|before hello/);
  await tick();
  assert.equal(s.violations, [], 'nothing reached the host');
  s.host.close();
});

test('startHeartbeats keeps a short-period watchdog satisfied, and stops', async () => {
  const s = setup({}, { heartbeatMs: 20, missedHeartbeats: 2 });
  await s.guest.hello();
  let n = 0n;
  const stop = s.guest.startHeartbeats(() => ({ completed: ++n, errors: 0n, bytes: n * 4096n, inflight: 1 }));
  for (let i = 0; i < 15; i++) {
    // 150 ms: a heartbeat every half period (10 ms)
    s.timers.advance(10);
    await tick();
  }
  assert.equal(s.violations, []);
  assert.is(s.beats.length, 15);
  stop();
  s.timers.advance(39);
  await tick();
  assert.equal(s.violations, []);
  s.timers.advance(2); // the bound, then the watchdog's second look a turn later
  assert.equal(
    s.violations.map((v) => v.code),
    ['ERR_HC_HEARTBEAT'],
  );
});

test.run();
