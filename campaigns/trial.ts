/**
 * One trial: a fresh simulated NVMe controller on the worker's machine, the target's driver module
 * started on it through the injector, a client with a shadow of every acknowledged write, a small
 * supervisor (exit and hang detection, restart up to the policy's limit, requests replayed), and
 * the oracle: (1) memory outside the windows unchanged, (2) every acknowledged write read back
 * intact by a fault-free incarnation after recovery, (3) service again within the liveness bound,
 * (4) this process's fds bounded, (5) every IOMMU fault attributed to the trial's device. A device
 * class (campaigns/device-classes.ts) builds the controller with the trial's fault plan and adds
 * the device oracle: no read succeeds with data the device did not deliver, the device behaves
 * again before the read-back, and a driver that throws, hangs or never starts is a finding.
 */
import { readdirSync } from 'node:fs';
import { DEVICE_READS, DEVICE_WRITES, type DmaWindow } from '../drivers/contract/platform.js';
import type { BlockDevice, BlockServiceParams } from '../drivers/contract/block.js';
import type { DriverModule } from '../drivers/contract/driver.js';
import { mixSeed, Rng } from '../common/prng.js';
import type { Policy } from '../policies/types.js';
import { SimNvme } from '../sim/nvme/controller.js';
import type { SimPlatform } from '../sim/platform.js';
import type { NvmeMutator } from '../sim/nvme/mutator.js';
import { describePlan, devicePlan } from './device-classes.js';
import { digest } from './digest.js';
import { CampaignError } from './errors.js';
import { Injector, type Incarnation } from './inject/injector.js';
import type { Firing } from './inject/plan.js';
import { mortal, mortalLog } from './mutate/mortal.js';
import type { Mutation } from './mutate/mutator.js';
import type { TrialPlan } from './plan.js';
import type { Rig } from './rig.js';
import type { CampaignSpec, FaultParams } from './spec.js';

export type Outcome = 'recovered' | 'failed-as-policy-says' | 'client-saw-error' | 'violation';
export const OUTCOMES: readonly Outcome[] = ['recovered', 'failed-as-policy-says', 'client-saw-error', 'violation'];

export type BlockDriverModule = DriverModule<'block', BlockServiceParams, BlockDevice>;

export interface TrialRecord {
  index: number;
  seed: number;
  fault: string;
  iommu: boolean;
  outcome: Outcome;
  violations: string[];
  firings: Firing[];
  restarts: number;
  clientErrors: number;
  /** Reads that returned data other than the shadow's (the driver's own fault: not an oracle failure). */
  badReads: number;
  writesAcked: number;
  iommuFaults: number;
  /** From the first firing to the first request served after it, ms; null when nothing fired or nothing was served. */
  timeToRecoverMs: number | null;
  ms: number;
  /**
   * A device fault the driver did not survive (it threw something other than its own error, hung,
   * or never finished starting): not a violation of the sandbox, a bug to fix in the driver. One line.
   */
  finding?: { symptom: string };
  /** e1000e.thunderclap trials: what the hostile device reached (campaigns/targets/e1000e.ts, summed by summary.ts). */
  thunderclap?: TrialThunderclap;
  /** The mutant this trial ran (fault class `mutation`): file:line, operator, before -> after. */
  mutation?: Mutation;
}

export interface TrialThunderclap {
  accesses: number;
  refused: number;
  refusedUnlogged: number;
  outsideWindowsAllowed: number;
  reuseHits: number;
  inside: { window: string; holds: string; bytesRead: number; bytesWritten: number; nonZeroBytesSeen: number }[];
}

/**
 * Where an exception that escaped the driver's code during a trial goes (the runner's process-wide
 * handler calls it while a trial runs): the trial records a finding and replaces the incarnation.
 */
export const uncaughtSink: { current: ((e: unknown) => void) | undefined } = { current: undefined };

export interface TrialOptions {
  /** A broken recovery for the oracle's own test: writes are acknowledged before the driver finishes them. */
  ackBeforeDurable?: boolean;
  /** Lines of what happened, for `replay`. */
  log?: (line: string) => void;
  /** The fuzzer's device input (sim/nvme/mutator.ts): the trial's controller is built with it. */
  mutator?: NvmeMutator;
  /** Called when the workload is over, before the fault-free verifier starts (the fuzzer turns its mutator off). */
  beforeVerify?: () => void;
  /** Every error the driver's start, read or write rejected with (the fuzzer tells reported errors from crashes). */
  onDriverError?: (e: unknown) => void;
  /**
   * A mutation trial: `driver` is the mutant (every incarnation runs it), `verifier` the unmutated
   * driver that reads back the acknowledged writes, `mutation` what was changed. The mutant's own
   * data and its liveness are its own (campaigns/README.md, "Mutations and the oracle").
   */
  mutation?: { verifier: BlockDriverModule; mutation: Mutation; uncaught: { crash?: (why: string) => void } };
}

/** A plan whose fault the spec does not name (the fuzzer's `none`) injects nothing. */
const NO_FAULT: FaultParams = { weight: 0, probability: 100, interval: 1, times: 0, within: 1, variants: [] };

interface Inc {
  inc: Incarnation;
  raw: SimPlatform;
  device: BlockDevice | undefined;
  read: DmaWindow;
  write: DmaWindow;
  killed: Promise<'dead'>;
  kill: () => void;
  startedAt: number;
}

const PAGE = 4096;
const FD_SLACK = 8;

function fdCount(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

/**
 * A call into the driver's device, held to the contract: a method that throws, is missing, or
 * returns something other than a promise (a mutant that lost its `return`) fails the request.
 */
function settle<T>(call: () => Promise<T> | undefined): Promise<T> {
  try {
    const p = call();
    if (p && typeof (p as Promise<T>).then === 'function') return p;
    return Promise.reject(new CampaignError('ERR_CAMPAIGN_TARGET', 'the driver broke its contract: a BlockDevice call returned no promise'));
  } catch (e) {
    return Promise.reject(e);
  }
}

function timeout(ms: number): { promise: Promise<'timeout'>; cancel(): void } {
  let t: NodeJS.Timeout | undefined;
  const promise = new Promise<'timeout'>((r) => (t = setTimeout(() => r('timeout'), ms)));
  return { promise, cancel: () => clearTimeout(t) };
}

export async function runTrial(
  spec: CampaignSpec,
  policy: Policy,
  driver: BlockDriverModule,
  rig: Rig,
  plan: TrialPlan,
  options: TrialOptions = {},
): Promise<TrialRecord> {
  const t0 = performance.now();
  const log = options.log ?? (() => undefined);
  const fds0 = fdCount();
  const dev = policy.device as Extract<Policy['device'], { sim: 'nvme' }>;
  const w = spec.workload;
  const bs = dev.blockSize;
  const address = rig.nextAddress();
  // A fault the spec does not list (the fuzzer's executions) injects nothing.
  const params: FaultParams = spec.faults[plan.fault] ?? NO_FAULT;
  // A device class: the controller misbehaves by the registry's plan, seeded from (seed, index).
  const device = params.side === 'device';
  const devPlan = device
    ? devicePlan(
        { fault: plan.fault, probability: params.probability, interval: params.interval, times: params.times, own: params.own ?? {} },
        plan.first,
        plan.injectorSeed,
      )
    : undefined;
  const model = new SimNvme({
    ...(devPlan ? { faultPlan: devPlan } : {}),
    serial: dev.serial,
    namespaces: [{ blocks: w.blocks, blockSize: bs }],
    maxIoQueues: dev.maxQueues,
    maxQueueEntries: dev.mqes,
    timeout: 2,
    ...(options.mutator === undefined ? {} : { mutator: options.mutator }),
  });
  rig.machine.attach(model, { address });
  const iommuFaults0 = rig.machine.iommu.faultCount;
  const injector = new Injector(
    {
      fault: device ? 'none' : plan.fault,
      seed: plan.injectorSeed,
      first: plan.first,
      probability: params.probability,
      interval: params.interval,
      times: params.times,
      variants: params.variants,
      canary: rig.canary.base,
      neighbour: rig.neighbourPhys,
    },
    () => performance.now(),
  );
  const slotBytes = Math.ceil((w.maxBlocks * bs) / PAGE) * PAGE;
  const maxRestarts = policy.restart.maxRestarts;
  const violations: string[] = [];
  let restarts = 0;
  let failed = false;
  let clientErrors = 0;
  let badReads = 0;
  let writesAcked = 0;
  let recoveredAt: number | undefined;
  let lastProgress = performance.now();
  // Device faults: their firings (the first few recorded), and what the driver did not survive.
  const deviceFirings: Firing[] = [];
  let deviceFiredAt: number | undefined;
  let deviceFired = 0;
  let finding: string | undefined;
  const found = (symptom: string): void => {
    if (!device || finding !== undefined) return;
    finding = symptom.split('\n')[0]!.slice(0, 300);
    log(`FINDING: ${finding}`);
  };
  if (devPlan && model.faultPlan) {
    const text = describePlan(devPlan);
    log(`device fault plan: ${text}`);
    model.faultPlan.injector.onFire = (event) => {
      deviceFired++;
      deviceFiredAt ??= performance.now();
      if (deviceFirings.length < 16) deviceFirings.push({ point: event, variant: plan.fault, detail: `${text} fired at event ${event}` });
    };
  }
  /** A driver error is its own report when it carries a code (ERR_*); anything else escaped its code. */
  const reported = (e: unknown): boolean => typeof (e as { code?: unknown } | null)?.code === 'string';
  const mutation = options.mutation;
  /** A mutant's fault shows when the supervisor first restarts it or a request first fails. */
  let mutantFailedAt: number | undefined;
  const faultAt = (): number | undefined => injector.firedAt ?? deviceFiredAt ?? mutantFailedAt;
  const ownFindings: string[] = [];
  if (mutation) {
    const m = mutation.mutation;
    log(
      `mutant: ${m.file}:${m.line}:${m.col} ${m.operator}: ${m.before} -> ${m.after}${m.redrawn ? ` (${m.redrawn} mutant(s) that did not parse re-drawn)` : ''}`,
    );
    if (m.loadError) log(`mutant: its module throws when evaluated: ${m.loadError}`);
  }

  /** Start one incarnation; undefined when it could not start (the caller restarts or gives up). */
  async function start(inj: Injector, mod: BlockDriverModule = driver): Promise<Inc | undefined> {
    const raw = rig.machine.platform(address);
    const read = raw.dma.alloc(w.depth * slotBytes, DEVICE_WRITES, { label: 'block service read area' });
    const write = raw.dma.alloc(w.depth * slotBytes, DEVICE_READS, { label: 'block service write area' });
    let kill!: () => void;
    const killed = new Promise<'dead'>((r) => (kill = () => r('dead')));
    const me: Inc = {
      inc: undefined as unknown as Incarnation,
      raw,
      device: undefined,
      read,
      write,
      killed,
      kill: () => undefined,
      startedAt: performance.now(),
    };
    me.inc = inj.wrap(raw, (why) => {
      log(`driver exited: ${why}`);
      stop(me);
    });
    me.kill = kill;
    // A mutant's incarnation stops for good when it is dead (mutate/mortal.ts); the verifier is the unmutated driver.
    const mutant = mutation !== undefined && mod === driver;
    const dead = () => me.inc.state === 'killed' || me.inc.state === 'crashed';
    const areas = { entries: w.depth, slotBytes, read: read.iova, write: write.iova };
    const ctx = {
      platform: mutant ? mortal(me.inc.platform, dead) : me.inc.platform,
      options: {
        queues: policy.driver.queues,
        depth: policy.driver.depth,
        interrupts: device ? policy.driver.interrupts : ('polling' as const),
        // A device fault must be detected by the driver (its own escalation) before the watchdog calls
        // it a hang; the fault-free verifier keeps the driver's own bounds.
        ...(device && inj === injector ? { timeoutMs: Math.max(10, Math.floor(spec.recovery.hangMs / 4)) } : {}),
      },
      service: { areas },
      log: mutant ? mortalLog((_l, t) => log(`driver: ${t}`), dead) : (_l: string, t: string) => log(`driver: ${t}`),
    };
    const bound = timeout(spec.recovery.startMs);
    const started = settle(() => mod.start(ctx)).then(
      (d) => d,
      (e: unknown) => {
        options.onDriverError?.(e);
        log(`driver start failed: ${(e as Error).message.split('\n')[0]}`);
        if (inj === injector && !reported(e)) found(`start threw ${(e as Error).name}: ${(e as Error).message}`);
        return undefined;
      },
    );
    const r = await Promise.race([started, bound.promise, killed]);
    bound.cancel();
    if (r === 'timeout' || r === 'dead' || r === undefined) {
      if (r === 'timeout') {
        log('driver start timed out');
        if (inj === injector) found(`start neither finished nor failed within ${spec.recovery.startMs} ms`);
      }
      stop(me);
      return undefined;
    }
    me.device = r;
    return me;
  }

  function stop(x: Inc): void {
    x.inc.kill();
    x.kill();
    try {
      x.raw.reset();
    } catch {
      /* closed already */
    }
    x.raw.close();
  }

  let cur: Inc | undefined;
  // An exception out of the mutant's own timers or promises (the runner sees it uncaught) is what
  // kills a container: the running incarnation dies, and the supervisor restarts it.
  if (mutation)
    mutation.uncaught.crash = (why) => {
      const x = cur;
      if (!x || x.inc.state !== 'running') return;
      log(`driver exited: uncaught ${why}`);
      stop(x);
    };
  let ready: Promise<Inc | undefined> = Promise.resolve(undefined);
  let recovering = false;

  async function bringUp(): Promise<Inc | undefined> {
    for (;;) {
      const x = await start(injector);
      if (x) {
        cur = x;
        lastProgress = performance.now();
        return x;
      }
      restarts++;
      if (restarts > maxRestarts) {
        failed = true;
        log(`restart limit ${maxRestarts} reached: failed, as the policy says`);
        return undefined;
      }
    }
  }

  function restart(from: Inc, why: string): void {
    if (cur !== from || recovering) return;
    recovering = true;
    mutantFailedAt ??= mutation ? performance.now() : undefined;
    log(`supervisor: ${why}; restarting`);
    stop(from);
    cur = undefined;
    restarts++;
    if (restarts > maxRestarts) {
      failed = true;
      log(`restart limit ${maxRestarts} reached: failed, as the policy says`);
      ready = Promise.resolve(undefined);
      recovering = false;
      return;
    }
    ready = bringUp().finally(() => (recovering = false));
  }

  // The shadow: block -> checksum of what the last acknowledged write put there; absent: unknown.
  const shadow = new Map<number, number>();
  const rng = new Rng(plan.workloadSeed);
  const ops = Array.from({ length: w.operations }, (_, i) => {
    const n = 1 + rng.below(w.maxBlocks);
    return { i, write: rng.below(100) < w.writePercent, lba: rng.below(w.blocks - n + 1), n };
  });
  const inflight = new Map<number, { lba: number; n: number; done: Promise<void> }>();

  async function issue(x: Inc, op: (typeof ops)[number], tag: number): Promise<'ok' | 'error' | 'dead'> {
    const d = x.device!;
    const base = tag * slotBytes;
    let sums: number[] = [];
    if (op.write) {
      const data = new Rng(mixSeed(plan.workloadSeed, 1000 + op.i));
      for (let k = 0; k < op.n * bs; k += 4) x.write.view.setUint32(base + k, data.u32(), true);
      sums = Array.from({ length: op.n }, (_, k) => digest(x.write.bytes, base + k * bs, base + (k + 1) * bs));
      for (let k = 0; k < op.n; k++) shadow.delete(op.lba + k);
      if (options.ackBeforeDurable) {
        // The broken recovery: acknowledged now, durable maybe later.
        for (let k = 0; k < op.n; k++) shadow.set(op.lba + k, sums[k]!);
        writesAcked++;
        void settle(() => d.write(tag, op.lba, op.n, true)).catch(() => undefined);
        return 'ok';
      }
    }
    const p = settle(() => (op.write ? d.write(tag, op.lba, op.n, true) : d.read(tag, op.lba, op.n))).then(
      () => 'ok' as const,
      (e: unknown) => {
        options.onDriverError?.(e);
        if (!reported(e)) found(`a ${op.write ? 'write' : 'read'} failed with ${(e as Error).name}: ${(e as Error).message}`);
        return 'error' as const;
      },
    );
    let r = await Promise.race([p, x.killed]);
    if (r !== 'dead' && x.inc.state === 'hung') r = await x.killed; // a hung process delivers nothing
    if (r === 'dead' || cur !== x || x.inc.state !== 'running') return 'dead';
    lastProgress = performance.now();
    if (r === 'error') return 'error';
    if (faultAt() !== undefined && recoveredAt === undefined) recoveredAt = performance.now();
    if (op.write) {
      for (let k = 0; k < op.n; k++) shadow.set(op.lba + k, sums[k]!);
      writesAcked++;
    } else {
      for (let k = 0; k < op.n; k++) {
        const want = shadow.get(op.lba + k);
        if (want !== undefined && digest(x.read.bytes, base + k * bs, base + (k + 1) * bs) !== want) badReads++;
      }
    }
    return 'ok';
  }

  async function perform(op: (typeof ops)[number], tag: number): Promise<void> {
    for (const o of [...inflight.values()]) if (o.lba < op.lba + op.n && op.lba < o.lba + o.n) await o.done;
    for (let attempt = 0; attempt <= maxRestarts + 1; attempt++) {
      const x = cur ?? (await ready);
      if (!x || failed) return;
      const r = await issue(x, op, tag);
      if (r === 'ok') return;
      if (r === 'error') {
        clientErrors++;
        mutantFailedAt ??= mutation ? performance.now() : undefined;
        if (x.inc.state === 'crashed') restart(x, 'the driver died');
        return;
      }
      restart(x, 'the driver died'); // replay the request on the next incarnation
    }
  }

  const tick = Math.max(2, spec.recovery.hangMs / 4);
  let lastTick = performance.now();
  const watchdog = setInterval(() => {
    const now = performance.now();
    // Device trials: a tick that came late by half the bound means this process was starved (a
    // loaded machine), which is no driver's hang: the wait starts again rather than being blamed.
    if (device && now - lastTick > tick + spec.recovery.hangMs / 2) lastProgress = now;
    lastTick = now;
    if (cur && inflight.size > 0 && now - lastProgress > spec.recovery.hangMs) {
      found(`no progress for ${spec.recovery.hangMs} ms: the driver neither completed nor failed its requests`);
      restart(cur, `no progress for ${spec.recovery.hangMs} ms`);
    }
  }, tick);
  // Device trials only: an exception escaping the driver is a finding (driver-side trials keep the runner's rule: it ends the run).
  if (device)
    uncaughtSink.current = (e: unknown) => {
      found(`uncaught ${(e as Error).name}: ${(e as Error).message}`);
      if (cur) restart(cur, 'an exception escaped the driver');
    };
  try {
    ready = bringUp();
    await ready;
    let next = 0;
    await Promise.all(
      Array.from({ length: w.depth }, async (_, tag) => {
        while (next < ops.length && !failed) {
          const op = ops[next++]!;
          let done!: () => void;
          const entry = { lba: op.lba, n: op.n, done: new Promise<void>((r) => (done = r)) };
          const running = perform(op, tag);
          inflight.set(op.i, entry);
          await running.finally(() => {
            inflight.delete(op.i);
            done();
          });
        }
      }),
    );
  } finally {
    clearInterval(watchdog);
    if (mutation) mutation.uncaught.crash = undefined;
  }
  if (cur) {
    const x = cur;
    await Promise.race([settle(() => x.device?.close()).catch(() => undefined), timeout(200).promise]);
    stop(x);
    cur = undefined;
  }
  // (d): the device behaves again (a removed one is back on the bus); what follows checks the driver recovers.
  model.faultPlan?.behave();

  // Oracle (2) and (3): a fault-free incarnation reads back every acknowledged write.
  options.beforeVerify?.();
  const verifier = new Injector({ fault: 'none', seed: 1, first: 0, probability: 100, interval: 1, times: 0, variants: [], canary: 0, neighbour: 0 }, () =>
    performance.now(),
  );
  const v = await start(verifier, mutation?.verifier);
  if (!v) violations.push('recovery: a fault-free driver could not start on the reset device');
  else {
    const blocks = [...shadow.keys()].sort((a, b) => a - b);
    let lost = 0;
    for (let i = 0; i < blocks.length;) {
      const lba = blocks[i]!;
      let n = 1;
      while (n < w.maxBlocks && blocks[i + n] === lba + n) n++;
      try {
        await v.device!.read(0, lba, n);
        if (faultAt() !== undefined && recoveredAt === undefined) recoveredAt = performance.now();
        for (let k = 0; k < n; k++) if (digest(v.read.bytes, k * bs, (k + 1) * bs) !== shadow.get(lba + k)) lost++;
      } catch (e) {
        violations.push(`read-back of LBA ${lba} failed: ${(e as Error).message.split('\n')[0]}`);
        break;
      }
      i += n;
    }
    // A mutant that writes wrong data to its own disk misbehaves on its own data, which no sandbox
    // prevents: a finding. Every other class holds recovery to its acknowledged writes.
    if (lost) (mutation ? ownFindings : violations).push(`${lost} acknowledged block(s) lost or changed`);
    await Promise.race([settle(() => v.device!.close()).catch(() => undefined), timeout(200).promise]);
    stop(v);
  }
  // Oracle (1): nothing outside the windows changed.
  violations.push(...rig.damageOutsideWindows());
  // Oracle (5): every IOMMU fault is this device's.
  const faults = rig.machine.iommu.faults().filter((f) => f.seq > iommuFaults0);
  const foreign = faults.filter((f) => f.device !== address);
  if (foreign.length) violations.push(`${foreign.length} IOMMU fault(s) attributed to ${foreign[0]!.device}, not the trial's ${address}`);
  uncaughtSink.current = undefined;
  // Device oracle (b): no read succeeded with data the device did not deliver. A read the device
  // corrupted silently (nvme.corrupt-read report=silent) is the one exception: it said success, and
  // without end-to-end protection no driver can tell; those are counted, never more.
  if (device) {
    const silent = plan.fault === 'nvme.corrupt-read' && params.own?.['report'] === 'silent' ? deviceFired : 0;
    if (badReads > silent)
      violations.push(
        `${badReads - silent} read(s) succeeded with data the device did not deliver${silent ? ` (${silent} silent corruption(s) excepted)` : ''}`,
      );
  }
  // Oracle (3): liveness.
  const fault0 = faultAt();
  const ttr = fault0 !== undefined && recoveredAt !== undefined ? recoveredAt - fault0 : null;
  if (ttr !== null && ttr > spec.recovery.liveness && !failed)
    (mutation ? ownFindings : violations).push(`liveness: served again after ${ttr.toFixed(0)} ms, bound ${spec.recovery.liveness} ms`);
  // Oracle (4): no fd left behind.
  const fds = fdCount();
  if (fds > fds0 + FD_SLACK) violations.push(`fds: ${fds0} before the trial, ${fds} after`);
  const outcome: Outcome = violations.length ? 'violation' : failed ? 'failed-as-policy-says' : clientErrors ? 'client-saw-error' : 'recovered';
  const firings = device ? deviceFirings : mutationFirings();
  for (const f of firings) log(`fired at point ${f.point}: ${f.variant}: ${f.detail}`);
  for (const x of violations) log(`VIOLATION: ${x}`);
  for (const x of ownFindings) log(`finding (the mutant's own doing): ${x}`);
  function mutationFirings(): Firing[] {
    return mutation
      ? [
          {
            point: 0,
            variant: mutation.mutation.operator,
            detail: `${mutation.mutation.file}:${mutation.mutation.line}: ${mutation.mutation.before} -> ${mutation.mutation.after}`,
          },
        ]
      : injector.firings;
  }
  return {
    index: plan.index,
    seed: plan.seed,
    fault: plan.fault,
    iommu: !rig.iommuOff,
    outcome,
    violations,
    firings,
    restarts,
    clientErrors,
    badReads,
    writesAcked,
    iommuFaults: faults.length,
    timeToRecoverMs: ttr === null ? null : Math.round(ttr * 100) / 100,
    ms: Math.round((performance.now() - t0) * 100) / 100,
    ...(mutation ? { mutation: mutation.mutation } : {}),
    ...(finding !== undefined
      ? { finding: { symptom: finding } }
      : ownFindings.length
        ? { finding: { symptom: `${ownFindings.join('; ')} (the mutant's own doing: not a sandbox violation)` } }
        : {}),
  };
}
