/**
 * Device-side campaigns against the e1000e driver (campaigns/targets/e1000e.ts with the `e1000e.*`
 * classes of sim/faults): every class fires with the device oracle holding; a class's parameters
 * are checked by the spec; a device class of the other model is refused; the Thunderclap campaign
 * report sums what the hostile device did (every refused access logged, nothing outside the
 * windows reached with the IOMMU on, what it saw inside them).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCampaign } from '../../campaigns/spec.js';
import { readRecords, runCampaign } from '../../campaigns/runner.js';
import { renderReport } from '../../campaigns/report.js';
import { CampaignError } from '../../campaigns/errors.js';

let root = dirname(fileURLToPath(import.meta.url));
while (!existsSync(join(root, 'package.json'))) root = dirname(root);
if (root.endsWith('/dist')) root = dirname(root);
const POLICY = join(root, 'campaigns/examples/e1000e-target.yaml');
const dir = mkdtempSync(join(tmpdir(), 'dmabox-hostile-net-'));

function spec(name: string, faults: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `version: 1\nname: ${name}\npolicy: ${POLICY}\ntrials: 30\nworkload: { operations: 24, depth: 8 }\nrecovery: { hangMs: 40ms, startMs: 150ms }\nfaults:\n${faults}`,
  );
  return file;
}

const EVERY = `  e1000e.rx-writeback: { within: 12, kind: error-bits }
  e1000e.rx-dd-unowned: { within: 12 }
  e1000e.tx-dd-unowned: { within: 3 }
  e1000e.head-range: { within: 3 }
  e1000e.rx-freed: { within: 12 }
  e1000e.eeprom: { within: 3, kind: zeros }
  e1000e.link-flap: { within: 3 }
  e1000e.msix-unconfigured: { within: 2 }
  e1000e.thunderclap: { within: 3, times: 2 }
  e1000e.removal: { within: 3 }
`;

test('every e1000e device class: the device oracle holds, frames flow again once the device behaves', async () => {
  const out = join(dir, 'every');
  const s = await runCampaign(spec('every', EVERY), { trials: 40, out });
  const records = readRecords(out);
  assert.is(s.violations, 0, JSON.stringify(records.filter((r) => r.outcome === 'violation').map((r) => [r.fault, r.violations])));
  assert.ok(Object.keys(s.byFault).length >= 8, Object.keys(s.byFault).join());
  assert.ok(s.fired >= 25, `fired in ${s.fired} of 40`);
  for (const r of records) if (r.finding) assert.match(r.finding.symptom, /threw|stalled/);
});

test('a device class takes its own parameters, checked with line numbers; the other model’s classes are refused', async () => {
  assert.throws(
    () => parseCampaign('version: 1\nname: a\npolicy: p.yaml\nfaults:\n  e1000e.eeprom: { kind: purple }\n', 'd.yaml'),
    /d\.yaml:5: faults\.e1000e\.eeprom\.kind:/,
  );
  const ok = parseCampaign('version: 1\nname: a\npolicy: p.yaml\nfaults:\n  e1000e.link-flap: { runs: 7 }\n', 'd.yaml');
  assert.equal(ok.faults['e1000e.link-flap']!.own, { runs: 7 });
  const nvme = join(dir, 'wrong.yaml');
  writeFileSync(nvme, `version: 1\nname: wrong\npolicy: ${join(root, 'policies/examples/sim-nvme.yaml')}\nfaults:\n  e1000e.removal: {}\n`);
  try {
    await runCampaign(nvme, { trials: 1 });
    assert.unreachable('accepted');
  } catch (e) {
    assert.instance(e, CampaignError);
    assert.is((e as CampaignError).code, 'ERR_CAMPAIGN_TARGET');
  }
});

test('the Thunderclap report: refusals all logged, nothing outside the windows, what the device saw inside', async () => {
  const tc = '  e1000e.thunderclap: { within: 2, times: 3, span: 2 }\n';
  const out = join(dir, 'tc');
  const s = await runCampaign(spec('tc', tc), { trials: 10, out });
  assert.is(s.violations, 0);
  const t = s.thunderclap!;
  assert.ok(t, 'the summary has a thunderclap key');
  assert.is(t.trials, 10);
  assert.ok(t.accesses > t.refused && t.refused > 0, `${t.accesses} accesses, ${t.refused} refused`);
  assert.is(t.refusedUnlogged, 0);
  assert.is(t.outsideWindowsAllowed, 0);
  assert.ok(t.inside.some((w) => w.bytesRead > 0));
  const html = renderReport(s, readRecords(out));
  assert.match(html, /Thunderclap: what a hostile device could still see/);
  assert.match(html, /Every access outside the sandbox.s windows was refused/);
});

test.run();
