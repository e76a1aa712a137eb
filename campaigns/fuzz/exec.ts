/**
 * One execution: a fresh simulated NVMe controller built with the input's mutator, the target
 * policy's driver brought up on it and the spec's workload run against it: the campaign trial
 * itself (campaigns/trial.ts, no fault injected on the driver side), bounded by a time limit. Then
 * the features of the driver's coverage, and a finding when the driver did not survive the device:
 *
 * - `exception`: the driver threw something other than one of dmabox's errors (a TypeError, a
 *   RangeError: it trusted what the device said), out of start/read/write or uncaught;
 * - `hang`: the execution did not end within the limit (in a worker, a synchronous loop the pool's
 *   watchdog ends);
 * - `oracle`: memory outside the trial's windows changed, or an IOMMU fault was not the trial's
 *   device's. (Read-backs that fail or differ are not findings: the device lied on purpose.)
 */
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DmaboxError } from '../../common/errors.js';
import { mixSeed } from '../../common/prng.js';
import type { Policy } from '../../policies/types.js';
import { driverRef } from '../../sandbox/manager/driver-code.js';
import { Rig } from '../rig.js';
import { loadCampaign, targetPolicy, type CampaignSpec } from '../spec.js';
import { loadBlockDriver } from '../target.js';
import { runTrial, type BlockDriverModule, type TrialRecord } from '../trial.js';
import { features, type CoverageSession } from './coverage.js';
import { InputMutator, type Observed } from './input.js';

export type FindingKind = 'exception' | 'hang' | 'oracle';

export interface Finding {
  kind: FindingKind;
  /** One line: what the driver did. */
  symptom: string;
  /** The stack of an exception (driver frames first), for the finding file. */
  stack?: string;
}

export interface ExecResult {
  features: Uint32Array;
  finding: Finding | undefined;
  observed: Observed;
  ms: number;
}

/** What executions run against: loaded once per thread. */
export interface Target {
  specFile: string;
  spec: CampaignSpec;
  policy: Policy;
  driver: BlockDriverModule;
  /** Coverage counts only scripts under this url (the driver module's folder). */
  prefix: string;
  seed: number;
  rig: Rig;
}

export async function loadTarget(specFile: string, seed: number): Promise<Target> {
  const spec = loadCampaign(specFile);
  const policy = targetPolicy(spec);
  const driver = await loadBlockDriver(policy);
  const prefix = `${pathToFileURL(dirname(driverRef(policy).entry)).href}/`;
  return { specFile, spec, policy, driver, prefix, seed, rig: new Rig(false) };
}

/** dmabox's own errors carry a code (`ERR_...`): those are the driver reporting a fault, anything else a crash. */
function reported(e: unknown): boolean {
  return e instanceof DmaboxError || (typeof (e as { code?: unknown })?.code === 'string' && String((e as { code: string }).code).startsWith('ERR_'));
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? `${e.name}: ${e.message}` : String(e)).split('\n')[0]!.slice(0, 300);
}

export interface ExecOptions {
  timeoutMs: number;
  coverage?: CoverageSession | undefined;
  log?: (line: string) => void;
}

export async function execute(t: Target, input: Uint8Array, o: ExecOptions): Promise<ExecResult> {
  const t0 = performance.now();
  if (!t.rig.roomy) t.rig = new Rig(false);
  const mutator = new InputMutator(input);
  let finding: Finding | undefined;
  const crash = (e: unknown, where: string) => {
    if (finding || reported(e)) return;
    finding = { kind: 'exception', symptom: `${where}: ${firstLine(e)}`, stack: e instanceof Error ? e.stack : undefined };
  };
  const onUncaught = (e: unknown) => crash(e, 'uncaught');
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  o.coverage?.flush();
  let timer: NodeJS.Timeout | undefined;
  let record: TrialRecord | 'timeout';
  try {
    const plan = { index: 0, seed: t.seed, fault: 'none', first: 0, injectorSeed: mixSeed(t.seed, 1), workloadSeed: mixSeed(t.seed, 2) };
    const trial = runTrial(t.spec, t.policy, t.driver, t.rig, plan, {
      mutator,
      beforeVerify: () => (mutator.active = false),
      onDriverError: (e) => crash(e, 'driver rejected'),
      ...(o.log ? { log: o.log } : {}),
    });
    record = await Promise.race([trial, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), o.timeoutMs)))]);
    if (record === 'timeout') {
      mutator.active = false; // let the abandoned trial end
      trial.catch(() => undefined);
    }
  } catch (e) {
    record = 'timeout';
    crash(e, 'trial threw');
  } finally {
    clearTimeout(timer);
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
  }
  if (record === 'timeout') finding ??= { kind: 'hang', symptom: `the execution did not end within ${o.timeoutMs} ms` };
  else {
    const damage = record.violations.filter((v) => /canary|neighbour|IOMMU fault/.test(v));
    if (damage.length) finding ??= { kind: 'oracle', symptom: damage.join('; ') };
  }
  const scripts = o.coverage ? await o.coverage.take() : [];
  if (finding && o.log) o.log(`finding: ${finding.kind}: ${finding.symptom}`);
  if (o.log) for (const f of mutator.fired) o.log(`device input: ${f}`);
  return { features: features(scripts, t.prefix), finding, observed: mutator.observed(), ms: performance.now() - t0 };
}
