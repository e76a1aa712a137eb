/**
 * Device-side fault classes in campaigns (campaigns/device-classes.ts): the spec takes every NVMe
 * model class with the registry's typed parameters (errors at their line), a trial builds its
 * controller with a plan seeded from (seed, index) so replay reproduces it, every class fires and
 * changes what the device does, the device oracle catches a driver that acknowledges success on a
 * read the device failed, and findings (a driver that throws on a device fault) are aggregated by
 * class and symptom with their replay command, printed by the CLI and tabled in the HTML report.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCampaign, targetPolicy, type CampaignSpec } from '../../campaigns/spec.js';
import { trialPlan } from '../../campaigns/plan.js';
import { readRecords, replayTrial, runCampaign } from '../../campaigns/runner.js';
import { Rig } from '../../campaigns/rig.js';
import { runTrial, type BlockDriverModule, type TrialRecord } from '../../campaigns/trial.js';
import { findingsOf, summarize } from '../../campaigns/summary.js';
import { renderReport } from '../../campaigns/report.js';
import { loadBlockDriver } from '../../campaigns/target.js';
import { CampaignError } from '../../campaigns/errors.js';
import { DEVICE_FAULT_CLASSES } from '../../campaigns/device-classes.js';
import { findingLines } from '../../cli/campaign.js';
import { faultClasses } from '../../sim/faults/registry.js';
import type { BlockDevice } from '../../drivers/contract/block.js';

let root = dirname(fileURLToPath(import.meta.url));
while (!existsSync(join(root, 'package.json'))) root = dirname(root);
if (root.endsWith('/dist')) root = dirname(root);
const POLICY = join(root, 'campaigns/examples/policies/hostile-nvme.yaml');
const dir = mkdtempSync(join(tmpdir(), 'dmabox-device-campaign-'));

function specFile(name: string, faults: string, extra = ''): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `version: 1\nname: ${name}\npolicy: ${POLICY}\ntrials: 20\nworkload: { blocks: 64, operations: 24, writePercent: 50, depth: 4 }\nrecovery: { hangMs: 400ms, startMs: 1500ms, liveness: 3s }\n${extra}faults:\n${faults}`,
  );
  return file;
}

function load(file: string): CampaignSpec {
  return parseCampaign(readFileSync(file, 'utf8'), file);
}

test('every device model class of the registry is a device-side campaign class', () => {
  assert.equal(
    DEVICE_FAULT_CLASSES.map((c) => c.name),
    faultClasses().map((c) => c.name),
  );
  for (const c of DEVICE_FAULT_CLASSES) assert.is(c.side, 'device');
  const s = load(specFile('params', '  nvme.status: { weight: 3, within: 5, type: path, on: read, dnr: 1 }\n  nvme.irq-storm: { count: 9 }\n'));
  assert.equal(s.faults['nvme.status'], {
    weight: 3,
    probability: 100,
    interval: 1,
    times: 1,
    within: 5,
    variants: [],
    side: 'device',
    own: { on: 'read', type: 'path', dnr: 1 },
  });
  assert.equal(s.faults['nvme.irq-storm']!.own, { count: 9 });
});

test('device class parameters are checked by the registry’s declarations, each problem at its line', () => {
  const src = `version: 1\nname: bad\npolicy: ${POLICY}\nfaults:\n  nvme.status: { type: cosmic }\n  nvme.irq-storm: { count: 0 }\n  nvme.sq-head:\n    mode: sideways\n  nvme.drop-completion: { colour: red }\n`;
  try {
    parseCampaign(src, 'd.yaml');
    assert.unreachable('accepted');
  } catch (e) {
    assert.instance(e, CampaignError);
    const m = (e as CampaignError).message;
    assert.is((e as CampaignError).code, 'ERR_CAMPAIGN_SPEC');
    assert.match(m, /d\.yaml:5: faults\.nvme\.status\.type: expected 'generic', 'media', 'path', got 'cosmic'/);
    assert.match(m, /d\.yaml:6: faults\.nvme\.irq-storm\.count: expected a whole number from 1 to 10000, got 0/);
    assert.match(m, /d\.yaml:8: faults\.nvme\.sq-head\.mode:/);
    assert.match(m, /d\.yaml:9: faults\.nvme\.drop-completion\.colour: unknown field/);
  }
});

test('a class of another model than the target is refused before any trial runs', async () => {
  const file = specFile('other-model', '  e1000e.link-flap: {}\n');
  await runCampaign(file, { trials: 1 }).then(
    () => assert.unreachable('ran an e1000e class on an NVMe target'),
    (e: CampaignError) => {
      assert.is(e.code, 'ERR_CAMPAIGN_TARGET');
      assert.match(e.message, /e1000e\.link-flap is for the simulated e1000e model/);
    },
  );
});

test('each NVMe device class fires in its trials and changes what the device does; the oracle holds; replay reproduces the plan', async () => {
  const nvme = faultClasses('nvme').map((c) => c.name);
  const overrides: Record<string, string> = {
    'nvme.never-ready': 'within: 1',
    'nvme.reset-fails': 'within: 1',
    'nvme.identify': 'within: 1',
    'nvme.reorder-completions': 'within: 2, times: 20',
    'nvme.corrupt-read': 'within: 3',
  };
  for (const name of nvme) {
    const out = join(dir, `one-${name}`);
    const s = await runCampaign(specFile(`one-${name.replace('.', '-')}`, `  ${name}: { ${overrides[name] ?? 'within: 4'} }\n`), { trials: 3, out });
    const records = readRecords(out);
    assert.is(s.violations, 0, `${name}: ${JSON.stringify(records.filter((r) => r.outcome === 'violation').map((r) => r.violations))}`);
    assert.ok(s.fired >= 1, `${name} fired in ${s.fired} of 3 trials`);
    // Provably changes the device: the firing is the device's (its plan's text), at an event of its own.
    const fired = records.find((r) => r.firings.length > 0)!;
    assert.match(fired.firings[0]!.detail, new RegExp(`^${name.replace('.', '\\.')}.*@\\d+ fired at event \\d+$`));
    const { record } = await replayTrial(out, fired.index, () => undefined);
    assert.equal(record.firings, fired.firings, `${name}: replay fires the same`);
  }
});

/** The NVMe driver with its read errors turned into success: what the device oracle (b) must catch. */
function swallowingReadErrors(inner: BlockDriverModule): BlockDriverModule {
  return {
    ...inner,
    start: async (ctx) => {
      const d = await inner.start(ctx);
      const liar: BlockDevice = Object.create(d) as BlockDevice;
      Object.defineProperty(liar, 'read', { value: (tag: number, lba: number, n: number) => d.read(tag, lba, n).catch(() => undefined) });
      return liar;
    },
  };
}

/** The NVMe driver throwing a plain TypeError where it should have reported the device's error: a finding. */
function throwingOnDeviceErrors(inner: BlockDriverModule): BlockDriverModule {
  return {
    ...inner,
    start: async (ctx) => {
      const d = await inner.start(ctx);
      const bad: BlockDevice = Object.create(d) as BlockDevice;
      Object.defineProperty(bad, 'read', {
        value: (tag: number, lba: number, n: number) =>
          d.read(tag, lba, n).catch((e: Error) => {
            throw new TypeError(`cannot read properties of undefined (after ${e.message.split(':')[0]})`);
          }),
      });
      return bad;
    },
  };
}

async function trials(spec: CampaignSpec, driver: BlockDriverModule | undefined, n: number): Promise<TrialRecord[]> {
  const policy = targetPolicy(spec);
  const d = driver ?? (await loadBlockDriver(policy));
  const rig = new Rig(false);
  const out: TrialRecord[] = [];
  for (let i = 0; i < n; i++) out.push(await runTrial(spec, policy, d, rig, trialPlan(spec, spec.seed, i)));
  return out;
}

test('the device oracle: a driver that acknowledges success on a read the device failed is a violation; the real driver is not', async () => {
  const spec = load(specFile('liar', '  nvme.status: { within: 6, times: 1000, probability: 50, on: read }\n'));
  const honest = await trials(spec, undefined, 6);
  assert.equal(
    honest.filter((r) => r.outcome === 'violation').map((r) => r.violations),
    [],
  );
  assert.ok(
    honest.some((r) => r.outcome === 'client-saw-error'),
    'the real driver reports the failed reads',
  );
  const driver = swallowingReadErrors(await loadBlockDriver(targetPolicy(spec)));
  const lied = await trials(spec, driver, 6);
  const caught = lied.filter((r) => r.violations.some((v) => /read\(s\) succeeded with data the device did not deliver/.test(v)));
  assert.ok(caught.length >= 1, JSON.stringify(lied.map((r) => [r.outcome, r.badReads])));
});

test('silent read corruption is excepted (no driver can tell) but only as often as the device corrupted', async () => {
  const spec = load(specFile('silent', '  nvme.corrupt-read: { within: 2, times: 3, report: silent }\n'));
  const records = await trials(spec, undefined, 4);
  for (const r of records) assert.is(r.outcome === 'violation', false, JSON.stringify(r.violations));
  assert.ok(
    records.some((r) => r.firings.length > 0),
    'the device corrupted reads',
  );
});

test('a driver that throws on a device fault is a finding, not a violation; findings are grouped with their replay command', async () => {
  const spec = load(specFile('throws', '  nvme.status: { within: 3, on: read }\n'));
  const driver = throwingOnDeviceErrors(await loadBlockDriver(targetPolicy(spec)));
  const records = await trials(spec, driver, 5);
  const found = records.filter((r) => r.finding);
  assert.ok(found.length >= 1, JSON.stringify(records.map((r) => [r.outcome, r.clientErrors])));
  for (const r of found) {
    assert.is.not(r.outcome, 'violation');
    assert.match(r.finding!.symptom, /a read failed with TypeError/);
  }
  const s = summarize('throws', 1, true, records, 1, '/tmp/c');
  assert.is(s.findings.length, 1, JSON.stringify(s.findings));
  assert.equal(
    s.findings[0]!.trials,
    found.map((r) => r.index),
  );
  assert.is(s.findings[0]!.fault, 'nvme.status');
  assert.is(s.findings[0]!.replay, `dmabox campaign replay /tmp/c --trial ${found[0]!.index}`);
});

test('an exception escaping the driver during a device trial is a finding and the run goes on', async () => {
  const policy = join(dir, 'stray-policy.yaml');
  const fixture = join(root, 'dist/test/campaigns/fixtures/stray-throw-driver.js');
  writeFileSync(
    policy,
    readFileSync(POLICY, 'utf8').replace('driver:\n  name: nvme\n', `driver:\n  module: ${fixture}\n`).replace('name: hostile-nvme\n', 'name: stray\n'),
  );
  const file = join(dir, 'stray.yaml');
  writeFileSync(
    file,
    `version: 1\nname: stray\npolicy: ${policy}\nworkload: { blocks: 64, operations: 24, writePercent: 50, depth: 4 }\nrecovery: { hangMs: 400ms, startMs: 1500ms, liveness: 3s }\nfaults:\n  nvme.status: { within: 3, on: read }\n`,
  );
  const out = join(dir, 'stray-out');
  const s = await runCampaign(file, { trials: 4, out });
  assert.is(s.trials, 4);
  assert.is(s.violations, 0, JSON.stringify(readRecords(out).map((r) => r.violations)));
  const f = s.findings.find((x) => /uncaught RangeError: stray: status/.test(x.symptom));
  assert.ok(f, JSON.stringify(s.findings));
  assert.is(f.fault, 'nvme.status');
  assert.is(f.replay, `dmabox campaign replay ${out} --trial ${f.trials[0]!}`);
});

test('findings: grouped by class and symptom (numbers aside), sorted, listed by the CLI and tabled in the report', () => {
  const rec = (index: number, fault: string, symptom?: string): TrialRecord => ({
    index,
    seed: index,
    fault,
    iommu: true,
    outcome: 'recovered',
    violations: [],
    firings: [],
    restarts: 0,
    clientErrors: 0,
    badReads: 0,
    writesAcked: 0,
    iommuFaults: 0,
    timeToRecoverMs: null,
    ms: 1,
    ...(symptom ? { finding: { symptom } } : {}),
  });
  const records = [
    rec(0, 'nvme.wrong-cid', 'uncaught RangeError: CID 17 out of range'),
    rec(1, 'nvme.wrong-cid'),
    rec(2, 'nvme.wrong-cid', 'uncaught RangeError: CID 4093 out of range'),
    rec(3, 'nvme.fatal', 'no progress for 400 ms: the driver neither completed nor failed its requests'),
    rec(4, 'nvme.wrong-cid', 'start threw TypeError: x is undefined'),
  ];
  const f = findingsOf(records);
  assert.equal(
    f.map((x) => [x.fault, x.trials]),
    [
      ['nvme.fatal', [3]],
      ['nvme.wrong-cid', [0, 2]],
      ['nvme.wrong-cid', [4]],
    ],
  );
  assert.is(f[1]!.replay, 'dmabox campaign replay DIR --trial 0');
  const s = summarize('x', 1, true, records, 1, 'out');
  const text = findingLines(s);
  assert.match(text, /^findings \(device faults the driver did not survive\): 3\n/);
  assert.match(text, /nvme\.wrong-cid: uncaught RangeError: CID 17 out of range \(2 trials; dmabox campaign replay out --trial 0\)/);
  assert.is(findingLines({ findings: [] }), '');
  assert.is(findingLines({}), '');
  const html = renderReport(s, records);
  assert.match(html, /<h2>Findings<\/h2>.*<th>replay<\/th>/s);
  assert.match(html, /<code>dmabox campaign replay out --trial 3<\/code>/);
  assert.match(renderReport(summarize('y', 1, true, [rec(0, 'crash')], 1), []), /<h2>Findings<\/h2><p>None/);
});

test.run();
