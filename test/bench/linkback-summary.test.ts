import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { median, summarizeLinkback, targetLines, TARGETS, type Run } from '../../bench/linkback-summary.js';

const run = (iops: number, self: number, others = 0, device = 0, qd1?: [number, number]): Run => ({
  iops,
  cpu: { self, others, device, fio: 5 },
  ...(qd1 ? { qd1: { randreadUs: qd1[0], randwriteUs: qd1[1] } } : {}),
});

test('median: the middle value, the upper one of an even count (a measured value), NaN when empty; input untouched', () => {
  const xs = [3, 1, 2];
  assert.is(median(xs), 2);
  assert.is(median([4, 1, 3, 2]), 3);
  assert.ok(Number.isNaN(median([])));
  assert.equal(xs, [3, 1, 2]);
});

test('summary: medians per target, server CPU without fio, the issue figures, and each verdict with its value', () => {
  const s = summarizeLinkback({
    // sandboxed: manager + container + device process
    sandboxed: [run(30_000, 10, 4, 6, [60, 70]), run(34_000, 11, 4, 6, [58, 75]), run(32_000, 12, 5, 7, [62, 72])],
    inProcess: [run(60_000, 9, 0, 0, [30, 35]), run(62_000, 9.5, 0, 0, [31, 36]), run(58_000, 10, 0, 0, [29, 34])],
    memory: [run(90_000, 8.5), run(91_000, 8.6), run(89_000, 8.4)],
    nbdkit: [run(85_000, 0, 12), run(84_000, 0, 11), run(86_000, 0, 13)],
  });
  assert.is(s.sandboxed!.iops, 32_000);
  assert.is(s.sandboxed!.cpuUsPerRequest, 21); // medians of 20, 21, 24
  assert.equal(s.sandboxed!.cpu, { self: 11, others: 4, device: 6, fio: 5 });
  assert.equal(s.sandboxed!.qd1, { randreadUs: 60, randwriteUs: 72 });
  assert.is(s.inProcess!.cpuUsPerRequest, 9.5);
  assert.is(s.iops.memory, 90_000);
  assert.is(s.cpuUsPerRequest.nbdkit, 12);
  assert.is(s.ratioSandboxedInProcess, 0.533);
  assert.is(s.addedServerCpuUsPerRequest, 11.5);
  assert.is(s.nbdServerCpuVsNbdkit, 0.708); // 8.5 / 12
  assert.is(s.inProcessOverMemoryUsPerRequest, 1);
  assert.equal(s.addedQd1LatencyUsByOp, { randreadUs: 30, randwriteUs: 37 });
  assert.is(s.addedQd1LatencyUs, 37, 'judged on the larger of read and write');
  assert.equal(s.targetsMet.addedServerCpuUsPerRequest, { met: false, value: 11.5, target: TARGETS.addedServerCpuUsPerRequest, bound: 'max' });
  assert.equal(s.targetsMet.ratioSandboxedInProcess, { met: false, value: 0.533, target: 0.9, bound: 'min' });
  assert.is(s.targetsMet.addedQd1LatencyUs.met, false);
  assert.is(s.targetsMet.nbdServerCpuVsNbdkit.met, false);
  assert.is(s.targetsMet.inProcessOverMemoryUsPerRequest.met, true, 'exactly at the bound is met');
  const lines = targetLines(s);
  assert.is(lines.length, 5);
  assert.match(lines[0]!, /added by the sandbox \(us\): 11.5 \(<= 2\): NOT met/);
  assert.match(lines[4]!, /over the memory device .*: 1 \(<= 1\): met/);
  assert.ok(JSON.parse(JSON.stringify(s)), 'the summary is plain JSON');
});

test('summary: targets met when the figures are within the bounds', () => {
  const s = summarizeLinkback({
    sandboxed: [run(57_000, 6, 2, 2.5, [40, 41])],
    inProcess: [run(60_000, 9, 0, 0, [32, 33])],
    memory: [run(90_000, 8.5)],
    nbdkit: [run(85_000, 0, 18)],
  });
  assert.is(s.addedServerCpuUsPerRequest, 1.5);
  assert.is(s.ratioSandboxedInProcess, 0.95);
  assert.is(s.addedQd1LatencyUs, 8);
  assert.is(s.nbdServerCpuVsNbdkit, 0.472);
  assert.is(s.inProcessOverMemoryUsPerRequest, 0.5);
  assert.ok(Object.values(s.targetsMet).every((v) => v.met === true));
});

test('summary: a target not run gives null figures and null verdicts, never a pass; no QD1 runs, no QD1 figures', () => {
  const s = summarizeLinkback({ sandboxed: [run(30_000, 10, 4, 6)], inProcess: [run(60_000, 9)] });
  assert.is(s.memory, null);
  assert.is(s.nbdkit, null);
  assert.is(s.iops.nbdkit, null);
  assert.is(s.nbdServerCpuVsNbdkit, null);
  assert.equal(s.targetsMet.nbdServerCpuVsNbdkit, { met: null, value: null, target: 0.5, bound: 'max' });
  assert.is(s.targetsMet.inProcessOverMemoryUsPerRequest.met, null);
  assert.is(s.sandboxed!.qd1, null);
  assert.is(s.addedQd1LatencyUs, null);
  assert.is(s.targetsMet.addedQd1LatencyUs.met, null);
  assert.is(s.addedServerCpuUsPerRequest, 11);
  assert.match(targetLines(s)[3]!, /nbdkit CPU per request: not run/);
  const none = summarizeLinkback({});
  assert.ok(Object.values(none.targetsMet).every((v) => v.met === null && v.value === null));
});

test('summary: QD1 figures only when every run of a target has them', () => {
  const s = summarizeLinkback({ sandboxed: [run(1, 1, 0, 0, [50, 50]), run(1, 1)], inProcess: [run(1, 1, 0, 0, [40, 40])] });
  assert.is(s.sandboxed!.qd1, null);
  assert.is(s.addedQd1LatencyUs, null);
});

test.run();
