/**
 * The arithmetic of `npm run bench -- linkback --json` (bench/linkback.ts), kept apart so a unit
 * test checks it with fixed inputs: the medians of the runs of each target, the figures issue 16
 * judges (server CPU per request, IOPS ratio, QD1 latency added by the sandbox, our NBD server
 * against nbdkit, the in-process driver path over the memory device), and whether each target is
 * met, with the measured value beside it. A figure whose targets were not run is null, and so is
 * the verdict on it: never a pass by default.
 */

/** The four targets, as the JSON names them. */
export const TARGET_KEYS = ['sandboxed', 'inProcess', 'memory', 'nbdkit'] as const;
export type TargetKey = (typeof TARGET_KEYS)[number];

/**
 * The issue's targets (issue 16, "Targets"). Written once here; never loosened to make a run pass.
 */
export const TARGETS = {
  /** The sandbox adds at most this much server CPU per request at QD16 (manager + container + device process - in-process). */
  addedServerCpuUsPerRequest: 2,
  /** Sandboxed IOPS at least this fraction of the in-process IOPS, same run. */
  ratioSandboxedInProcess: 0.9,
  /** QD1 latency added by the sandbox, microseconds, at most. */
  addedQd1LatencyUs: 10,
  /** Our NBD server over memory costs at most this fraction of nbdkit's CPU per request. */
  nbdServerCpuVsNbdkit: 0.5,
  /** The in-process driver path costs at most this many microseconds per request over the memory device. */
  inProcessOverMemoryUsPerRequest: 1,
} as const;

/** CPU microseconds per request of each process of one run (0 where a target has no such process). */
export interface CpuSplit {
  /** This process: the manager (sandboxed) or the in-process server (in-process, memory). */
  self: number;
  /** The driver container (sandboxed), nbdkit. */
  others: number;
  /** The device process (sandboxed, simulator). */
  device: number;
  /** fio, the client. */
  fio: number;
}

/** Mean completion latencies of one QD1 run pair, microseconds. */
export interface Qd1 {
  randreadUs: number;
  randwriteUs: number;
}

/** One measured run of one target. */
export interface Run {
  iops: number;
  cpu: CpuSplit;
  /** Absent with --no-qd1. */
  qd1?: Qd1;
}

export interface TargetFigures {
  /** Median IOPS of the QD16 runs. */
  iops: number;
  /** Median server CPU microseconds per request (every server process, not fio). */
  cpuUsPerRequest: number;
  /** Median of each process's share. */
  cpu: CpuSplit;
  runs: number;
  /** Median QD1 latencies, null without QD1 runs. */
  qd1: Qd1 | null;
}

export interface Verdict {
  /** null: a target it needs was not run. */
  met: boolean | null;
  value: number | null;
  target: number;
  /** 'max': the value must be at most the target; 'min': at least. */
  bound: 'max' | 'min';
}

export interface LinkbackSummary {
  sandboxed: TargetFigures | null;
  inProcess: TargetFigures | null;
  memory: TargetFigures | null;
  nbdkit: TargetFigures | null;
  /** The same figures keyed the other way, for readers of `iops.sandboxed`. */
  iops: Record<TargetKey, number | null>;
  cpuUsPerRequest: Record<TargetKey, number | null>;
  qd1LatencyUs: Record<TargetKey, Qd1 | null>;
  ratioSandboxedInProcess: number | null;
  addedServerCpuUsPerRequest: number | null;
  nbdServerCpuVsNbdkit: number | null;
  inProcessOverMemoryUsPerRequest: number | null;
  /** The larger of the two added QD1 latencies (read, write): what the target is judged on. */
  addedQd1LatencyUs: number | null;
  addedQd1LatencyUsByOp: Qd1 | null;
  targetsMet: {
    addedServerCpuUsPerRequest: Verdict;
    ratioSandboxedInProcess: Verdict;
    addedQd1LatencyUs: Verdict;
    nbdServerCpuVsNbdkit: Verdict;
    inProcessOverMemoryUsPerRequest: Verdict;
  };
}

/** The median (the upper one of an even count: a value that was measured, never an average of two). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const r3 = (n: number): number => Math.round(n * 1000) / 1000;
const r1 = (n: number): number => Math.round(n * 10) / 10;

/** Server CPU per request of a run: every process but fio. */
export const serverCpu = (c: CpuSplit): number => c.self + c.others + c.device;

function figures(runs: readonly Run[] | undefined): TargetFigures | null {
  if (!runs || runs.length === 0) return null;
  const qd1 = runs.every((r) => r.qd1 !== undefined)
    ? { randreadUs: r1(median(runs.map((r) => r.qd1!.randreadUs))), randwriteUs: r1(median(runs.map((r) => r.qd1!.randwriteUs))) }
    : null;
  return {
    iops: Math.round(median(runs.map((r) => r.iops))),
    cpuUsPerRequest: r3(median(runs.map((r) => serverCpu(r.cpu)))),
    cpu: {
      self: r3(median(runs.map((r) => r.cpu.self))),
      others: r3(median(runs.map((r) => r.cpu.others))),
      device: r3(median(runs.map((r) => r.cpu.device))),
      fio: r3(median(runs.map((r) => r.cpu.fio))),
    },
    runs: runs.length,
    qd1,
  };
}

function verdict(value: number | null, target: number, bound: 'max' | 'min'): Verdict {
  if (value === null || !Number.isFinite(value)) return { met: null, value: null, target, bound };
  return { met: bound === 'max' ? value <= target : value >= target, value, target, bound };
}

export function summarizeLinkback(runs: Partial<Record<TargetKey, readonly Run[]>>): LinkbackSummary {
  const f = Object.fromEntries(TARGET_KEYS.map((k) => [k, figures(runs[k])])) as Record<TargetKey, TargetFigures | null>;
  const { sandboxed, inProcess, memory, nbdkit } = f;
  const ratio = sandboxed && inProcess && inProcess.iops > 0 ? r3(sandboxed.iops / inProcess.iops) : null;
  const added = sandboxed && inProcess ? r3(sandboxed.cpuUsPerRequest - inProcess.cpuUsPerRequest) : null;
  const vsNbdkit = memory && nbdkit && nbdkit.cpuUsPerRequest > 0 ? r3(memory.cpuUsPerRequest / nbdkit.cpuUsPerRequest) : null;
  const overMemory = inProcess && memory ? r3(inProcess.cpuUsPerRequest - memory.cpuUsPerRequest) : null;
  const byOp =
    sandboxed?.qd1 && inProcess?.qd1
      ? { randreadUs: r1(sandboxed.qd1.randreadUs - inProcess.qd1.randreadUs), randwriteUs: r1(sandboxed.qd1.randwriteUs - inProcess.qd1.randwriteUs) }
      : null;
  const addedQd1 = byOp ? Math.max(byOp.randreadUs, byOp.randwriteUs) : null;
  const per = <T>(g: (t: TargetFigures) => T): Record<TargetKey, T | null> =>
    Object.fromEntries(TARGET_KEYS.map((k) => [k, f[k] ? g(f[k]) : null])) as Record<TargetKey, T | null>;
  return {
    ...f,
    iops: per((t) => t.iops),
    cpuUsPerRequest: per((t) => t.cpuUsPerRequest),
    qd1LatencyUs: Object.fromEntries(TARGET_KEYS.map((k) => [k, f[k]?.qd1 ?? null])) as Record<TargetKey, Qd1 | null>,
    ratioSandboxedInProcess: ratio,
    addedServerCpuUsPerRequest: added,
    nbdServerCpuVsNbdkit: vsNbdkit,
    inProcessOverMemoryUsPerRequest: overMemory,
    addedQd1LatencyUs: addedQd1,
    addedQd1LatencyUsByOp: byOp,
    targetsMet: {
      addedServerCpuUsPerRequest: verdict(added, TARGETS.addedServerCpuUsPerRequest, 'max'),
      ratioSandboxedInProcess: verdict(ratio, TARGETS.ratioSandboxedInProcess, 'min'),
      addedQd1LatencyUs: verdict(addedQd1, TARGETS.addedQd1LatencyUs, 'max'),
      nbdServerCpuVsNbdkit: verdict(vsNbdkit, TARGETS.nbdServerCpuVsNbdkit, 'max'),
      inProcessOverMemoryUsPerRequest: verdict(overMemory, TARGETS.inProcessOverMemoryUsPerRequest, 'max'),
    },
  };
}

/** One line per target of the issue for the text output: value, bound, met or not (or not run). */
export function targetLines(s: LinkbackSummary): string[] {
  const names: Record<keyof LinkbackSummary['targetsMet'], string> = {
    addedServerCpuUsPerRequest: 'server CPU per request added by the sandbox (us)',
    ratioSandboxedInProcess: 'sandboxed / in-process IOPS',
    addedQd1LatencyUs: 'QD1 latency added by the sandbox (us, the larger of read and write)',
    nbdServerCpuVsNbdkit: 'our NBD server CPU / nbdkit CPU per request',
    inProcessOverMemoryUsPerRequest: 'in-process driver path over the memory device (us per request)',
  };
  return (Object.keys(names) as (keyof typeof names)[]).map((k) => {
    const v = s.targetsMet[k];
    const goal = `${v.bound === 'max' ? '<=' : '>='} ${v.target}`;
    return `- target ${names[k]}: ${v.value === null ? 'not run' : `${v.value} (${goal}): ${v.met ? 'met' : 'NOT met'}`}`;
  });
}
