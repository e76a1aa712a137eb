/**
 * Fault-injection campaigns: the spec's line-pointing errors, trials as a pure function of
 * (seed, index), a small campaign with the oracle holding, the oracle failing where it must (IOMMU
 * off with wild DMA; a broken recovery that acknowledges before the write is durable), replay,
 * shards merged, and the CLI's usage errors.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCampaign } from '../../campaigns/spec.js';
import { shardIndices, trialPlan } from '../../campaigns/plan.js';
import { mergeDirs, readRecords, replayTrial, runCampaign } from '../../campaigns/runner.js';
import { renderReport } from '../../campaigns/report.js';
import { CampaignError } from '../../campaigns/errors.js';
import { run as cli } from '../../cli/campaign.js';

let root = dirname(fileURLToPath(import.meta.url));
while (!existsSync(join(root, 'package.json'))) root = dirname(root);
if (root.endsWith('/dist')) root = dirname(root);
const POLICY = join(root, 'policies/examples/sim-nvme.yaml');
const dir = mkdtempSync(join(tmpdir(), 'dmabox-campaign-'));

function spec(name: string, faults: string, workload = 'workload: { blocks: 128, operations: 24, depth: 4 }\n'): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `version: 1\nname: ${name}\npolicy: ${POLICY}\ntrials: 20\n${workload}recovery: { hangMs: 40ms, startMs: 300ms }\nfaults:\n${faults}`);
  return file;
}

const ALL = `  crash: { weight: 2, within: 12 }
  hang: { weight: 1, within: 12 }
  wild-dma: { weight: 2, within: 4 }
  corrupt-work: { weight: 2, within: 4 }
  error-return: { weight: 1, within: 20 }
`;

test('a spec with mistakes: every problem at once, with its line and field', () => {
  const src = 'version: 1\nname: Bad_Name\npolicy: p.yaml\nfaults:\n  crash: { weight: 2000 }\n  wild-dma: { targets: [moon] }\n  flood: {}\n';
  try {
    parseCampaign(src, 'c.yaml');
    assert.unreachable('accepted');
  } catch (e) {
    assert.instance(e, CampaignError);
    const m = (e as CampaignError).message;
    assert.is((e as CampaignError).code, 'ERR_CAMPAIGN_SPEC');
    assert.match(m, /c\.yaml:2: name:/);
    assert.match(m, /c\.yaml:5: faults\.crash\.weight:/);
    assert.match(m, /c\.yaml:6: faults\.wild-dma\.targets\[0\]:/);
    assert.match(m, /c\.yaml:7: faults\.flood: unknown field/);
  }
  assert.throws(
    () => parseCampaign('version: 1\nname: a\npolicy: p.yaml\nfaults:\n  crash: { weight: 0 }\n', 'z.yaml'),
    /z\.yaml:5: faults: expected at least one class/,
  );
});

test('a trial is a pure function of (seed, index); shards partition the indices', () => {
  const s = parseCampaign(readFileSync(spec('pure', ALL), 'utf8'), join(dir, 'pure.yaml'));
  assert.equal(trialPlan(s, 7, 3), trialPlan(s, 7, 3));
  assert.not.equal(trialPlan(s, 7, 3).seed, trialPlan(s, 7, 4).seed);
  assert.not.equal(trialPlan(s, 7, 3).seed, trialPlan(s, 8, 3).seed);
  const shards = [1, 2, 3].flatMap((k) => shardIndices(10, { k, n: 3 }));
  assert.equal(
    shards.sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  const classes = new Set(Array.from({ length: 200 }, (_, i) => trialPlan(s, 1, i).fault));
  assert.equal([...classes].sort(), ['corrupt-work', 'crash', 'error-return', 'hang', 'wild-dma']);
});

test('20 trials of every class with the IOMMU on: faults fire, the oracle holds', async () => {
  const out = join(dir, 'on');
  const s = await runCampaign(spec('on', ALL), { out });
  assert.is(s.trials, 20);
  assert.is(s.violations, 0, JSON.stringify(readRecords(out).filter((r) => r.outcome === 'violation')));
  assert.ok(s.fired >= 15, `fired in ${s.fired} of 20`);
  assert.ok(Object.keys(s.byFault).length >= 4);
  const html = renderReport(s, readRecords(out));
  assert.match(html, /<svg/);
  assert.not.match(html, /<script|<link|src=/);
});

test('--iommu off: wild DMA at the canary and the neighbour lands, and the oracle says so', async () => {
  const wild = '  wild-dma: { within: 2, targets: [canary, neighbour] }\n';
  const offDir = join(dir, 'wild-off');
  const off = await runCampaign(spec('wild', wild), { iommuOff: true, trials: 10, out: offDir });
  assert.ok(off.violations >= 5, `${off.violations} violations of 10`);
  assert.match(renderReport(off, readRecords(offDir)), /neighbour sandbox&#39;s window|canary at/);
  const on = await runCampaign(spec('wild', wild), { trials: 10 });
  assert.is(on.violations, 0);
});

test('a broken recovery (writes acknowledged before they are durable) is caught by the oracle', async () => {
  const crash = '  crash: { within: 6 }\n';
  const out = join(dir, 'broken');
  const s = await runCampaign(spec('broken', crash, 'workload: { blocks: 64, operations: 24, writePercent: 100, depth: 4 }\n'), {
    out,
    ackBeforeDurable: true,
    trials: 10,
  });
  assert.ok(s.violations >= 1, JSON.stringify(s.outcomes));
  assert.ok(readRecords(out).some((r) => r.violations.some((v) => v.includes('acknowledged block'))));
  const honest = await runCampaign(spec('broken', crash), { trials: 10 });
  assert.is(honest.violations, 0);
});

test('replay reruns a saved trial exactly; shards merge to the whole run', async () => {
  const file = spec('shards', ALL);
  const a = join(dir, 's1');
  const b = join(dir, 's2');
  await runCampaign(file, { out: a, shard: { k: 1, n: 2 }, trials: 8 });
  await runCampaign(file, { out: b, shard: { k: 2, n: 2 }, trials: 8, jobs: 2 });
  const merged = mergeDirs([a, b]);
  const whole = await runCampaign(file, { trials: 8 });
  assert.is(merged.trials, 8);
  assert.equal(merged.byFault, whole.byFault);
  const saved = readRecords(b)[0]!;
  const lines: string[] = [];
  const { record } = await replayTrial(b, saved.index, (l) => lines.push(l));
  assert.is(record.fault, saved.fault);
  assert.equal(record.firings, saved.firings);
  assert.is(record.outcome, saved.outcome);
  assert.throws(() => mergeDirs([a, join(dir, 'on')]), /another campaign/);
  await replayTrial(a, 99, () => undefined).then(
    () => assert.unreachable('replayed a trial the campaign does not have'),
    (e: CampaignError) => assert.is(e.code, 'ERR_CAMPAIGN_REPLAY'),
  );
});

test('the CLI refuses bad arguments with usage', async () => {
  await cli(['run', spec('cli', ALL), '--shard', '3/2']).then(
    () => assert.unreachable(),
    (e: Error) => assert.match(e.message, /--shard 3\/2/),
  );
  await cli(['run']).then(
    () => assert.unreachable(),
    (e: Error) => assert.match(e.message, /name one campaign spec/),
  );
  await cli(['replay', dir]).then(
    () => assert.unreachable(),
    (e: Error) => assert.match(e.message, /--trial N/),
  );
});

/** Run the CLI with its stdout captured. */
async function captured(argv: string[]): Promise<{ code: number; out: string }> {
  const write = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  let out = '';
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return { code: await cli(argv), out };
  } finally {
    process.stdout.write = write;
    process.stderr.write = err;
  }
}

test('the CLI: run --json (last line one object), replay, merge, report', async () => {
  const file = spec('cli-run', ALL);
  const a = join(dir, 'cli-a');
  const b = join(dir, 'cli-b');
  const r = await captured(['run', file, '--trials', '6', '--jobs', '1', '--shard', '1/2', '--out', a, '--json']);
  assert.is(r.code, 0);
  const summary = JSON.parse(r.out.trim().split('\n').pop()!) as Record<string, unknown>;
  for (const k of ['trials', 'outcomes', 'violations', 'byFault', 'trialsPerSecond', 'seed']) assert.ok(k in summary, k);
  assert.is(summary.trials, 3);
  assert.is((await captured(['run', file, '--trials', '6', '--jobs', '1', '--shard', '2/2', '--out', b])).code, 0);
  const m = await captured(['merge', a, b, '--json']);
  assert.is((JSON.parse(m.out) as { trials: number }).trials, 6);
  const rp = await captured(['replay', a, '--trial', '2']);
  assert.is(rp.code, 0);
  assert.match(rp.out, /replayed: same fault, firings and outcome/);
  const rep = await captured(['report', a, '--compare', b]);
  assert.is(rep.code, 0);
  assert.match(readFileSync(join(a, 'report.html'), 'utf8'), /Violations with and without the IOMMU/);
});

test.run();
