/**
 * A trial as a pure function of (campaign seed, trial index): the fault class drawn by weight, its
 * first point and its injector's stream, and the workload's stream. Shards of one campaign, run
 * anywhere, agree on every trial; `replay` reruns one from the same two numbers.
 */
import { mixSeed, Rng } from '../common/prng.js';
import type { CampaignSpec } from './spec.js';

export interface TrialPlan {
  readonly index: number;
  /** mixSeed(campaign seed, index): the root of every stream of this trial. */
  readonly seed: number;
  readonly fault: string;
  readonly first: number;
  /** Seeds of the injector's and the workload's streams. */
  readonly injectorSeed: number;
  readonly workloadSeed: number;
}

export function trialPlan(spec: CampaignSpec, seed: number, index: number): TrialPlan {
  const root = mixSeed(seed, index);
  const rng = new Rng(root);
  const names = Object.keys(spec.faults);
  const fault = names[rng.weighted(names.map((n) => spec.faults[n]!.weight))]!;
  const first = rng.below(spec.faults[fault]!.within);
  return { index, seed: root, fault, first, injectorSeed: mixSeed(root, 1), workloadSeed: mixSeed(root, 2) };
}

/** `--shard K/N`: the indices of shard K (1-based) of N among `trials`: i with i % N == K - 1. */
export function shardIndices(trials: number, shard: { k: number; n: number }): number[] {
  const out: number[] = [];
  for (let i = shard.k - 1; i < trials; i += shard.n) out.push(i);
  return out;
}
