/**
 * What the metrics endpoint serves: the manager's live state read at scrape time, written as
 * Prometheus text (exposition.ts). Families (every name in ops/README.md, "Metrics"):
 *
 * - per sandbox: state (one series per state, 1 for the current one), restarts, container deaths,
 *   violations, IOMMU faults by kind, container CPU seconds and memory bytes, the container's pid;
 * - per block sandbox (its ring, replays included): requests, errors and bytes by operation, a
 *   latency histogram by operation, ring occupancy and entries, requests waiting, requests replayed;
 * - per NIC sandbox (its packet rings): frames and bytes by direction, frames lost in a restart,
 *   frames refused for a spoofed source;
 * - per NBD export: connections open and made, requests by command, bytes read and written,
 *   error replies by errno, protocol errors.
 *
 * Campaign metrics are not here: campaigns are another branch's work.
 */
import type { Linkback } from '../linkback/registry.js';
import type { Manager } from '../sandbox/manager/manager.js';
import type { SandboxState, Supervisor } from '../sandbox/manager/supervisor.js';
import { BlockService } from '../sandbox/manager/services/block-service.js';
import { NetService } from '../sandbox/manager/services/net-service.js';
import { BLOCK_OPS, LATENCY_BOUNDS_SECONDS, LATENCY_SLOTS } from '../sandbox/manager/services/op-stats.js';
import { Exposition } from './exposition.js';
import { containerUsage, type ContainerUsage } from './proc-stats.js';

export const SANDBOX_STATES: readonly SandboxState[] = ['starting', 'running', 'quarantined', 'backoff', 'failed', 'stopping', 'stopped'];

/** What a scrape reads: the manager now, and the linkbacks now (both change on reload). */
export interface MetricsSource {
  manager(): Manager;
  linkbacks(): readonly Linkback[];
  /** Container usage (a seam for tests); default proc-stats.ts. */
  usage?(pid: number, cgroup: string | undefined): ContainerUsage;
}

const NBD_OPS = [
  ['read', 'reads'],
  ['write', 'writes'],
  ['flush', 'flushes'],
  ['trim', 'trims'],
  ['write_zeroes', 'writeZeroes'],
  ['cache', 'caches'],
  ['block_status', 'blockStatus'],
  ['other', 'otherRequests'],
] as const;

function blockOf(s: Supervisor): BlockService | undefined {
  return s.service instanceof BlockService ? s.service : undefined;
}

export function collect(src: MetricsSource): string {
  const m = src.manager();
  const sandboxes = m.sandboxes;
  const usage = src.usage ?? containerUsage;
  const x = new Exposition();
  const per = (name: string, type: 'counter' | 'gauge', help: string, value: (s: Supervisor) => number | undefined): void => {
    x.family(name, type, help);
    for (const s of sandboxes) {
      const v = value(s);
      if (v !== undefined) x.sample({ sandbox: s.name }, v);
    }
  };

  x.family('dmabox_manager_start_time_seconds', 'gauge', 'When the manager started, in seconds since the epoch.').sample({}, m.startedAt / 1000);
  x.family('dmabox_sandboxes', 'gauge', 'Sandboxes the manager runs.').sample({}, sandboxes.length);
  x.family('dmabox_sandbox_state', 'gauge', 'The state of each sandbox: 1 for the state it is in, 0 for the others.');
  for (const s of sandboxes) for (const st of SANDBOX_STATES) x.sample({ sandbox: s.name, state: st }, s.state === st ? 1 : 0);
  x.family('dmabox_sandbox_info', 'gauge', 'Always 1: the driver, its kind and the device of each sandbox.');
  for (const s of sandboxes)
    x.sample({ sandbox: s.name, driver: s.driver.label, kind: s.kind, device: s.device.description, unconfined: String(s.policy.unconfined) }, 1);
  per('dmabox_sandbox_restarts_total', 'counter', 'Containers restarted by the supervisor (the first start not counted).', (s) => s.restarts);
  per('dmabox_sandbox_container_deaths_total', 'counter', 'Containers that crashed or were killed.', (s) => s.crashes);
  per(
    'dmabox_sandbox_device_errors_total',
    'counter',
    'Errors the device signalled on its error interrupt (AER), each a reset and restart.',
    (s) => s.deviceErrors,
  );
  per('dmabox_sandbox_violations_total', 'counter', 'Violations seen: hypercalls, mailbox and ring entries that could not be right.', (s) => s.violations);
  x.family('dmabox_sandbox_iommu_faults_total', 'counter', 'Faults attributed to the sandbox device, by kind (IOMMU refusals and bus-master faults).');
  for (const s of sandboxes) for (const [kind, n] of [...s.faultsByKind].sort((a, b) => a[0].localeCompare(b[0]))) x.sample({ sandbox: s.name, kind }, n);

  const use = new Map<Supervisor, ContainerUsage>();
  for (const s of sandboxes) {
    const pid = s.pid;
    if (pid !== undefined) use.set(s, usage(pid, s.cgroup));
  }
  per('dmabox_container_pid', 'gauge', 'The pid of the live container (absent when none runs).', (s) => s.pid);
  per(
    'dmabox_container_cpu_seconds_total',
    'counter',
    'CPU time (user and system) of the live container process tree; starts again from 0 with each new container.',
    (s) => use.get(s)?.cpuSeconds,
  );
  per(
    'dmabox_container_memory_bytes',
    'gauge',
    'Memory of the live container: its cgroup memory use, or the resident set of its processes.',
    (s) => use.get(s)?.memoryBytes,
  );

  const blocks = sandboxes.flatMap((s) => {
    const b = blockOf(s);
    return b ? [[s, b.client] as const] : [];
  });
  const opFamily = (name: string, help: string, arr: (c: (typeof blocks)[number][1]) => Float64Array, ops: readonly number[]): void => {
    x.family(name, 'counter', help);
    for (const [s, c] of blocks) for (const i of ops) x.sample({ sandbox: s.name, op: BLOCK_OPS[i]! }, arr(c)[i]!);
  };
  const allOps = BLOCK_OPS.map((_, i) => i);
  opFamily('dmabox_block_requests_total', 'Requests the sandbox block ring completed, by operation (replays counted once).', (c) => c.opStats.requests, allOps);
  opFamily('dmabox_block_request_errors_total', 'Requests the sandboxed driver answered with an error, by operation.', (c) => c.opStats.errors, allOps);
  opFamily('dmabox_block_bytes_total', 'Bytes read and written through the sandbox block ring.', (c) => c.opStats.bytes, [0, 1]);
  x.family(
    'dmabox_block_request_duration_seconds',
    'histogram',
    'Latency of block requests from when the manager took them to their completion, by operation.',
  );
  const cum = new Float64Array(LATENCY_SLOTS);
  for (const [s, c] of blocks)
    for (const i of allOps) x.histogram({ sandbox: s.name, op: BLOCK_OPS[i]! }, LATENCY_BOUNDS_SECONDS, c.opStats.cumulative(i, cum), c.opStats.latencySum[i]!);
  const blockGauge = (name: string, type: 'counter' | 'gauge', help: string, v: (c: (typeof blocks)[number][1]) => number): void => {
    x.family(name, type, help);
    for (const [s, c] of blocks) x.sample({ sandbox: s.name }, v(c));
  };
  blockGauge('dmabox_block_ring_entries', 'gauge', 'Entries of the block ring (the most requests in flight at once).', (c) => c.geometry.entries);
  blockGauge('dmabox_block_ring_inflight', 'gauge', 'Requests posted on the block ring and not yet completed.', (c) => c.inflightCount);
  blockGauge('dmabox_block_backlog', 'gauge', 'Requests waiting for a ring entry or for a container.', (c) => c.backlogCount);
  blockGauge('dmabox_block_replayed_total', 'counter', 'Requests posted again on a new container after the one holding them died.', (c) => c.replayed);

  const nics = sandboxes.flatMap((s) => (s.service instanceof NetService ? [[s, s.service.port.counters] as const] : []));
  x.family('dmabox_net_frames_total', 'counter', 'Frames through the sandbox packet rings, by direction (tx: host to device).');
  for (const [s, c] of nics) {
    x.sample({ sandbox: s.name, direction: 'tx' }, c.txFrames);
    x.sample({ sandbox: s.name, direction: 'rx' }, c.rxFrames);
  }
  x.family('dmabox_net_bytes_total', 'counter', 'Bytes through the sandbox packet rings, by direction.');
  for (const [s, c] of nics) {
    x.sample({ sandbox: s.name, direction: 'tx' }, c.txBytes);
    x.sample({ sandbox: s.name, direction: 'rx' }, c.rxBytes);
  }
  x.family('dmabox_net_lost_in_restart_total', 'counter', 'Frames in flight lost when a NIC container died (a NIC, unlike a disk, does not replay).');
  for (const [s, c] of nics) x.sample({ sandbox: s.name }, c.lostInRestart);
  x.family(
    'dmabox_net_spoofed_total',
    'counter',
    'Frames from the driver dropped as spoofs: from the sandbox NIC own MAC or a group address, or to another station.',
  );
  for (const [s, c] of nics) x.sample({ sandbox: s.name }, c.spoofed);

  const nbd = src.linkbacks().flatMap((l) => {
    const st = l.nbdStats?.();
    return st ? Object.entries(st.exports).map(([name, e]) => ({ sandbox: l.sandbox, export: name, e, server: st })) : [];
  });
  const nbdFamily = (name: string, type: 'counter' | 'gauge', help: string, v: (n: (typeof nbd)[number]) => number): void => {
    x.family(name, type, help);
    for (const n of nbd) x.sample({ sandbox: n.sandbox, export: n.export }, v(n));
  };
  nbdFamily('dmabox_nbd_connections', 'gauge', 'NBD clients attached to the export now.', (n) => n.e.connectionsActive);
  nbdFamily('dmabox_nbd_connections_total', 'counter', 'NBD clients that attached to the export.', (n) => n.e.connectionsTotal);
  x.family('dmabox_nbd_requests_total', 'counter', 'NBD requests by command.');
  for (const n of nbd) for (const [op, key] of NBD_OPS) x.sample({ sandbox: n.sandbox, export: n.export, op }, n.e[key]);
  x.family('dmabox_nbd_bytes_total', 'counter', 'Bytes NBD clients read and wrote.');
  for (const n of nbd) {
    x.sample({ sandbox: n.sandbox, export: n.export, op: 'read' }, n.e.bytesRead);
    x.sample({ sandbox: n.sandbox, export: n.export, op: 'write' }, n.e.bytesWritten);
  }
  x.family('dmabox_nbd_errors_total', 'counter', 'NBD replies that carried an error, by NBD errno name.');
  for (const n of nbd)
    for (const [err, v] of Object.entries(n.e.errors).sort((a, b) => a[0].localeCompare(b[0])))
      x.sample({ sandbox: n.sandbox, export: n.export, error: err }, v);
  nbdFamily('dmabox_nbd_device_errors_total', 'counter', 'NBD requests the device itself failed.', (n) => n.e.deviceErrors);
  nbdFamily('dmabox_nbd_protocol_errors_total', 'counter', 'NBD connections dropped for breaking the protocol in transmission.', (n) => n.e.protocolErrors);
  return x.text();
}
