/**
 * Reading a V8 CPU profile (`.cpuprofile`, what `node --cpu-prof` and the inspector's Profiler
 * write) for the benchmarks' `--profile` output: self time per function and per area of the
 * project, so a figure of CPU per request can be explained by where the samples fell. Kept apart
 * so a unit test checks the arithmetic on a fixed profile.
 */

/** The parts of a .cpuprofile this reads (Chrome DevTools Protocol, Profiler.Profile). */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTime {
  /** `function (file:line)`, or V8's own names: (garbage collector), (program), (idle). */
  name: string;
  /** The project area the function is in (see `area`). */
  area: string;
  us: number;
  /** Share of the non-idle samples, percent. */
  percent: number;
}

export interface ProfileSummary {
  /** Sampled time, microseconds, idle excluded. */
  busyUs: number;
  idleUs: number;
  top: SelfTime[];
  areas: { area: string; us: number; percent: number }[];
}

/**
 * The area of a script URL: the project's folder two levels deep (`linkback/nbd`, `sandbox/manager`),
 * `node:` internals, a dependency by package, or V8's own entries by name.
 */
export function area(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    return `dependency ${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const dist = url.lastIndexOf('/dist/');
  if (dist >= 0) {
    const parts = url.slice(dist + 6).split('/');
    return parts.length > 2 ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  return url.replace(/^file:\/\//, '');
}

/** Self time per function and per area. Time comes from the samples and their deltas; a profile without them is read by hit counts over its duration. */
export function summarizeProfile(p: CpuProfile, top = 15): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  if (p.samples && p.timeDeltas && p.samples.length === p.timeDeltas.length && p.samples.length > 0) {
    // Each delta is the time before its sample; the time of a sample is the delta that follows it.
    for (let i = 0; i < p.samples.length; i++) {
      const dt = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1]! : 0;
      self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + Math.max(0, dt));
    }
  } else {
    const hits = p.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0);
    const per = hits > 0 ? (p.endTime - p.startTime) / hits : 0;
    for (const n of p.nodes) if (n.hitCount) self.set(n.id, n.hitCount * per);
  }
  const fns = new Map<string, { area: string; us: number }>();
  let idleUs = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const file = url.slice(url.lastIndexOf('/') + 1);
    const name = url ? `${functionName || '(anonymous)'} (${file}:${lineNumber + 1})` : functionName || '(native)';
    const e = fns.get(name) ?? { area: area(url, functionName), us: 0 };
    e.us += us;
    fns.set(name, e);
  }
  const busyUs = [...fns.values()].reduce((a, e) => a + e.us, 0);
  const pct = (us: number): number => (busyUs > 0 ? Math.round((us / busyUs) * 1000) / 10 : 0);
  const areas = new Map<string, number>();
  for (const e of fns.values()) areas.set(e.area, (areas.get(e.area) ?? 0) + e.us);
  return {
    busyUs: Math.round(busyUs),
    idleUs: Math.round(idleUs),
    top: [...fns]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, top)
      .map(([name, e]) => ({ name, area: e.area, us: Math.round(e.us), percent: pct(e.us) })),
    areas: [...areas].sort((a, b) => b[1] - a[1]).map(([a, us]) => ({ area: a, us: Math.round(us), percent: pct(us) })),
  };
}

/** The summary as text lines, `perRequest` requests served while profiling (0: no per-request column). */
export function profileText(s: ProfileSummary, requests: number): string[] {
  const per = (us: number): string => (requests > 0 ? `, ${(us / requests).toFixed(2)} us/request` : '');
  return [
    `busy ${(s.busyUs / 1000).toFixed(1)} ms${per(s.busyUs)}, idle ${(s.idleUs / 1000).toFixed(1)} ms`,
    '  by area: ' + s.areas.map((a) => `${a.area} ${a.percent}%`).join(', '),
    ...s.top.map((t) => `  ${t.percent.toFixed(1).padStart(5)}%  ${t.name}${per(t.us)}`),
  ];
}
