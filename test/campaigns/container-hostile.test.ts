/**
 * The container-only classes `hostile-abi` and `exhaustion` (campaigns/inject/hostile.ts): refused
 * in-process with their spec line; on the simulator each attack, done by the driver's own code in
 * a real container at a block request in flight, ends with the manager's evidence (the violation
 * it killed for, the hang it saw, the memory limit that ended the process), a restart, the
 * requests replayed and the oracle holding; and the oracle failing when recovery after such a
 * kill is slower than the liveness bound.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCampaign, parseCampaign } from '../../campaigns/spec.js';
import { runIndices } from '../../campaigns/runner.js';
import { CampaignError } from '../../campaigns/errors.js';
import type { TrialRecord } from '../../campaigns/trial.js';

let root = dirname(fileURLToPath(import.meta.url));
while (!existsSync(join(root, 'package.json'))) root = dirname(root);
if (root.endsWith('/dist')) root = dirname(root);
const dir = mkdtempSync(join(tmpdir(), 'dmabox-ctrhostile-'));
const POLICY = join(root, 'campaigns/examples/policies/container-nvme.yaml');

function expectSpecError(src: string, re: RegExp): void {
  try {
    parseCampaign(src, 'c.yaml');
    assert.unreachable('accepted');
  } catch (e) {
    assert.instance(e, CampaignError);
    assert.is((e as CampaignError).code, 'ERR_CAMPAIGN_SPEC');
    assert.match((e as Error).message, re);
  }
}

test('hostile-abi and exhaustion: refused in-process with their line; their variants checked', () => {
  const head = 'version: 1\nname: m\npolicy: p.yaml\n';
  expectSpecError(
    `${head}faults:\n  crash: {}\n  hostile-abi: { attacks: [flood] }\n`,
    /c\.yaml:6: faults\.hostile-abi: means nothing in mode 'in-process'.*mode: container/,
  );
  expectSpecError(`${head}faults:\n  exhaustion: { resources: [cpu] }\n`, /c\.yaml:5: faults\.exhaustion: means nothing in mode 'in-process'/);
  expectSpecError(`${head}mode: container\nfaults:\n  hostile-abi: { attacks: [fork-bomb] }\n`, /attacks/);
  expectSpecError(`${head}mode: container\nfaults:\n  exhaustion: { resources: [disk] }\n`, /resources/);
  const s = parseCampaign(`${head}mode: container\nfaults:\n  hostile-abi: {}\n  exhaustion: {}\n`, 'c.yaml');
  assert.equal(s.faults['hostile-abi']!.variants, ['garbage-hypercall', 'ring-index', 'flood']);
  assert.equal(s.faults.exhaustion!.variants, ['memory', 'cpu']);
});

/** A container-mode spec of one class and one variant on the example's target. */
function spec(name: string, fault: string, key: string, variant: string, extra = ''): string {
  const file = join(dir, `${name}.yaml`);
  const hangMs = variant === 'memory' ? '2s' : '400ms';
  writeFileSync(
    file,
    `version: 1\nname: ${name}\nmode: container\npolicy: ${extra ? join(dir, `${name}-policy.yaml`) : POLICY}\n` +
      `workload: { blocks: 128, operations: 16, writePercent: 60, maxBlocks: 8, depth: 4 }\n` +
      `recovery: { hangMs: ${hangMs}, startMs: 10s, liveness: ${extra ? '1s' : '10s'} }\n` +
      `faults:\n  ${fault}: { within: 6, ${key}: [${variant}] }\n`,
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
    {
      log: (l) => log.push(l),
    },
  );
  return { records, log };
}

/** Per variant: the manager-side evidence a trial's log must show. */
const CASES: readonly { fault: string; key: string; variant: string; evidence: RegExp }[] = [
  {
    fault: 'hostile-abi',
    key: 'attacks',
    variant: 'garbage-hypercall',
    evidence: /violation: ERR_HC_\w+: [\s\S]*stop: killing container pid \d+: violation: ERR_HC_/,
  },
  {
    fault: 'hostile-abi',
    key: 'attacks',
    variant: 'ring-index',
    evidence: /stop: killing container pid \d+: violation: register mailbox: register ring tail \d+ is \d+ entries ahead of head/,
  },
  {
    fault: 'hostile-abi',
    key: 'attacks',
    variant: 'flood',
    evidence: /stop: killing container pid \d+: violation: ERR_HC_FLOOD: \d+ dropped frames within a second/,
  },
  { fault: 'exhaustion', key: 'resources', variant: 'cpu', evidence: /stop: killing container pid \d+: (violation: ERR_HC_HEARTBEAT|hang: )/ },
  // The cgroup's OOM killer (as root; its SIGKILL may come before the manager reads the OOM count), or
  // V8's heap limit (the container's --max-old-space-size) aborting the process.
  { fault: 'exhaustion', key: 'resources', variant: 'memory', evidence: /exit: container pid \d+ (killed by SIGKILL|killed by SIGABRT|exited with [1-9])/ },
];

for (const c of CASES) {
  test(`${c.fault} ${c.variant}: in a real container, the manager kills or outlives it, restarts, replays; the oracle holds`, async () => {
    const { records, log } = await trials(spec(`t-${c.variant}`, c.fault, c.key, c.variant), 2);
    const text = log.join('\n');
    assert.is(records.length, 2);
    for (const r of records) {
      assert.equal(r.violations, [], text);
      assert.ok(r.outcome === 'recovered' || r.outcome === 'failed-as-policy-says', `${r.outcome}\n${text}`);
      assert.is(r.firings.length, 1, text);
      assert.is(r.firings[0]!.variant, c.variant);
      assert.ok(r.restarts >= 1, `no restart\n${text}`);
      assert.ok(r.writesAcked > 0, 'nothing was written: the read-back checked nothing');
    }
    assert.match(text, c.evidence, text);
    if (c.variant === 'memory') {
      // It died of its memory: the manager did not kill it for a violation or a hang first.
      assert.not.match(text, /stop: killing container pid \d+: (violation|hang)/);
    }
    // Requests were in flight when the container went, and the manager replayed them on the next one.
    assert.match(text, /exit: container pid \d+ [^\n]*; \d+ request\(s\) in flight kept for replay/);
  });
}

test('the oracle fails when recovery after a hostile-ABI kill outlasts the liveness bound', async () => {
  // The same target restarting only after 2.5 s: the kill is seen, but service comes back too late.
  writeFileSync(
    join(dir, 't-slow-policy.yaml'),
    `version: 1\nname: slow\ndevice: { sim: nvme, capacity: 4MiB, blockSize: 512 }\ndriver: { name: nvme, queues: 1, depth: 16 }\n` +
      `windows: [{ size: 512KiB, label: queues }, { size: 2MiB, label: data }]\n` +
      `restart: { maxRestarts: 4, window: 60s, backoff: { initial: 2500ms, max: 2500ms } }\n` +
      `linkback: { nbd: { socket: /tmp/dmabox/slow.sock, export: slow } }\n`,
  );
  const { records, log } = await trials(spec('t-slow', 'hostile-abi', 'attacks', 'ring-index', 'slow'), 1);
  const r = records[0]!;
  assert.is(r.outcome, 'violation', log.join('\n'));
  assert.ok(
    r.violations.some((v) => /^liveness: served again \d+ ms after the first firing, bound 1000 ms$/.test(v)),
    r.violations.join('\n'),
  );
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
