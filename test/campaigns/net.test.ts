/**
 * The net target (campaigns/targets/e1000e.ts): campaigns against the e1000e driver on the
 * simulated 82574L and its echo peer. Every driver-side class fires with the oracle holding; with
 * the IOMMU off, wild DMA aimed at the canary and the neighbour lands and the oracle says so; the
 * injector's TX-descriptor rewrites reach the device; a policy the runner cannot drive as a NIC is
 * refused; replay reruns a trial exactly.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readRecords, replayTrial, runCampaign } from '../../campaigns/runner.js';
import { CampaignError } from '../../campaigns/errors.js';

let root = dirname(fileURLToPath(import.meta.url));
while (!existsSync(join(root, 'package.json'))) root = dirname(root);
if (root.endsWith('/dist')) root = dirname(root);
const POLICY = join(root, 'policies/examples/sim-e1000e.yaml');
const dir = mkdtempSync(join(tmpdir(), 'dmabox-net-campaign-'));

function spec(name: string, faults: string, policy = POLICY): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `version: 1\nname: ${name}\npolicy: ${policy}\ntrials: 20\nworkload: { operations: 16, depth: 8 }\nrecovery: { hangMs: 40ms, startMs: 300ms }\nfaults:\n${faults}`,
  );
  return file;
}

const ALL = `  crash: { weight: 2, within: 5 }
  hang: { weight: 1, within: 5 }
  wild-dma: { weight: 2, within: 4 }
  corrupt-work: { weight: 2, within: 2 }
  error-return: { weight: 1, within: 20 }
`;

test('20 trials of every driver-side class against the e1000e: faults fire, the oracle holds, frames flow again', async () => {
  const out = join(dir, 'on');
  const s = await runCampaign(spec('on', ALL), { out });
  const records = readRecords(out);
  assert.is(s.trials, 20);
  assert.is(s.violations, 0, JSON.stringify(records.filter((r) => r.outcome === 'violation')));
  assert.ok(s.fired >= 15, `fired in ${s.fired} of 20`);
  assert.ok(Object.keys(s.byFault).length >= 4, Object.keys(s.byFault).join());
  for (const r of records) assert.ok(r.writesAcked > 0, `trial ${r.index}: no frame acknowledged as sent`);
  assert.ok(s.timeToRecoverMs.count > 0);
});

test('--iommu off: an RX buffer aimed at the canary or the neighbour is written, and the oracle says so; on, refused and attributed', async () => {
  const wild = '  wild-dma: { within: 2, targets: [canary, neighbour] }\n';
  const offDir = join(dir, 'wild-off');
  const off = await runCampaign(spec('wild', wild), { iommuOff: true, trials: 12, out: offDir });
  assert.ok(off.violations >= 3, `${off.violations} violations of 12`);
  assert.ok(
    readRecords(offDir).some((r) => r.violations.some((v) => /canary at|neighbour sandbox's window/.test(v))),
    'a violation names the canary or the neighbour',
  );
  const onDir = join(dir, 'wild-on');
  const on = await runCampaign(spec('wild', wild), { trials: 12, out: onDir });
  assert.is(on.violations, 0);
  assert.ok(
    readRecords(onDir).some((r) => r.iommuFaults > 0),
    'refused DMA leaves IOMMU faults (attributed to the trial device: oracle 5)',
  );
});

test('corrupt-work rewrites TX descriptors before TDT: the frames it garbles are counted, never a violation', async () => {
  const out = join(dir, 'corrupt');
  const s = await runCampaign(spec('corrupt', '  corrupt-work: { within: 2, times: 3 }\n'), { trials: 12, out });
  assert.is(s.violations, 0);
  const records = readRecords(out);
  assert.ok(records.every((r) => r.firings.length > 0));
  assert.ok(
    records.some((r) => r.clientErrors > 0 || r.badReads > 0),
    'some corruption cost frames',
  );
  for (const r of records) for (const f of r.firings) assert.match(f.detail, /TX (descriptor|length|buffer)/);
});

test('a NIC policy with no echo peer is refused; replay reruns a net trial exactly', async () => {
  const pol = join(dir, 'none-peer.yaml');
  writeFileSync(
    pol,
    'version: 1\nname: nopeer\ndevice: { sim: e1000e, peer: none }\ndriver: { name: e1000e, depth: 64 }\nwindows:\n  - { size: 64KiB, access: read-write }\n  - { size: 2MiB }\n',
  );
  try {
    await runCampaign(spec('nopeer', ALL, pol), { trials: 1 });
    assert.unreachable('accepted');
  } catch (e) {
    assert.instance(e, CampaignError);
    assert.is((e as CampaignError).code, 'ERR_CAMPAIGN_TARGET');
    assert.match((e as Error).message, /echo peer/);
  }
  const out = join(dir, 'on');
  const saved = readRecords(out)[3]!;
  const lines: string[] = [];
  const { record } = await replayTrial(out, 3, (l) => lines.push(l));
  assert.is(record.fault, saved.fault);
  assert.equal(
    record.firings.map((f) => f.detail),
    saved.firings.map((f) => f.detail),
  );
});

test.run();
