/**
 * The collector over a stand-in manager: a NIC sandbox with faults of two kinds and no container,
 * a failed one, usage through the seam; what promtool must accept, and fault kinds from each source.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { collect, SANDBOX_STATES } from '../../ops/collector.js';
import { faultKind, type FaultEvent } from '../../sandbox/manager/faults.js';
import type { Manager } from '../../sandbox/manager/manager.js';
import { NetService } from '../../sandbox/manager/services/net-service.js';
import { findPromtool, sampleValue } from './helpers.js';

function sandbox(name: string, state: string, pid: number | undefined, faults: [string, number][]) {
  return {
    name,
    state,
    pid,
    cgroup: undefined,
    kind: 'net',
    driver: { label: 'e1000e' },
    device: { description: 'sim:e1000e@0000:00:02.0 "lab\\1"' },
    policy: { unconfined: name === 'nic-b' },
    restarts: 2,
    crashes: 3,
    violations: 1,
    faultsByKind: new Map(faults),
    // A NetService as the collector sees it: its port's counters.
    service: Object.assign(Object.create(NetService.prototype) as object, {
      port: { counters: { txFrames: 5, rxFrames: 7, txBytes: 500, rxBytes: 700, lostInRestart: 1, spoofed: 2 } },
    }),
  };
}

test('NIC sandboxes: state, packet counters, faults by kind, usage only with a container; promtool accepts it', () => {
  const m = {
    startedAt: 1_700_000_000_000,
    sandboxes: [
      sandbox('nic-a', 'running', 42, [
        ['no-write', 3],
        ['not-present', 1],
      ]),
      sandbox('nic-b', 'failed', undefined, []),
    ],
  };
  const asked: [number, string | undefined][] = [];
  const text = collect({
    manager: () => m as unknown as Manager,
    linkbacks: () => [],
    usage: (pid, cgroup) => (asked.push([pid, cgroup]), { cpuSeconds: 1.5, memoryBytes: 1000, processes: 2 }),
  });
  assert.equal(asked, [[42, undefined]]);
  assert.is(sampleValue(text, 'dmabox_manager_start_time_seconds'), 1_700_000_000);
  for (const st of SANDBOX_STATES) {
    assert.is(sampleValue(text, `dmabox_sandbox_state{sandbox="nic-a",state="${st}"}`), st === 'running' ? 1 : 0);
    assert.is(sampleValue(text, `dmabox_sandbox_state{sandbox="nic-b",state="${st}"}`), st === 'failed' ? 1 : 0);
  }
  assert.is(sampleValue(text, 'dmabox_sandbox_iommu_faults_total{sandbox="nic-a",kind="no-write"}'), 3);
  assert.is(sampleValue(text, 'dmabox_sandbox_iommu_faults_total{sandbox="nic-a",kind="not-present"}'), 1);
  assert.is(sampleValue(text, 'dmabox_container_cpu_seconds_total{sandbox="nic-a"}'), 1.5);
  assert.is(sampleValue(text, 'dmabox_container_memory_bytes{sandbox="nic-a"}'), 1000);
  assert.is(sampleValue(text, 'dmabox_container_pid{sandbox="nic-b"}'), undefined, 'no container: no sample');
  assert.ok(text.includes('device="sim:e1000e@0000:00:02.0 \\"lab\\\\1\\"",unconfined="true"} 1'), text);
  assert.not.match(text, /^dmabox_block_requests_total\{/m);
  assert.is(sampleValue(text, 'dmabox_net_frames_total{sandbox="nic-a",direction="tx"}'), 5);
  assert.is(sampleValue(text, 'dmabox_net_frames_total{sandbox="nic-b",direction="rx"}'), 7);
  assert.is(sampleValue(text, 'dmabox_net_bytes_total{sandbox="nic-a",direction="rx"}'), 700);
  assert.is(sampleValue(text, 'dmabox_net_lost_in_restart_total{sandbox="nic-a"}'), 1);
  assert.is(sampleValue(text, 'dmabox_net_spoofed_total{sandbox="nic-a"}'), 2);
  const promtool = findPromtool();
  assert.ok(promtool, 'promtool is missing: scripts/setup-host.sh unpacks it into .cache/prometheus (as root)');
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 0, `${r.stdout}${r.stderr}`);
});

test('fault kinds: the simulator reason, a VT-d reason code, AMD-Vi, anything else', () => {
  const f = (source: FaultEvent['source'], reason: string): FaultEvent => ({ device: '0000:00:01.0', iova: 0n, access: 'write', reason, source, iommu: true });
  assert.is(faultKind(f('sim', 'no-write (VT-d reason 0x05) (3 more not reported)')), 'no-write');
  assert.is(faultKind(f('sim', 'no-bus-master')), 'no-bus-master');
  assert.is(faultKind(f('sim', 'something new')), 'other');
  assert.is(faultKind(f('dmar', 'VT-d reason 0x06: PTE Read access is not set')), 'vtd-0x06');
  assert.is(faultKind(f('dmar', 'VT-d fault')), 'vtd');
  assert.is(faultKind(f('amd-vi', 'IO_PAGE_FAULT flags 0x0020')), 'io-page-fault');
});

test.run();
