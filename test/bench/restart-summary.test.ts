import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { percentile, summarize, type KillTimes } from '../../bench/restart-summary.js';

test('percentile by nearest rank: p50 and p99 of known sets, NaN when empty, order of input irrelevant', () => {
  const xs = [5, 1, 4, 2, 3];
  assert.is(percentile(xs, 50), 3);
  assert.is(percentile(xs, 99), 5);
  assert.is(percentile(xs, 0), 1);
  assert.is(percentile([7], 99), 7);
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 .. 1
  assert.is(percentile(hundred, 50), 50);
  assert.is(percentile(hundred, 99), 99);
  assert.is(percentile(hundred, 100), 100);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.equal(xs, [5, 1, 4, 2, 3], 'the input is not sorted in place');
});

test('summary: restarts are kill to first completion; unfinished kills are left out and counted; phases are step differences', () => {
  const k = (first: number | undefined, extra: Partial<KillTimes> = {}): KillTimes => ({
    exit: 4,
    quarantined: 10,
    deviceLaunched: 12,
    launched: 13,
    deviceReady: 30,
    confined: 30,
    ready: first === undefined ? undefined : first - 5,
    firstCompletion: first,
    ...extra,
  });
  const s = summarize([k(60), k(40), k(undefined), k(50, { exit: 8 }), k(200)], 0);
  assert.is(s.kills, 4);
  assert.is(s.unfinished, 1);
  assert.equal(s.restartMs, [60, 40, 50, 200]);
  assert.is(s.restartP50Ms, 50);
  assert.is(s.restartP99Ms, 200);
  assert.is(s.restartMaxMs, 200);
  assert.is(s.clientErrors, 0);
  assert.equal(s.phases.detect, { p50Ms: 4, p99Ms: 8 });
  assert.equal(s.phases.quarantine, { p50Ms: 6, p99Ms: 6 }); // 10 - 4, and 10 - 8 = 2 for one: nearest rank p50 of [6,6,2,6] is 6
  assert.equal(s.phases.readyToFirstCompletion, { p50Ms: 5, p99Ms: 5 });
  // ready - confined: 25, 5, 15, 165 (ready is 5 before each first completion)
  assert.equal(s.phases.driverToReady, { p50Ms: 15, p99Ms: 165 });
  // The slowest kills, slowest first, numbered as they came (the unfinished 3rd kill is not among them).
  assert.equal(
    s.slowest.map((x) => [x.kill, x.steps.firstCompletion]),
    [
      [5, 200],
      [1, 60],
      [4, 50],
    ],
  );
  assert.equal(s.slowest[0]!.steps, k(200), 'every step of the outlier');
});

test('summary: a phase whose steps a kill lacks leaves that kill out of the phase only; no kill at all gives NaN figures', () => {
  const s = summarize(
    [
      { exit: 3, firstCompletion: 30 },
      { exit: 5, launched: 9, confined: 19, firstCompletion: 50 },
    ],
    2,
  );
  assert.is(s.kills, 2);
  assert.equal(s.phases.containerToConfined, { p50Ms: 10, p99Ms: 10 });
  assert.equal(s.phases.detect, { p50Ms: 3, p99Ms: 5 });
  assert.ok(Number.isNaN(s.phases.quarantine.p50Ms));
  assert.is(s.clientErrors, 2);
  const none = summarize([{ exit: 1 }], 0);
  assert.is(none.kills, 0);
  assert.is(none.unfinished, 1);
  assert.ok(Number.isNaN(none.restartP50Ms) && Number.isNaN(none.restartMaxMs));
});

test.run();
