/**
 * Lab test (runs INSIDE the lab guest, DMABOX_LAB=1): a container-mode campaign on real VFIO.
 * campaigns/examples/lab-nvme.yaml against QEMU's NVMe at 00:01.0 behind the emulated VT-d: each
 * trial a Supervisor whose first container carries the injector, the real NBD linkback and the
 * campaign's NBD client; wild DMA that VT-d must block, crashes, hangs and host signals. Asserted:
 * `violations: 0` (every acknowledged write read back after recovery, the canary intact, liveness,
 * the manager's fds and memory), wild DMA fired and blocked (QEMU's `vtd_dmar_fault` trace, which
 * the lab suite always enables), and every traced DMAR fault's source-id is the sandbox's device
 * (a fault from another requester would be a violation of the trial it fell in).
 * The blocks the workload used are zeroed again for the next test file.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { runCampaign } from '../../../campaigns/runner.js';
import { loadCampaign, targetPolicy } from '../../../campaigns/spec.js';
import type { TrialRecord } from '../../../campaigns/trial.js';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';

const SPEC = fileURLToPath(new URL('../../../../campaigns/examples/lab-nvme.yaml', import.meta.url));
const TRIALS = 10;

function inLab(): void {
  if (process.env.DMABOX_LAB !== '1') {
    throw new Error(
      'this test runs only inside the lab guest (DMABOX_LAB=1): use `npm run test:lab` or `dmabox lab run --trace-dmar -- ...` (appliance/lab/README.md)',
    );
  }
  if (!process.env.DMABOX_LAB_DMAR_TRACE) throw new Error('the DMAR trace is off: run with `dmabox lab run --trace-dmar` (the lab suite always has it)');
}

test(`lab campaign on real VFIO: ${TRIALS} trials against QEMU's NVMe, violations 0, wild DMA blocked by VT-d and attributed to the sandbox's device`, async () => {
  inLab();
  const records: TrialRecord[] = [];
  const t0 = performance.now();
  let summary;
  try {
    summary = await runCampaign(SPEC, { trials: TRIALS, progress: (_d, _t, r) => records.push(r) });
  } finally {
    // Leave the disk as found: the workload's blocks zeroed through a plain sandbox.
    const spec = loadCampaign(SPEC);
    const policy = targetPolicy(spec);
    const s = new Supervisor({ ...policy, linkback: undefined }, { helloTimeoutMs: 60_000, readyTimeoutMs: 60_000, spares: false });
    try {
      await s.start();
      await s.block.write(0, new Uint8Array(spec.workload.blocks * 512));
    } finally {
      await s.stop();
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const lines = records.map(
    (r) =>
      `${r.index} ${r.fault} ${r.outcome} restarts ${r.restarts} dmar ${r.iommuFaults} ${r.violations.join('; ')} ${r.firings.map((f) => f.detail).join('; ')}`,
  );
  console.log(`  lab campaign: ${summary.trials} trials in ${seconds.toFixed(1)} s (${summary.trialsPerSecond}/s), ${JSON.stringify(summary.outcomes)}`);
  assert.is(summary.trials, TRIALS, lines.join('\n'));
  assert.is(summary.violations, 0, lines.join('\n'));
  // Every class ran, and faults fired.
  for (const c of ['wild-dma', 'crash', 'hang', 'signal']) assert.ok(summary.byFault[c], `no ${c} trial:\n${lines.join('\n')}`);
  assert.ok(summary.fired >= TRIALS / 2, `only ${summary.fired} trial(s) fired:\n${lines.join('\n')}`);
  // A wild DMA aimed outside every window is blocked by VT-d and traced; the sandbox restarts from it.
  const wild = records.filter((r) => r.firings.some((f) => ['unmapped', 'canary', 'neighbour'].includes(f.variant)));
  assert.ok(wild.length >= 1, `no wild DMA fired:\n${lines.join('\n')}`);
  for (const r of wild) {
    assert.ok(r.iommuFaults > 0, `trial ${r.index}: a wild DMA with no DMAR fault traced:\n${lines.join('\n')}`);
    assert.ok(r.restarts >= 1, `trial ${r.index}: not restarted after its IOMMU fault`);
  }
  // Faults traced only in trials that aimed a DMA outside the windows (attribution: nothing else faulted).
  for (const r of records) if (r.iommuFaults > 0) assert.ok(wild.includes(r), `trial ${r.index} (${r.fault}) traced ${r.iommuFaults} DMAR fault(s)`);
  assert.ok(seconds < 600, `the lab campaign took ${seconds.toFixed(0)} s`);
});

test.run();
