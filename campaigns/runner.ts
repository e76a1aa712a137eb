/**
 * Running a campaign: the trials of this shard, in this process or in `jobs` worker processes
 * (campaigns/worker.ts), within the spec's time budget; each record appended to DIR/trials.jsonl
 * as it arrives, the summary in DIR/summary.json, and DIR/campaign.json saying how to replay.
 */
import { fork } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { runContainerTrial } from './container/trial.js';
import { runNetContainerTrial } from './container/net-trial.js';
import { CampaignError } from './errors.js';
import { InjectError } from './inject/errors.js';
import { shardIndices, trialPlan } from './plan.js';
import { Rig } from './rig.js';
import { loadCampaign, targetPolicy, type CampaignSpec } from './spec.js';
import { summarize, type Summary } from './summary.js';
import { Mutator } from './mutate/mutator.js';
import { driverRef } from '../sandbox/manager/driver-code.js';
import { loadDriver } from './target.js';
import { runTrial, uncaughtSink, type TrialOptions, type TrialRecord } from './trial.js';
import { checkDeviceClasses } from './device-classes.js';
import { runNetTrial } from './targets/e1000e.js';

export interface RunOptions {
  trials?: number;
  seed?: number;
  jobs?: number;
  shard?: { k: number; n: number };
  out?: string;
  iommuOff?: boolean;
  /** Called after each trial with the count done and the total. */
  progress?: (done: number, total: number, record: TrialRecord) => void;
  /** The oracle's own test: a broken recovery (trial.ts). */
  ackBeforeDurable?: boolean;
}

export interface CampaignMeta {
  spec: string;
  name: string;
  seed: number;
  trials: number;
  iommuOff: boolean;
  shard: { k: number; n: number };
}

/**
 * A safety net while trials run in this process: an InjectError that escapes the driver's code (a
 * killed incarnation's background work) is the injected fault, not the runner's; it is dropped.
 * So is an error `driverFault` claims (a mutant's own exception: its incarnation is crashed).
 * Anything else ends the run as Node would. The handlers are removed when the trials end.
 */
async function containingInjected<T>(body: () => Promise<T>, driverFault: (e: unknown) => boolean = () => false): Promise<T> {
  const onError = (e: unknown) => {
    if (e instanceof InjectError || driverFault(e)) return;
    if (uncaughtSink.current) return uncaughtSink.current(e); // a device-fault trial's finding
    process.stderr.write(`dmabox campaign: uncaught ${(e as Error).stack ?? String(e)}\n`);
    process.exit(70);
  };
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  try {
    return await body();
  } finally {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  }
}

/** Run the given trial indices in this process, one after the other, until `deadline`. */
export async function runIndices(
  spec: CampaignSpec,
  indices: readonly number[],
  seed: number,
  iommuOff: boolean,
  deadline: number,
  each: (r: TrialRecord) => void,
  options: TrialOptions = {},
): Promise<void> {
  const policy = targetPolicy(spec);
  checkDeviceClasses(spec.name, spec.faults, policy);
  if (spec.mode === 'container') {
    // Each trial through the real sandbox (campaigns/container/); in the lab, QEMU's DMAR trace is the IOMMU's log.
    const dmarTrace = process.env.DMABOX_LAB_DMAR_TRACE || undefined;
    // A NIC target: frames through the packet rings and the TAP linkback's bridge (container/net-trial.ts).
    const net = 'sim' in policy.device && policy.device.sim === 'e1000e';
    const blockOnly = Object.keys(spec.faults).filter((k) => k === 'hostile-abi' || k === 'exhaustion');
    if (net && blockOnly.length)
      throw new CampaignError(
        'ERR_CAMPAIGN_SPEC',
        `campaign ${spec.name}: ${blockOnly.join(' and ')} attack at a block driver's requests; policy ${policy.name} is a NIC`,
        {
          fix: `drop ${blockOnly.join(' and ')} from this spec, or target a block (NVMe) policy`,
        },
      );
    for (const i of indices) {
      if (Date.now() > deadline) break;
      const plan = trialPlan(spec, seed, i);
      each(
        net
          ? await runNetContainerTrial(spec, policy, plan, { log: options.log })
          : await runContainerTrial(spec, policy, plan, { log: options.log, dmarTrace }),
      );
    }
    return;
  }
  const driver = await loadDriver(policy);
  // The mutation class: mutants of the target's own module graph (campaigns/mutate/).
  const m = spec.faults.mutation;
  if (m && driver.kind !== 'block')
    throw new CampaignError(
      'ERR_CAMPAIGN_TARGET',
      `campaign ${spec.name}: the mutation class mutates block drivers only; policy ${policy.name} names a ${driver.kind} driver`,
      {
        fix: 'drop `mutation` from this spec, or target a `device: { sim: nvme }` policy',
      },
    );
  const mutator = m
    ? await Mutator.create(driverRef(policy).entry, { operators: m.variants, files: (m.extra?.files as string[] | undefined) ?? ['*.js'] })
    : undefined;
  const uncaught: { crash?: (why: string) => void } = {};
  const mutantFault = (e: unknown): boolean => {
    if (!mutator?.owns(e)) return false;
    uncaught.crash?.(((e as Error).message ?? String(e)).split('\n')[0]!);
    return true;
  };
  let rig = new Rig(iommuOff);
  try {
    await containingInjected(async () => {
      for (const i of indices) {
        if (Date.now() > deadline) break;
        if (!rig.roomy) rig = new Rig(iommuOff);
        const plan = trialPlan(spec, seed, i);
        if (plan.fault === 'mutation' && mutator && driver.kind === 'block') {
          const mutant = await mutator.load(plan.injectorSeed);
          each(await runTrial(spec, policy, mutant.module, rig, plan, { ...options, mutation: { verifier: driver, mutation: mutant.mutation, uncaught } }));
        } else if (driver.kind === 'net') each(await runNetTrial(spec, policy, driver, rig, plan, options));
        // The target policy's driver kind picks the trial: block (trial.ts) or net (targets/e1000e.ts).
        else each(await runTrial(spec, policy, driver, rig, plan, options));
      }
    }, mutantFault);
  } finally {
    mutator?.close();
  }
}

/** The line of a dead worker's stderr that says why (V8's fatal error, else the last non-empty line). */
export function workerDeath(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.find((l) => /FATAL ERROR|out of memory|Segmentation|Aborted/i.test(l)) ?? lines.at(-1) ?? '';
}

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

function runWorker(
  msg: { spec: string; seed: number; iommuOff: boolean; indices: number[]; deadline: number; ackBeforeDurable: boolean },
  each: (r: TrialRecord) => void,
): Promise<void> {
  return new Promise((done, fail) => {
    const child = fork(WORKER, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: ['--no-warnings'] });
    // The worker's stderr goes on to ours, and its last lines name a death's cause (V8 out of heap, a native crash).
    let tail = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      process.stderr.write(d);
      tail = (tail + d).slice(-4000);
    });
    child.on('message', (m: { record?: TrialRecord; error?: string }) => {
      if (m.record) each(m.record);
      if (m.error)
        fail(new CampaignError('ERR_CAMPAIGN_WORKER', `a campaign worker failed: ${m.error}`, { fix: 'rerun with --jobs 1 to see the error in this process' }));
    });
    child.on('exit', (code, signal) => {
      if (code === 0) return done();
      const last = workerDeath(tail);
      fail(
        new CampaignError('ERR_CAMPAIGN_WORKER', `a campaign worker exited with ${signal ?? code}${last ? `: ${last}` : ''}`, {
          fix: /heap/i.test(last)
            ? 'the worker ran out of memory: run fewer trials per worker (more --jobs, or --shard), and report it: a trial should not keep memory'
            : 'rerun with --jobs 1 to see the error in this process',
        }),
      );
    });
    child.send(msg);
  });
}

export async function runCampaign(specFile: string, options: RunOptions = {}): Promise<Summary> {
  const spec = loadCampaign(specFile);
  const target = targetPolicy(spec); // refuse a bad target before anything starts
  checkDeviceClasses(spec.name, spec.faults, target);
  const seed = options.seed ?? spec.seed;
  const trials = options.trials ?? spec.trials;
  const shard = options.shard ?? { k: 1, n: 1 };
  const iommuOff = options.iommuOff === true;
  if (iommuOff && spec.mode === 'container')
    throw new CampaignError('ERR_CAMPAIGN_ARG', `campaign ${spec.name}: --iommu off runs only in-process on the simulator; this campaign's mode is container`, {
      fix: 'drop --iommu off, or run an in-process campaign (mode: in-process) with it',
    });
  // One real device takes one trial at a time (a VFIO group opens in one place only).
  const jobs = 'sim' in target.device ? Math.max(1, options.jobs ?? 1) : 1;
  const indices = shardIndices(trials, shard);
  const out = options.out;
  if (out) {
    try {
      mkdirSync(out, { recursive: true });
      const meta: CampaignMeta = { spec: resolve(specFile), name: spec.name, seed, trials, iommuOff, shard };
      writeFileSync(join(out, 'campaign.json'), `${JSON.stringify(meta, null, 2)}\n`);
      writeFileSync(join(out, 'trials.jsonl'), '');
    } catch (e) {
      throw new CampaignError('ERR_CAMPAIGN_OUT', `cannot write the campaign's output in ${out}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
        fix: 'name a writable directory with --out',
      });
    }
  }
  const records: TrialRecord[] = [];
  const each = (r: TrialRecord) => {
    records.push(r);
    if (out) appendFileSync(join(out, 'trials.jsonl'), `${JSON.stringify(r)}\n`);
    options.progress?.(records.length, indices.length, r);
  };
  const t0 = performance.now();
  const deadline = Date.now() + spec.budget;
  if (jobs === 1) await runIndices(spec, indices, seed, iommuOff, deadline, each, { ackBeforeDurable: options.ackBeforeDurable });
  else {
    const parts = Array.from({ length: jobs }, (_, j) => indices.filter((_, k) => k % jobs === j)).filter((p) => p.length);
    await Promise.all(
      parts.map((p) => runWorker({ spec: resolve(specFile), seed, iommuOff, indices: p, deadline, ackBeforeDurable: options.ackBeforeDurable === true }, each)),
    );
  }
  records.sort((a, b) => a.index - b.index);
  const summary = summarize(spec.name, seed, !iommuOff, records, (performance.now() - t0) / 1000, out);
  if (out) writeFileSync(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}

export function readMeta(dir: string): CampaignMeta {
  try {
    return JSON.parse(readFileSync(join(dir, 'campaign.json'), 'utf8')) as CampaignMeta;
  } catch (e) {
    throw new CampaignError('ERR_CAMPAIGN_REPLAY', `${dir}: no readable campaign.json (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      fix: 'name a directory written by `dmabox campaign run ... --out DIR`',
    });
  }
}

export function readRecords(dir: string): TrialRecord[] {
  let text: string;
  try {
    text = readFileSync(join(dir, 'trials.jsonl'), 'utf8');
  } catch (e) {
    throw new CampaignError('ERR_CAMPAIGN_REPLAY', `${dir}: no readable trials.jsonl (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      fix: 'name a directory written by `dmabox campaign run ... --out DIR`',
    });
  }
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as TrialRecord);
}

/** Rerun trial `index` of the campaign in `dir` exactly, with its log; returns the new record and the saved one. */
export async function replayTrial(dir: string, index: number, log: (line: string) => void): Promise<{ record: TrialRecord; saved: TrialRecord | undefined }> {
  const meta = readMeta(dir);
  if (!Number.isInteger(index) || index < 0 || index >= meta.trials)
    throw new CampaignError('ERR_CAMPAIGN_REPLAY', `trial ${index}: the campaign in ${dir} has trials 0..${meta.trials - 1}`, {
      fix: 'name a trial index from trials.jsonl',
    });
  const spec = loadCampaign(meta.spec);
  const saved = readRecords(dir).find((r) => r.index === index);
  let record: TrialRecord | undefined;
  await runIndices(spec, [index], meta.seed, meta.iommuOff, Number.POSITIVE_INFINITY, (r) => (record = r), { log });
  return { record: record!, saved };
}

/** Merge shard directories: records by index (one per index: the shards must be of one campaign). */
export function mergeDirs(dirs: readonly string[]): Summary {
  const metas = dirs.map(readMeta);
  const first = metas[0];
  if (!first) throw new CampaignError('ERR_CAMPAIGN_ARG', 'merge: name at least one campaign directory', { fix: 'dmabox campaign merge DIR...' });
  for (const [i, m] of metas.entries())
    if (m.spec !== first.spec || m.seed !== first.seed || m.iommuOff !== first.iommuOff)
      throw new CampaignError(
        'ERR_CAMPAIGN_ARG',
        `merge: ${dirs[i]} is another campaign (spec ${m.spec}, seed ${m.seed}, iommu ${m.iommuOff ? 'off' : 'on'}) than ${dirs[0]}`,
        {
          fix: 'merge only the shards of one run: same spec, seed and --iommu',
        },
      );
  const byIndex = new Map<number, TrialRecord>();
  const dirOf = new Map<number, string>();
  for (const d of dirs)
    for (const r of readRecords(d)) {
      byIndex.set(r.index, r);
      dirOf.set(r.index, d);
    }
  const records = [...byIndex.values()].sort((a, b) => a.index - b.index);
  const seconds = dirs.reduce((s, d) => {
    try {
      return Math.max(s, (JSON.parse(readFileSync(join(d, 'summary.json'), 'utf8')) as Summary).seconds);
    } catch {
      return s;
    }
  }, 0);
  const summary = summarize(first.name, first.seed, !first.iommuOff, records, seconds);
  // A finding replays from the shard directory that holds its first trial.
  for (const f of summary.findings) f.replay = `dmabox campaign replay ${dirOf.get(f.trials[0]!) ?? 'DIR'} --trial ${f.trials[0]!}`;
  return summary;
}
