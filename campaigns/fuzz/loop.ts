/**
 * The fuzzer loop: the corpus (loaded from `--corpus`, plus the empty input) is run once, then,
 * until the time or execution budget is spent, a parent is picked from the corpus (newer entries
 * more often), mutated one to four times (mutate.ts) and executed; an input whose coverage has a
 * feature never seen joins the corpus (and `--corpus` on disk), a finding not seen before (by kind
 * and symptom) is saved to `--out`. As many executions are in flight as the executor has slots.
 * A line of progress every `intervalMs`: executions, per second, blocks, corpus, findings.
 */
import { cpuUsage } from 'node:process';
import { Rng } from '../../common/prng.js';
import { CoverageMap } from './coverage.js';
import { loadCorpus, saveFinding, saveInput } from './corpus.js';
import { FuzzError } from './errors.js';
import type { ExecResult, Finding } from './exec.js';
import type { Observed } from './input.js';
import { mutate } from './mutate.js';
import { InProcess, WorkerPool, type Executor } from './pool.js';

export interface FuzzOptions {
  spec: string;
  /** Stop after this many seconds (default 60 when neither this nor `execs` is given). */
  seconds?: number;
  /** Stop after this many executions. */
  execs?: number;
  seed?: number;
  corpus?: string;
  out?: string;
  /** Worker threads; 0: executions on this thread. Default 1. */
  jobs?: number;
  /** One execution's time limit, ms (a hang beyond it). Default 3000. */
  timeoutMs?: number;
  intervalMs?: number;
  progress?: (p: Progress) => void;
  finding?: (f: Finding, file: string | undefined) => void;
  /** An executor of the caller's (tests); jobs is then ignored. */
  executor?: Executor;
}

export interface Progress {
  seconds: number;
  execs: number;
  execsPerSecond: number;
  coverage: number;
  corpus: number;
  findings: number;
}

export interface FuzzSummary extends Progress {
  execsPerCpuSecond: number;
  features: number;
  seed: number;
  jobs: number;
  timeline: Progress[];
  found: (Finding & { file?: string })[];
}

interface Entry {
  input: Uint8Array;
  observed: Observed;
}

/** A finding's identity: its kind and symptom with numbers blurred (addresses, counts, CIDs). */
export function findingKey(f: Finding): string {
  return `${f.kind}:${f.symptom.replace(/0x[0-9a-f]+|[0-9]+/gi, '#')}`;
}

function round(n: number, d = 1): number {
  const k = 10 ** d;
  return Math.round(n * k) / k;
}

export async function fuzz(o: FuzzOptions): Promise<FuzzSummary> {
  const seed = o.seed ?? 1;
  const jobs = o.jobs ?? 1;
  const timeoutMs = o.timeoutMs ?? 3000;
  if (o.seconds === undefined && o.execs === undefined) o = { ...o, seconds: 60 };
  if ((o.seconds !== undefined && !(o.seconds > 0)) || (o.execs !== undefined && !(o.execs >= 1)))
    throw new FuzzError('ERR_FUZZ_ARG', `budget: --seconds ${o.seconds} / --execs ${o.execs}: expected a positive number`, {
      fix: 'give --seconds S > 0 or --execs N >= 1',
    });
  const rng = new Rng(seed);
  const map = new CoverageMap();
  const corpus: Entry[] = [];
  const seen = new Set<string>();
  const found: (Finding & { file?: string })[] = [];
  const timeline: Progress[] = [];
  const executor = o.executor ?? (jobs === 0 ? await InProcess.open(o.spec, seed, timeoutMs) : await WorkerPool.open(o.spec, seed, timeoutMs, jobs));
  const t0 = performance.now();
  const cpu0 = cpuUsage();
  const deadline = o.seconds === undefined ? Infinity : t0 + o.seconds * 1000;
  const maxExecs = o.execs ?? Infinity;
  let execs = 0;
  let started = 0;
  let lastTick = t0;

  const progress = (): Progress => {
    const s = (performance.now() - t0) / 1000;
    return { seconds: round(s), execs, execsPerSecond: round(execs / Math.max(s, 0.001)), coverage: map.blocks, corpus: corpus.length, findings: found.length };
  };

  const record = (input: Uint8Array, r: ExecResult): void => {
    execs++;
    if (map.add(r.features) > 0 || corpus.length === 0) {
      corpus.push({ input, observed: r.observed });
      if (o.corpus) saveInput(o.corpus, input);
    }
    if (r.finding) {
      const key = findingKey(r.finding);
      if (!seen.has(key)) {
        seen.add(key);
        const file = o.out ? saveFinding(o.out, o.spec, seed, input, r.finding) : undefined;
        found.push({ ...r.finding, ...(file ? { file } : {}) });
        o.finding?.(r.finding, file);
      }
    }
    const now = performance.now();
    if (now - lastTick >= (o.intervalMs ?? 5000)) {
      lastTick = now;
      const p = progress();
      timeline.push(p);
      o.progress?.(p);
    }
  };

  const pick = (): Entry => {
    // Newer entries (deeper coverage) more often: the last quarter half the time.
    const n = corpus.length;
    const i = rng.below(2) === 0 ? n - 1 - rng.below(Math.max(1, n >> 2)) : rng.below(n);
    return corpus[i]!;
  };

  const more = () => started < maxExecs && performance.now() < deadline;
  try {
    // Calibration: the corpus on disk and the empty input, each once.
    for (const input of [new Uint8Array(0), ...(o.corpus ? loadCorpus(o.corpus) : [])]) {
      if (!more()) break;
      started++;
      record(input, await executor.run(input));
    }
    if (corpus.length === 0)
      throw new FuzzError('ERR_FUZZ_ARG', 'no execution ran: the budget is spent before the first', { fix: 'give a larger --seconds or --execs' });
    await Promise.all(
      Array.from({ length: executor.slots }, async () => {
        while (more()) {
          started++;
          const parent = pick();
          let child = parent.input;
          const stack = 1 + rng.below(4);
          for (let k = 0; k < stack; k++) child = mutate(child, rng, parent.observed, corpus[rng.below(corpus.length)]!.input);
          record(child, await executor.run(child));
        }
      }),
    );
  } finally {
    await executor.close();
  }
  const p = progress();
  const c = cpuUsage(cpu0);
  const cpuSeconds = (c.user + c.system) / 1e6;
  if (timeline.length === 0 || timeline[timeline.length - 1]!.execs !== execs) timeline.push(p);
  return {
    ...p,
    execsPerCpuSecond: round(execs / Math.max(cpuSeconds, 0.001)),
    features: map.features,
    seed,
    jobs: o.executor ? o.executor.slots : jobs,
    timeline,
    found,
  };
}
