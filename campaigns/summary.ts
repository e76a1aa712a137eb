/** The summary of a campaign (or of merged shards): counts by outcome and by fault class, and the recovery times. */
import { OUTCOMES, type Outcome, type TrialRecord } from './trial.js';
import { aggregateThunderclap, type CampaignThunderclap } from './thunderclap.js';

export interface Summary {
  name: string;
  seed: number;
  iommu: boolean;
  trials: number;
  outcomes: Record<Outcome, number>;
  violations: number;
  byFault: Record<string, Record<Outcome, number>>;
  /** Trials in which the fault actually fired. */
  fired: number;
  trialsPerSecond: number;
  seconds: number;
  timeToRecoverMs: { count: number; p50: number | null; p90: number | null; max: number | null };
  /** Indices of the violating trials (each replays with `dmabox campaign replay DIR --trial N`). */
  violating: number[];
  /**
   * Device faults the driver did not survive, like a fuzzer's crash list: one entry per fault class
   * and symptom, the trials that showed it, and the command that reruns the first of them.
   */
  findings: Finding[];
  /** e1000e.thunderclap trials summed (thunderclap.ts); absent when the campaign had none. */
  thunderclap?: CampaignThunderclap;
}

export interface Finding {
  fault: string;
  symptom: string;
  trials: number[];
  replay: string;
}

/**
 * A symptom with the numbers that differ between trials of one bug (CIDs, LBAs, addresses, times)
 * replaced by N, so that one bug is one finding.
 */
export function symptomKey(symptom: string): string {
  return symptom.replace(/0x[0-9a-f]+/gi, '0xN').replace(/[0-9]+/g, 'N');
}

/** Group the records' findings by (fault class, symptom); the replay command names `dir` (DIR when unknown). */
export function findingsOf(records: readonly TrialRecord[], dir = 'DIR'): Finding[] {
  const byKey = new Map<string, Finding>();
  for (const r of records) {
    if (!r.finding) continue;
    const key = `${r.fault}\0${symptomKey(r.finding.symptom)}`;
    let f = byKey.get(key);
    if (!f) byKey.set(key, (f = { fault: r.fault, symptom: r.finding.symptom, trials: [], replay: '' }));
    f.trials.push(r.index);
  }
  return [...byKey.values()]
    .map(({ fault, symptom, trials }) => {
      trials.sort((a, b) => a - b);
      return { fault, symptom, trials, replay: `dmabox campaign replay ${dir} --trial ${trials[0]!}` };
    })
    .sort((a, b) => a.fault.localeCompare(b.fault) || b.trials.length - a.trials.length);
}

function zero(): Record<Outcome, number> {
  return Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export function summarize(name: string, seed: number, iommu: boolean, records: readonly TrialRecord[], seconds: number, dir?: string): Summary {
  const outcomes = zero();
  const byFault: Record<string, Record<Outcome, number>> = {};
  const ttr: number[] = [];
  const violating: number[] = [];
  let fired = 0;
  for (const r of records) {
    outcomes[r.outcome]++;
    (byFault[r.fault] ??= zero())[r.outcome]++;
    if (r.firings.length) fired++;
    if (r.timeToRecoverMs !== null) ttr.push(r.timeToRecoverMs);
    if (r.outcome === 'violation') violating.push(r.index);
  }
  ttr.sort((a, b) => a - b);
  const thunderclap = aggregateThunderclap(records);
  return {
    ...(thunderclap ? { thunderclap } : {}),
    name,
    seed,
    iommu,
    trials: records.length,
    outcomes,
    violations: outcomes.violation,
    byFault,
    fired,
    trialsPerSecond: seconds > 0 ? Math.round((records.length / seconds) * 100) / 100 : 0,
    seconds: Math.round(seconds * 100) / 100,
    timeToRecoverMs: { count: ttr.length, p50: quantile(ttr, 0.5), p90: quantile(ttr, 0.9), max: ttr.length ? ttr[ttr.length - 1]! : null },
    violating: violating.sort((a, b) => a - b),
    findings: findingsOf(records, dir),
  };
}
