/**
 * Timeout escalation on the simulator, every path bounded: a command the device swallows is
 * aborted (§5.1) and fails with ERR_NVME_TIMEOUT while the controller stays usable; one the Abort
 * cannot reach forces a controller reset, after which I/O works again; a controller that stops
 * answering altogether ends up failed, with every wait bounded; CSTS.RDY that never comes is
 * bounded by CAP.TO; controller fatal status is recovered by a reset.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NvmeController } from '../../../drivers/nvme/controller.js';
import type { Clock, Platform, RegisterSpace } from '../../../drivers/contract/platform.js';
import { REG } from '../../../spec/nvme/registers.js';
import { ADDRESS, simRig, type SimRig } from './sim-target.js';
import { pattern } from './suite.js';

let rig: SimRig;
let c: NvmeController | undefined;
const logs: string[] = [];
const fast = { ioTimeoutMs: 60, adminTimeoutMs: 60, shutdownTimeoutMs: 200, log: (m: string) => logs.push(m) };

async function open(model = {}, driver = {}): Promise<NvmeController> {
  rig = simRig({ timeout: 1, ...model });
  logs.length = 0;
  c = await NvmeController.open(rig.machine.platform(ADDRESS), { ...fast, ...driver });
  return c;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

test.after.each(async () => {
  await c?.close();
  c?.platform.close();
  c = undefined;
});

for (const interrupts of ['poll', 'msix'] as const) {
  test(`${interrupts}: a swallowed I/O is aborted and fails with ERR_NVME_TIMEOUT; the controller stays usable`, async () => {
    const ctrl = await open({}, { interrupts });
    const ns = ctrl.namespaces[0]!;
    await ns.write(1, pattern(512, 1));
    rig.model.swallow(1);
    const t0 = performance.now();
    assert.is(await code(ns.read(1, 1)), 'ERR_NVME_TIMEOUT');
    assert.ok(performance.now() - t0 < 5000, 'bounded');
    assert.is(ctrl.aborts, 1);
    assert.is(ctrl.resets, 0);
    assert.equal(await ns.read(1, 1), pattern(512, 1));
    assert.ok(logs.some((l) => /sending Abort/.test(l)));
  });
}

/** A clock the test moves: `now()` is fake milliseconds; `sleep` advances it and yields one event-loop turn. */
function fakeClock(): Clock & { advance(ms: number): void } {
  let t = 0;
  return {
    now: () => t,
    sleep: (ms) => {
      t += ms;
      return new Promise((r) => setImmediate(r));
    },
    advance: (ms) => {
      t += ms;
    },
  };
}

/** Let the completion engine and the deferred model run `n` event-loop turns, with no time passing. */
async function turns(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

test('escalation on fake time: Abort once ioTimeoutMs has passed, a reset once it has passed again, then ERR_NVME_TIMEOUT', async () => {
  rig = simRig({ timeout: 1 });
  const clock = fakeClock();
  const p = rig.machine.platform(ADDRESS);
  const onFakeTime: Platform = Object.create(p, { clock: { value: clock } });
  const ctrl = (c = await NvmeController.open(onFakeTime, { ...fast, ioTimeoutMs: 1000, adminTimeoutMs: 1000 }));
  const ns = ctrl.namespaces[0]!;
  await ns.write(7, pattern(512, 7));
  rig.model.unabortable = true;
  rig.model.swallow(1);
  let outcome = 'pending';
  void code(ns.read(7, 1)).then((r) => (outcome = r));
  await turns();
  clock.advance(999);
  await turns();
  assert.equal([ctrl.aborts, ctrl.resets, outcome], [0, 0, 'pending'], 'nothing before the timeout, however many polls');
  // The polling engine looks for timeouts every 5 ms of clock time.
  clock.advance(5);
  await turns();
  assert.equal([ctrl.aborts, ctrl.resets, outcome], [1, 0, 'pending'], 'Abort at the timeout');
  clock.advance(999);
  await turns();
  assert.equal([ctrl.resets, outcome], [0, 'pending'], 'the Abort gets its own full timeout');
  clock.advance(5);
  await turns();
  assert.equal([ctrl.resets, outcome], [1, 'ERR_NVME_TIMEOUT'], 'then the reset fails the I/O');
  assert.is(ctrl.status().state, 'ready');
  assert.equal(await ns.read(7, 1), pattern(512, 7), 'and the controller works again');
});

test('an I/O the Abort cannot reach forces a controller reset; I/O works afterwards', async () => {
  const ctrl = await open({}, { queues: 2 });
  const ns = ctrl.namespaces[0]!;
  await ns.write(2, pattern(512, 2));
  rig.model.unabortable = true;
  rig.model.swallow(1);
  const t0 = performance.now();
  assert.is(await code(ns.read(2, 1)), 'ERR_NVME_TIMEOUT');
  assert.ok(performance.now() - t0 < 5000, 'bounded');
  assert.is(ctrl.resets, 1);
  // The reset recreates the queues: the next I/Os go through (and wait for the reset to finish).
  assert.equal(await ns.read(2, 1), pattern(512, 2));
  await ns.write(3, pattern(512, 3));
  assert.equal(await ns.read(3, 1), pattern(512, 3));
  assert.is(ctrl.status().state, 'ready');
  assert.is(rig.model.ioQueueCount, 2);
});

test('a controller that stops answering: the I/O fails with ERR_NVME_TIMEOUT, the controller is marked failed, all bounded', async () => {
  const ctrl = await open();
  const ns = ctrl.namespaces[0]!;
  await ns.write(0, pattern(512, 0));
  rig.fn.hang();
  const t0 = performance.now();
  const inflight = [ns.read(0, 1), ns.read(1, 1), ns.write(2, pattern(512, 9))];
  const codes = await Promise.all(inflight.map(code));
  assert.equal(codes, ['ERR_NVME_TIMEOUT', 'ERR_NVME_TIMEOUT', 'ERR_NVME_TIMEOUT']);
  // Escalation: Abort (no answer) then reset; the reset's admin commands get no answer either.
  for (let i = 0; i < 400 && ctrl.status().state !== 'failed'; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(ctrl.status().state, 'failed');
  assert.ok(performance.now() - t0 < 5000, `bounded (${Math.round(performance.now() - t0)} ms)`);
  const t1 = performance.now();
  assert.is(await code(ns.read(0, 1)), 'ERR_NVME_FATAL');
  assert.ok(performance.now() - t1 < 200, 'fails fast once failed');
  rig.fn.resume();
});

test('controller fatal status (CSTS.CFS) during I/O: a reset brings it back', async () => {
  const ctrl = await open();
  const ns = ctrl.namespaces[0]!;
  await ns.write(4, pattern(512, 4));
  rig.model.fatal('test');
  assert.is(await code(ns.read(4, 1)), 'ERR_NVME_TIMEOUT');
  assert.ok(ctrl.resets >= 1);
  assert.equal(await ns.read(4, 1), pattern(512, 4));
});

test('CSTS.RDY that never comes: open fails with ERR_NVME_TIMEOUT after CAP.TO (500 ms here)', async () => {
  rig = simRig({ timeout: 1 });
  const p = rig.machine.platform(ADDRESS);
  // A device that ignores CC writes: wrap BAR0 so CC never reaches it.
  const bar = p.bar(0);
  const deaf: RegisterSpace = {
    size: bar.size,
    read32: (o) => bar.read32(o),
    write32: (o, v) => (o === REG.CC.offset ? undefined : bar.write32(o, v)),
    read64: (o) => bar.read64(o),
    write64: (o, v) => bar.write64(o, v),
  };
  const wrapped: Platform = Object.create(p, { bar: { value: () => deaf } });
  const t0 = performance.now();
  assert.is(await code(NvmeController.open(wrapped, fast)), 'ERR_NVME_TIMEOUT');
  const took = performance.now() - t0;
  assert.ok(took >= 450 && took < 4000, `took ${Math.round(took)} ms`);
  p.close();
});

test('a controller that becomes ready but answers no admin command: open fails with ERR_NVME_TIMEOUT, bounded', async () => {
  rig = simRig({ timeout: 1 });
  rig.fn.hang();
  const p = rig.machine.platform(ADDRESS);
  const t0 = performance.now();
  assert.is(await code(NvmeController.open(p, fast)), 'ERR_NVME_TIMEOUT');
  assert.ok(performance.now() - t0 < 4000, `bounded (${Math.round(performance.now() - t0)} ms)`);
  rig.fn.resume();
  p.close();
});

test('CSTS.CFS at open is reported as ERR_NVME_FATAL with a fix', async () => {
  rig = simRig({ timeout: 1 });
  rig.model.fatal('test');
  const p = rig.machine.platform(ADDRESS);
  try {
    await NvmeController.open(p, fast);
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code: string }).code, 'ERR_NVME_FATAL');
    assert.match((e as Error).message, /fix:/);
  }
  p.close();
});

test.run();
