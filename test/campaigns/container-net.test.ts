/**
 * Container mode against a NIC (campaigns/container/net-trial.ts): the e1000e driver in real
 * containers on the simulated 82574L and its echo peer, frames through the packet rings and the
 * TAP linkback's bridge. A few trials of each driver-side class end with the fault fired, a
 * restart, frames flowing again and the oracle holding; block-only classes are refused; and the
 * oracle fails when frames come back too late after a kill.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCampaign } from '../../campaigns/spec.js';
import { runIndices } from '../../campaigns/runner.js';
import type { TrialRecord } from '../../campaigns/trial.js';

let root = dirname(fileURLToPath(import.meta.url));
while (!existsSync(join(root, 'package.json'))) root = dirname(root);
if (root.endsWith('/dist')) root = dirname(root);
const dir = mkdtempSync(join(tmpdir(), 'dmabox-ctrnet-'));
const POLICY = join(root, 'campaigns/examples/policies/container-e1000e.yaml');

function spec(name: string, faults: string, opts: { policy?: string; liveness?: string } = {}): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `version: 1\nname: ${name}\nmode: container\npolicy: ${opts.policy ?? POLICY}\n` +
      `workload: { operations: 24, depth: 8 }\n` +
      `recovery: { hangMs: 400ms, startMs: 10s, liveness: ${opts.liveness ?? '10s'} }\n` +
      `faults:\n${faults}`,
  );
  return file;
}

async function trials(file: string, n: number): Promise<{ records: TrialRecord[]; log: string[] }> {
  const records: TrialRecord[] = [];
  const log: string[] = [];
  await runIndices(
    loadCampaign(file),
    Array.from({ length: n }, (_, i) => i),
    1,
    false,
    Date.now() + 120_000,
    (r) => records.push(r),
    { log: (l) => log.push(l) },
  );
  return { records, log };
}

test('the example spec: every class of it accepted for a NIC in container mode', () => {
  const s = loadCampaign(join(root, 'campaigns/examples/container-e1000e.yaml'));
  assert.is(s.mode, 'container');
  assert.equal(Object.keys(s.faults).sort(), ['corrupt-work', 'crash', 'error-return', 'hang', 'signal', 'wild-dma']);
});

test('crash, hang, wild DMA and signals in real e1000e containers: fired, restarted, frames again, oracle holding', async () => {
  const { records, log } = await trials(
    spec(
      'net-mix',
      '  crash: { weight: 1, within: 8 }\n  hang: { weight: 1, within: 8 }\n  wild-dma: { weight: 1, within: 8, targets: [unmapped, canary, neighbour] }\n  signal: { weight: 1, within: 12, signals: [sigkill, sigsegv] }\n',
    ),
    8,
  );
  assert.is(records.length, 8);
  for (const r of records) {
    assert.is(r.violations.length, 0, `${r.fault}: ${r.violations.join('; ')}\n${log.join('\n')}`);
    assert.ok(r.firings.length > 0, `trial ${r.index} (${r.fault}) fired`);
    assert.ok(r.restarts >= 1, `trial ${r.index} (${r.fault}): the supervisor restarted the driver`);
    assert.ok(r.writesAcked >= 24, 'the workload and the final check sent their frames');
  }
  assert.ok(new Set(records.map((r) => r.fault)).size >= 3, records.map((r) => r.fault).join(','));
  assert.ok(
    records.some((r) => r.outcome === 'recovered'),
    'some trial lost no frame at all',
  );
});

test('block-only classes are refused for a NIC target', async () => {
  const file = spec('net-hostile', '  hostile-abi: { attacks: [flood] }\n');
  try {
    await trials(file, 1);
    assert.unreachable('accepted');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_CAMPAIGN_SPEC');
    assert.match((e as Error).message, /hostile-abi attack at a block driver's requests; policy ctr-e1000e is a NIC/);
  }
});

test('the oracle fails when frames come back only after the liveness bound', async () => {
  writeFileSync(
    join(dir, 'slow-policy.yaml'),
    `version: 1\nname: slow-nic\ndevice: { sim: e1000e, peer: echo }\ndriver: { name: e1000e, depth: 64 }\n` +
      `windows: [{ size: 64KiB, access: read-write, label: rx-descriptors }, { size: 1MiB, label: buffers }]\n` +
      `restart: { maxRestarts: 4, window: 60s, backoff: { initial: 2500ms, max: 2500ms } }\n`,
  );
  const { records, log } = await trials(
    spec('net-slow', '  signal: { within: 4, signals: [sigkill] }\n', { policy: join(dir, 'slow-policy.yaml'), liveness: '1s' }),
    1,
  );
  const r = records[0]!;
  assert.is(r.outcome, 'violation', log.join('\n'));
  assert.ok(
    r.violations.some((v) => /^liveness: frames flowed again \d+ ms after the first firing, bound 1000 ms$/.test(v)),
    r.violations.join('\n'),
  );
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
