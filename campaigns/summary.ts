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
  /** e1000e.thunderclap trials summed (thunderclap.ts); absent when the campaign had none. */
  thunderclap?: CampaignThunderclap;
}

function zero(): Record<Outcome, number> {
  return Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export function summarize(name: string, seed: number, iommu: boolean, records: readonly TrialRecord[], seconds: number): Summary {
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
  };
}
