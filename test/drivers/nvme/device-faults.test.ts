/**
 * The NVMe driver against every fault class of the NVMe model (sim/faults, sim/nvme/fault-plan.ts),
 * with the device-fault oracle: (a) the driver detects and reports the fault (a status error, a
 * timeout, a reset, a failed controller) and every wait is bounded in real time; (b) no read
 * resolves with data the device did not deliver correctly where the device reported an error; (c)
 * once the plan is spent (times=1) the driver recovers: I/O works again, after a reset it did
 * itself or, for faults during bring-up, after opening the controller again.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NvmeController } from '../../../drivers/nvme/controller.js';
import type { Platform } from '../../../drivers/contract/platform.js';
import { parsePlan } from '../../../sim/faults/plan.js';
import { faultClasses } from '../../../sim/faults/registry.js';
import { ADDRESS, simRig, type SimRig } from './sim-target.js';
import { pattern } from './suite.js';

let rig: SimRig;
let platform: Platform | undefined;
let c: NvmeController | undefined;
const logs: string[] = [];
const fast = { ioTimeoutMs: 60, adminTimeoutMs: 60, shutdownTimeoutMs: 200, log: (m: string) => logs.push(m) };
/** Every scenario's bound: escalation is 60 ms per stage, CAP.TO is 500 ms. */
const BOUND_MS = 5000;
const covered = new Set<string>();

function build(plan: string): Platform {
  covered.add(plan.split(/[:@]/)[0]!);
  rig = simRig({ timeout: 1, faultPlan: parsePlan(plan) });
  logs.length = 0;
  return (platform = rig.machine.platform(ADDRESS));
}

async function open(plan: string, driver = {}): Promise<NvmeController> {
  c = await NvmeController.open(build(plan), { ...fast, ...driver });
  return c;
}

/** The outcome of a promise: 'resolved' or the error's code; and it must settle within BOUND_MS. */
async function code(p: Promise<unknown>): Promise<string> {
  const t0 = performance.now();
  let out: string;
  try {
    await p;
    out = 'resolved';
  } catch (e) {
    out = (e as { code?: string }).code ?? String(e);
  }
  assert.ok(performance.now() - t0 < BOUND_MS, `settled in ${Math.round(performance.now() - t0)} ms`);
  return out;
}

/** Write distinct blocks 0..7, for reads to check against. */
async function seed(ctrl: NvmeController): Promise<void> {
  for (let b = 0; b < 8; b++) await ctrl.namespaces[0]!.write(b, pattern(512, 100 + b));
}

/** (c): the device behaves again and the driver works: every seeded block reads back right. */
async function works(ctrl: NvmeController): Promise<void> {
  const ns = ctrl.namespaces[0]!;
  for (let b = 0; b < 8; b++) assert.equal(await ns.read(b, 1), pattern(512, 100 + b), `block ${b} after the fault`);
  await ns.write(9, pattern(512, 9));
  assert.equal(await ns.read(9, 1), pattern(512, 9));
  assert.is(ctrl.status().state, 'ready');
}

test.after.each(async () => {
  await c?.close();
  platform?.close();
  c = undefined;
  platform = undefined;
});

for (const type of ['generic', 'media', 'path'] as const) {
  test(`nvme.status type=${type}: the read fails with its status, no data; the next read is right`, async () => {
    const ctrl = await open(`nvme.status:type=${type},on=read,after=2`);
    await seed(ctrl);
    const ns = ctrl.namespaces[0]!;
    assert.equal(await ns.read(0, 1), pattern(512, 100));
    assert.equal(await ns.read(1, 1), pattern(512, 101));
    let got: unknown;
    try {
      got = await ns.read(2, 1);
    } catch (e) {
      got = e;
    }
    assert.instance(got, Error, 'no success for a read the device failed');
    const e = got as { code: string; sct: number };
    assert.is(e.code, 'ERR_NVME_STATUS');
    assert.is(e.sct, { generic: 0, media: 2, path: 3 }[type]);
    assert.is(rig.model.faultPlan!.injector.fired, 1);
    await works(ctrl);
  });
}

test('nvme.status on a write: the write fails, and the data the device refused is not reported as stored', async () => {
  const ctrl = await open('nvme.status:on=write,after=8');
  await seed(ctrl);
  const ns = ctrl.namespaces[0]!;
  assert.is(await code(ns.write(3, pattern(512, 7))), 'ERR_NVME_STATUS');
  assert.equal(await ns.read(3, 1), pattern(512, 103), 'the failed write changed nothing');
  await works(ctrl);
});

for (const interrupts of ['poll', 'msix'] as const) {
  test(`nvme.drop-completion (${interrupts}): the read times out (Abort, then a reset), bounded; the controller works again`, async () => {
    const ctrl = await open('nvme.drop-completion:on=read', { interrupts });
    await seed(ctrl);
    assert.is(await code(ctrl.namespaces[0]!.read(4, 1)), 'ERR_NVME_TIMEOUT');
    assert.ok(ctrl.resets >= 1, 'a completion the device dropped ends in a reset (the Abort cannot find it)');
    await works(ctrl);
  });
}

test('nvme.duplicate-completion: the second copy names a CID no longer in flight: logged, ignored; data right', async () => {
  const ctrl = await open('nvme.duplicate-completion:on=read,times=3');
  await seed(ctrl);
  await works(ctrl);
  assert.is(rig.model.faultPlan!.injector.fired, 3);
  assert.is(ctrl.unknownCids, 3);
  assert.ok(logs.some((l) => /matches no command in flight/.test(l)));
});

test('nvme.reorder-completions: completions out of order reach the right reads', async () => {
  const ctrl = await open('nvme.reorder-completions:times=-1');
  await seed(ctrl);
  const ns = ctrl.namespaces[0]!;
  for (let round = 0; round < 4; round++) {
    const reads = await Promise.all(Array.from({ length: 8 }, (_, b) => ns.read(b, 1)));
    reads.forEach((r, b) => assert.equal(r, pattern(512, 100 + b), `block ${b}`));
  }
  assert.ok(rig.model.faultPlan!.injector.fired >= 1, 'some batch was reordered');
  assert.is(ctrl.unknownCids, 0);
});

test('nvme.wrong-cid: the real command never completes (timeout, reset); the forged CID is logged, never trusted', async () => {
  const ctrl = await open('nvme.wrong-cid:on=read');
  await seed(ctrl);
  assert.is(await code(ctrl.namespaces[0]!.read(5, 1)), 'ERR_NVME_TIMEOUT');
  assert.ok(ctrl.unknownCids >= 1);
  await works(ctrl);
});

test('nvme.wrong-phase: a completion with the stale phase is not consumed; the read times out; recovered by a reset', async () => {
  const ctrl = await open('nvme.wrong-phase:on=read');
  await seed(ctrl);
  assert.is(await code(ctrl.namespaces[0]!.read(6, 1)), 'ERR_NVME_TIMEOUT');
  assert.ok(ctrl.resets >= 1);
  await works(ctrl);
});

for (const mode of ['backwards', 'past-tail'] as const) {
  test(`nvme.sq-head mode=${mode}: SQHD is not trusted for queue room; I/O goes on`, async () => {
    const ctrl = await open(`nvme.sq-head:mode=${mode},times=-1`, { queueEntries: 4 });
    await seed(ctrl);
    const ns = ctrl.namespaces[0]!;
    // More commands than the queue holds, so slots are reused while SQHD lies.
    const reads = await Promise.all(Array.from({ length: 16 }, (_, i) => ns.read(i % 8, 1)));
    reads.forEach((r, i) => assert.equal(r, pattern(512, 100 + (i % 8))));
    assert.ok(rig.model.faultPlan!.injector.fired >= 16);
    await works(ctrl);
  });
}

for (const interrupts of ['poll', 'msix'] as const) {
  test(`nvme.fatal (${interrupts}): CSTS.CFS during I/O: the read fails, a reset brings the controller back`, async () => {
    const ctrl = await open('nvme.fatal:on=read', { interrupts });
    await seed(ctrl);
    const out = await code(ctrl.namespaces[0]!.read(1, 1));
    assert.ok(out === 'ERR_NVME_TIMEOUT' || out === 'ERR_NVME_FATAL', out);
    assert.ok(ctrl.resets >= 1);
    await works(ctrl);
  });
}

test('nvme.never-ready: open fails with ERR_NVME_TIMEOUT within CAP.TO; opening again works', async () => {
  const p = build('nvme.never-ready');
  const t0 = performance.now();
  assert.is(await code(NvmeController.open(p, fast)), 'ERR_NVME_TIMEOUT');
  assert.ok(performance.now() - t0 >= 450, 'waited CAP.TO');
  c = await NvmeController.open(p, fast);
  await seed(c);
  await works(c);
});

/** A reset that never completes: the timed-out read escalates to a reset, which fails; the controller is failed within a bound, and a reopen (the device behaving again) works. */
async function resetFailsThenRecovers(planText: string, failsAfter: boolean, disableIgnored: boolean): Promise<void> {
  const p = build(planText);
  let ctrl = (c = await NvmeController.open(p, fast));
  await seed(ctrl);
  rig.model.unabortable = true;
  rig.model.swallow(1);
  assert.is(await code(ctrl.namespaces[0]!.read(0, 1)), 'ERR_NVME_TIMEOUT');
  for (let i = 0; i < 300 && ctrl.status().state !== 'failed'; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(ctrl.status().state, 'failed');
  if (failsAfter) assert.is(await code(ctrl.namespaces[0]!.read(0, 1)), 'ERR_NVME_FATAL');
  const free = p.dma.free.bind(p.dma);
  let freed = 0;
  p.dma.free = (w) => {
    freed++;
    free(w);
  };
  await ctrl.close();
  p.dma.free = free;
  if (disableIgnored) {
    // The controller may still write its queues and buffers: none of that memory may be reused.
    assert.is(freed, 0, 'no DMA memory freed after the controller ignored CC.EN = 0');
    assert.ok(logs.some((l) => l.includes('ignored CC.EN = 0')));
  } else assert.ok(freed > 0, 'a controller that disabled gives its memory back');
  ctrl = c = await NvmeController.open(p, fast);
  await works(ctrl);
}

test('nvme.never-ready after the first enable: a reset that never completes marks the controller failed, bounded; reopening recovers', () =>
  resetFailsThenRecovers('nvme.never-ready:after=1', true, false));

test('nvme.reset-fails: a controller that ignores CC.EN = 0 marks the controller failed, bounded; close keeps its DMA memory; reopening recovers', () =>
  resetFailsThenRecovers('nvme.reset-fails', false, true));

for (const interrupts of ['poll', 'msix'] as const) {
  test(`nvme.removal (${interrupts}): all-ones reads: the read fails, the controller is failed, everything after fails fast; close is bounded`, async () => {
    const ctrl = await open('nvme.removal:on=read', { interrupts });
    await seed(ctrl);
    const ns = ctrl.namespaces[0]!;
    const out = await code(ns.read(2, 1));
    assert.ok(out === 'ERR_NVME_FATAL' || out === 'ERR_NVME_TIMEOUT', out);
    for (let i = 0; i < 300 && ctrl.status().state !== 'failed'; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(ctrl.status().state, 'failed');
    const t0 = performance.now();
    assert.is(await code(ns.read(2, 1)), 'ERR_NVME_FATAL');
    assert.is(await code(ns.write(2, pattern(512, 1))), 'ERR_NVME_FATAL');
    assert.ok(performance.now() - t0 < 200, 'fails fast');
    assert.ok(logs.some((l) => /all ones|removed|gone/i.test(l)) || out === 'ERR_NVME_FATAL', 'the removal is named');
    await code(ctrl.close());
  });
}

test('nvme.irq-storm (msix): extra messages on every vector change nothing', async () => {
  const ctrl = await open('nvme.irq-storm:count=200,times=5', { interrupts: 'msix', queues: 2 });
  await seed(ctrl);
  await works(ctrl);
  assert.is(rig.model.faultPlan!.injector.fired, 5);
  assert.is(ctrl.unknownCids, 0);
});

test('nvme.irq-lost (msix): a lost interrupt is found by the timeout scan, bounded; no error, data right', async () => {
  const ctrl = await open('nvme.irq-lost:after=12,times=2', { interrupts: 'msix' });
  await seed(ctrl);
  await works(ctrl);
  assert.is(rig.model.faultPlan!.injector.fired, 2);
});

test('nvme.corrupt-read report=error: the read fails with Data Transfer Error and the corrupted bytes are never returned', async () => {
  const ctrl = await open('nvme.corrupt-read:after=1');
  await seed(ctrl);
  const ns = ctrl.namespaces[0]!;
  assert.equal(await ns.read(0, 1), pattern(512, 100));
  let got: unknown;
  try {
    got = await ns.read(1, 1);
  } catch (e) {
    got = e;
  }
  assert.instance(got, Error, 'a read the device reported as failed never resolves');
  assert.match((got as Error).message, /DATA_TRANSFER_ERROR/);
  await works(ctrl);
});

test('nvme.corrupt-read report=silent: undetectable without end-to-end protection; the model did corrupt, later reads are right', async () => {
  const ctrl = await open('nvme.corrupt-read:report=silent');
  await seed(ctrl);
  const bad = await ctrl.namespaces[0]!.read(0, 1);
  assert.not.equal(bad, pattern(512, 100), 'the device corrupted the data and said nothing');
  assert.equal(bad.subarray(8), pattern(512, 100).subarray(8), 'only the first 8 bytes');
  await works(ctrl);
});

for (const field of ['mdts-zero', 'mdts-huge', 'nsze-zero', 'nsze-huge', 'lbads-zero', 'lbads-huge', 'flbas-past'] as const) {
  test(`nvme.identify field=${field}: the controller opens; a garbage namespace is left out with a reason, garbage MDTS capped`, async () => {
    const p = build(`nvme.identify:field=${field}`);
    let ctrl = (c = await NvmeController.open(p, fast));
    assert.is(rig.model.faultPlan!.injector.fired, 1);
    assert.ok(ctrl.mdtsBytes <= 2 * 1024 * 1024, `transfers capped (${ctrl.mdtsBytes})`);
    if (field.startsWith('mdts')) {
      await seed(ctrl);
      await works(ctrl);
    } else {
      assert.is(ctrl.namespaces.length, 0, 'the namespace the Identify data garbled is not used');
      if (field === 'nsze-huge' || field === 'lbads-huge')
        assert.ok(
          logs.some((l) => /namespace 1 left out: .*implausible/.test(l)),
          logs.join('\n'),
        );
    }
    // (c) the device behaves now: opening again on the same function sees the real namespace.
    await ctrl.close();
    ctrl = c = await NvmeController.open(p, fast);
    assert.is(ctrl.namespaces[0]!.blockCount, 16384);
    await seed(ctrl);
    await works(ctrl);
  });
}

test('every NVMe fault class is exercised above', () => {
  const missing = faultClasses('nvme')
    .map((k) => k.name)
    .filter((n) => !covered.has(n));
  assert.equal(missing, []);
});

test.run();
