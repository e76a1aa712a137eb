/**
 * One trial in container mode (`mode: container`): the target runs through the real sandbox, as
 * `dmabox up` runs it. A `Supervisor` given `campaign: { plan }` (its first container's code image
 * carries the injector, campaigns/inject/container.ts), the device process on the simulator or the
 * device on real VFIO in the lab, the real NBD linkback on a unix socket of the trial's own, and a
 * workload that is an NBD client (nbd-client.ts) keeping a shadow of every acknowledged write. The
 * host-side class `signal` sends SIGKILL or SIGSEGV to the container while requests are in flight.
 *
 * The oracle, every trial:
 * (1) outside the windows: a canary (memory this process allocates and never maps for any device)
 *     unchanged, and every IOMMU refusal the device's IOMMU logged (the simulated IOMMU's fault log
 *     in the device process; in the lab QEMU's `vtd_dmar_fault` trace, never rate-limited) is one
 *     the IOMMU refused for this sandbox's device;
 * (2) after recovery a fault-free container (the injector is only in the first) reads back every
 *     acknowledged block intact; when the restart limit failed the device, the media are read
 *     directly (simulator) or through a fresh plain sandbox (lab);
 * (3) served again within `recovery.liveness` of the first firing;
 * (4) this process (the manager's side) keeps its fd count and memory bounded across the trial;
 * (5) attribution: each traced DMAR fault's source-id is the sandbox's device.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mixSeed, Rng } from '../../common/prng.js';
import { startNbdLinkback } from '../../linkback/sandbox-nbd.js';
import type { Linkback } from '../../linkback/registry.js';
import type { Policy } from '../../policies/types.js';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import type { DmarFault } from '../../appliance/lab/dmar.js';
import { digest } from '../digest.js';
import type { TrialPlan } from '../plan.js';
import type { CampaignSpec } from '../spec.js';
import type { TrialRecord } from '../trial.js';
import { DmarTraceTail } from './dmar.js';
import { NbdClient } from './nbd-client.js';
import {
  FiredLog,
  POLL_MS,
  UNMAPPED_IOVA,
  canary as makeCanary,
  containerInjection,
  containerOutcome,
  containerRecord,
  fill,
  hostSide as isHostSide,
  managerBounds,
  sleep,
  trialSupervisor,
  until,
  type ContainerTrialOptions,
} from './common.js';

export type { ContainerTrialOptions } from './common.js';

/** The target policy with its NBD linkback moved to this trial's own socket (plain, no TLS). */
function trialPolicy(policy: Policy, socket: string, name: string): Policy {
  const lb = policy.linkback && 'nbd' in policy.linkback ? policy.linkback.nbd : undefined;
  const exportName = lb?.export ?? 'campaign';
  return {
    ...policy,
    name,
    linkback: { nbd: { socket, export: exportName, poll: lb?.poll ?? 0, tls: 'off', 'tls-verify-peer': false } },
  };
}

interface Op {
  write: boolean;
  lba: number;
  n: number;
  seed: number;
}

function drawOps(spec: CampaignSpec, seed: number): Op[] {
  const w = spec.workload;
  const rng = new Rng(seed);
  const ops: Op[] = [];
  for (let i = 0; i < w.operations; i++) {
    const n = 1 + rng.below(w.maxBlocks);
    ops.push({ write: rng.below(100) < w.writePercent, lba: rng.below(w.blocks - n + 1), n, seed: mixSeed(seed, i + 1) });
  }
  return ops;
}

export async function runContainerTrial(spec: CampaignSpec, policy: Policy, plan: TrialPlan, options: ContainerTrialOptions = {}): Promise<TrialRecord> {
  const t0 = performance.now();
  const say = options.log ?? (() => undefined);
  const log = (line: string) => say(`+${Math.round(performance.now() - t0)} ms ${line}`);
  const bounds = managerBounds();
  const hostSide = isHostSide(plan);
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-campaign-'));
  const pol = trialPolicy(policy, join(dir, 'nbd.sock'), `${policy.name}-t${plan.index}`.slice(0, 63));
  const exportName = (pol.linkback as { nbd: { export: string } }).nbd.export;
  const bs = 'sim' in pol.device && pol.device.sim === 'nvme' ? pol.device.blockSize : 512;
  const rec = spec.recovery;
  const opTimeout = rec.liveness + rec.hangMs + rec.startMs * (pol.restart.maxRestarts + 1) + 5000;
  const violations: string[] = [];
  let recoveredAt: number | undefined;
  let clientErrors = 0;
  let badReads = 0;
  let writesAcked = 0;
  const shadow = new Map<number, number>();
  const unknown = new Set<number>();
  const traced: DmarFault[] = [];

  const canary = makeCanary(plan.seed);

  const tail = options.dmarTrace ? new DmarTraceTail(options.dmarTrace) : undefined;
  tail?.skip();
  const s = trialSupervisor(pol, spec, plan, containerInjection(spec, plan));
  const fired = new FiredLog(s);
  const scan = () => {
    fired.scan();
    if (!tail) return;
    const fresh = tail.next();
    if (!fresh.length) return;
    traced.push(...fresh);
    const ours = fresh.find((f) => f.bdf === s.address);
    // The lab's fault monitor: one report per look (a blocked transfer traces many lines), the policy's action applied.
    if (ours)
      s.onFault({
        device: ours.bdf,
        iova: ours.addr,
        access: ours.write ? 'write' : 'read',
        reason: `VT-d reason 0x${ours.reason.toString(16).padStart(2, '0')}: ${ours.reasonText}`,
        source: 'dmar',
        iommu: true,
      });
  };
  const poller = setInterval(scan, POLL_MS);
  let lb: Linkback | undefined;
  let client: NbdClient | undefined;
  const connect = async () => {
    await client?.close();
    client = await NbdClient.connect(join(dir, 'nbd.sock'), exportName, opTimeout);
    return client;
  };
  const served = () => {
    if (fired.firedAt !== undefined && recoveredAt === undefined && Date.now() >= fired.firedAt) recoveredAt = Date.now();
  };
  let plain: Supervisor | undefined;
  try {
    try {
      await s.start();
    } catch (e) {
      log(`sandbox did not start: ${(e as Error).message.split('\n')[0]}`);
    }
    log(`sandbox ${s.state}`);
    for (const g of s.device.grants)
      if (Number(g.window.iova) + g.window.size > UNMAPPED_IOVA)
        violations.push(`the trial's wild targets are inside window ${g.label} at 0x${g.window.iova.toString(16)}: a campaign bug`);
    if (s.state !== 'failed') {
      lb = await startNbdLinkback({ supervisor: s, policy: pol, log: (l) => log(`nbd: ${l}`) });
      await connect();
      const ops = drawOps(spec, plan.workloadSeed);
      const busy = new Set<number>();
      const sig = new Rng(plan.injectorSeed);
      let next = 0;
      const overlaps = (op: Op) => {
        for (let k = 0; k < op.n; k++) if (busy.has(op.lba + k)) return true;
        return false;
      };
      const worker = async () => {
        for (;;) {
          const i = next++;
          const op = ops[i];
          if (!op) return;
          while (overlaps(op)) await sleep(1);
          for (let k = 0; k < op.n; k++) busy.add(op.lba + k);
          if (hostSide && i === plan.first) fired.signal(spec, plan, i, sig);
          try {
            const c = client!;
            if (op.write) {
              const data = new Uint8Array(op.n * bs);
              fill(data, op.seed);
              for (let k = 0; k < op.n; k++) unknown.add(op.lba + k);
              await c.write(op.lba * bs, data);
              for (let k = 0; k < op.n; k++) {
                shadow.set(op.lba + k, digest(data, k * bs, (k + 1) * bs));
                unknown.delete(op.lba + k);
              }
              writesAcked++;
            } else {
              const got = await c.read(op.lba * bs, op.n * bs);
              for (let k = 0; k < op.n; k++) {
                const want = shadow.get(op.lba + k);
                if (want !== undefined && !unknown.has(op.lba + k) && digest(got, k * bs, (k + 1) * bs) !== want) badReads++;
              }
            }
            served();
          } catch (e) {
            clientErrors++;
            log(`op ${i} (${op.write ? 'write' : 'read'} ${op.n} at ${op.lba}) failed: ${(e as Error).message.split('\n')[0]}`);
            // A failed write may have landed in part: its blocks are unknown from now on (nothing acknowledged).
            if (op.write) for (let k = 0; k < op.n; k++) shadow.delete(op.lba + k);
          } finally {
            for (let k = 0; k < op.n; k++) busy.delete(op.lba + k);
          }
        }
      };
      await Promise.all(Array.from({ length: spec.workload.depth }, worker));
    }
    scan();
    log('workload done');

    // Recovery: served again, on a container without the injector (the first one carries it).
    const settle = rec.liveness + rec.startMs * (pol.restart.maxRestarts + 1) + 2000;
    await until(() => s.state === 'running' || s.state === 'failed', settle);
    if (s.state === 'running' && s.restarts === 0 && !hostSide) {
      s.kill('campaign: the read-back runs on a fault-free container');
      await until(() => (s.state === 'running' && s.restarts > 0) || s.state === 'failed', settle);
    }
    scan();

    // (2) every acknowledged block read back intact.
    const lbas = [...shadow.keys()].filter((l) => !unknown.has(l)).sort((a, b) => a - b);
    let lost = 0;
    const check = (lba: number, bytes: Uint8Array, n: number) => {
      for (let k = 0; k < n; k++) if (digest(bytes, k * bs, (k + 1) * bs) !== shadow.get(lba + k)) lost++;
    };
    const runs: { lba: number; n: number }[] = [];
    for (const l of lbas) {
      const last = runs[runs.length - 1];
      if (last && last.lba + last.n === l && last.n < 64) last.n++;
      else runs.push({ lba: l, n: 1 });
    }
    if (s.state === 'running') {
      try {
        const c = await connect();
        for (const r of runs) {
          const bytes = await c.read(r.lba * bs, r.n * bs);
          served();
          for (let k = 0; k < r.n; k++) if (shadow.has(r.lba + k)) check(r.lba + k, bytes.subarray(k * bs), 1);
        }
      } catch (e) {
        violations.push(`read-back through NBD failed: ${(e as Error).message.split('\n')[0]}`);
      }
    } else if (s.sim) {
      for (const r of runs) {
        const bytes = s.sim.readMedia(r.lba * bs, r.n * bs);
        if (!bytes) violations.push(`read-back: the media of LBA ${r.lba} cannot be read`);
        else for (let k = 0; k < r.n; k++) check(r.lba + k, bytes.subarray(k * bs), 1);
      }
    } else if (runs.length) {
      // Real hardware: the device failed as the policy says; a fresh, plain sandbox reads its media.
      await client?.close();
      await lb?.close();
      lb = undefined;
      await s.stop();
      plain = new Supervisor(
        { ...pol, name: `${pol.name}-rb`.slice(0, 63), linkback: undefined },
        { helloTimeoutMs: rec.startMs, readyTimeoutMs: rec.startMs, spares: false },
      );
      try {
        await plain.start();
        for (const r of runs) check(r.lba, await plain.block.read(r.lba, r.n), r.n);
      } catch (e) {
        violations.push(`read-back on a fresh sandbox failed: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    if (lost) violations.push(`${lost} acknowledged block(s) lost or changed`);
    log(`read back ${lbas.length} block(s)`);
  } finally {
    clearInterval(poller);
    await client?.close();
    await lb?.close();
    log('linkback closed');
    await s.stop();
    await plain?.stop();
    log('sandbox stopped');
    scan();
    rmSync(dir, { recursive: true, force: true });
  }

  // (1) outside the windows.
  if (!canary.intact()) violations.push('the canary (memory no device has mapped) changed');
  const foreignSim = s.faults.filter((f) => f.device !== s.address);
  if (foreignSim.length) violations.push(`${foreignSim.length} IOMMU fault(s) reported for ${foreignSim[0]!.device}, not the sandbox's ${s.address}`);
  // (5) attribution of every traced DMAR fault (the lab runs only this sandbox's device during the trial).
  const foreign = traced.filter((f) => f.bdf !== s.address);
  if (foreign.length) violations.push(`${foreign.length} DMAR fault(s) from ${foreign[0]!.bdf}, not the sandbox's ${s.address}`);
  // (3) liveness.
  const firedAt = fired.firedAt;
  const ttr = firedAt !== undefined && recoveredAt !== undefined ? recoveredAt - firedAt : null;
  if (ttr !== null && ttr > rec.liveness) violations.push(`liveness: served again ${ttr} ms after the first firing, bound ${rec.liveness} ms`);
  if (firedAt !== undefined && recoveredAt === undefined && s.restarts < pol.restart.maxRestarts && clientErrors === 0)
    violations.push('liveness: nothing served after the first firing');
  // (4) the manager's side bounded.
  violations.push(...bounds.check());

  return containerRecord(plan, s, fired, {
    outcome: containerOutcome(s, violations, clientErrors, log),
    violations,
    clientErrors,
    badReads,
    writesAcked,
    iommuFaults: tail ? traced.length : s.faultCount,
    timeToRecoverMs: ttr,
    ms: Math.round(performance.now() - t0),
  });
}
