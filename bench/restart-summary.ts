/**
 * The arithmetic of `npm run bench -- restart` (bench/restart.ts), kept apart so a unit test checks
 * it: per kill, the times of each step from the moment the container was killed, and the summary
 * (percentiles of the whole restart and of every phase) printed as the bench's last JSON line.
 */

/**
 * One kill, every time in milliseconds from the kill (performance.now() differences); a step not
 * seen (the sandbox failed, the run ended first) is undefined and the kill is not counted.
 */
export interface KillTimes {
  /** The supervisor saw the container's exit (death detection). */
  exit?: number;
  /** The old device process answered its quarantine and is gone (sim.settled()). */
  quarantined?: number;
  /** The successor's device process runs (the launcher returned its pid; after the backoff). */
  deviceLaunched?: number;
  /** The successor container runs (the launcher returned its pid). */
  launched?: number;
  /** Its device process is READY. */
  deviceReady?: number;
  /** The successor is confined (its first log line after seccomp). */
  confined?: number;
  /** READY: the driver serves. */
  ready?: number;
  /** The first client request completed by the successor (replayed requests first). */
  firstCompletion?: number;
}

/** The phases reported, each as [from, to] steps of KillTimes ('kill' is 0). */
export const PHASES = {
  detect: ['kill', 'exit'],
  quarantine: ['exit', 'quarantined'],
  exitToDeviceLaunched: ['exit', 'deviceLaunched'],
  exitToLaunched: ['exit', 'launched'],
  deviceLaunchedToReady: ['deviceLaunched', 'deviceReady'],
  containerToConfined: ['launched', 'confined'],
  driverToReady: ['confined', 'ready'],
  readyToFirstCompletion: ['ready', 'firstCompletion'],
} as const satisfies Record<string, readonly [keyof KillTimes | 'kill', keyof KillTimes]>;

export type Phase = keyof typeof PHASES;

/** The p-th percentile (0..100) of `xs` by nearest rank (the smallest value with at least p % at or below it); NaN when empty. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

const round = (n: number): number => Math.round(n * 10) / 10;

export interface RestartSummary {
  /** Kills whose successor completed a request. */
  kills: number;
  /** Kills after which no successor completed a request before the run ended. */
  unfinished: number;
  restartP50Ms: number;
  restartP99Ms: number;
  restartMaxMs: number;
  /** Every restart (kill to first completion), in order. */
  restartMs: number[];
  /** Each phase's p50 and p99 over the counted kills (a phase a kill lacks is left out of it). */
  phases: Record<Phase, { p50Ms: number; p99Ms: number }>;
  /** The SLOWEST kills, slowest first, with every step's time: what a p99 outlier was made of. */
  slowest: { kill: number; steps: KillTimes }[];
  clientErrors: number;
}

/** How many of the slowest kills the summary shows step by step. */
export const SLOWEST = 3;

export function summarize(kills: readonly KillTimes[], clientErrors: number): RestartSummary {
  const done = kills.filter((k) => k.firstCompletion !== undefined);
  const total = done.map((k) => k.firstCompletion!);
  const phases = {} as RestartSummary['phases'];
  for (const [name, [from, to]] of Object.entries(PHASES) as [Phase, readonly [keyof KillTimes | 'kill', keyof KillTimes]][]) {
    const xs: number[] = [];
    for (const k of done) {
      const a = from === 'kill' ? 0 : k[from];
      const b = k[to];
      if (a !== undefined && b !== undefined) xs.push(b - a);
    }
    phases[name] = { p50Ms: round(percentile(xs, 50)), p99Ms: round(percentile(xs, 99)) };
  }
  return {
    kills: done.length,
    unfinished: kills.length - done.length,
    restartP50Ms: round(percentile(total, 50)),
    restartP99Ms: round(percentile(total, 99)),
    restartMaxMs: round(total.length ? Math.max(...total) : NaN),
    restartMs: total.map(round),
    phases,
    slowest: kills
      .map((steps, i) => ({ kill: i + 1, steps }))
      .filter((k) => k.steps.firstCompletion !== undefined)
      .sort((a, b) => b.steps.firstCompletion! - a.steps.firstCompletion!)
      .slice(0, SLOWEST)
      .map(({ kill, steps }) => ({
        kill,
        steps: Object.fromEntries(
          Object.entries(steps)
            .filter(([, v]) => v !== undefined)
            .map(([k, v]) => [k, round(v as number)]),
        ) as KillTimes,
      })),
    clientErrors,
  };
}
