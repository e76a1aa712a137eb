/**
 * Coverage: V8's precise block coverage of the driver's modules (node:inspector, `Profiler.
 * startPreciseCoverage({ callCount: true, detailed: true })`; each `takePreciseCoverage` returns the
 * counts since the last one and resets them), filtered to the files under the driver's folder and
 * turned into 32-bit features: one per block reached (script, start, end) and hit-count bucket, as
 * AFL buckets edge counts. `CoverageMap` keeps the features and blocks seen so far and says what an
 * execution added.
 */
import { Session } from 'node:inspector';
import { takeCoverage } from 'node:v8';
import { isMainThread } from 'node:worker_threads';
import { FuzzError } from './errors.js';

/** The parts of the inspector's Profiler.ScriptCoverage the fuzzer reads. */
export interface ScriptCoverage {
  url: string;
  functions: { ranges: { startOffset: number; endOffset: number; count: number }[] }[];
}

/** AFL's hit-count buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+. */
export function bucket(count: number): number {
  if (count <= 3) return count - 1;
  if (count < 8) return 3;
  if (count < 16) return 4;
  if (count < 32) return 5;
  if (count < 128) return 6;
  return 7;
}

function mix(h: number, v: number): number {
  h ^= v;
  return Math.imul(h, 0x01000193) >>> 0;
}

/** The block id of a range of a script (FNV-1a of the script's url and the offsets). */
export function blockId(url: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < url.length; i++) h = mix(h, url.charCodeAt(i));
  return mix(mix(h, start), end);
}

/**
 * The features of one execution's coverage: blocks (ranges counted > 0) of the scripts whose url
 * starts with `prefix`, each as (block id with its low 3 bits replaced by the bucket). Sorted, unique.
 */
export function features(scripts: readonly ScriptCoverage[], prefix: string): Uint32Array {
  const out = new Set<number>();
  for (const s of scripts) {
    if (!s.url.startsWith(prefix)) continue;
    for (const f of s.functions)
      for (const r of f.ranges) if (r.count > 0) out.add(((blockId(s.url, r.startOffset, r.endOffset) & ~7) | bucket(r.count)) >>> 0);
  }
  return Uint32Array.from(out).sort();
}

/** Features and blocks seen so far. */
export class CoverageMap {
  private readonly seen = new Set<number>();
  private readonly blockSet = new Set<number>();

  /** Add an execution's features: how many were new (an input with new features joins the corpus). */
  add(fs: Uint32Array): number {
    let fresh = 0;
    for (const f of fs) {
      if (this.seen.has(f)) continue;
      this.seen.add(f);
      this.blockSet.add(f >>> 3);
      fresh++;
    }
    return fresh;
  }

  /** Distinct blocks reached (any count). */
  get blocks(): number {
    return this.blockSet.size;
  }

  get features(): number {
    return this.seen.size;
  }
}

/**
 * Under c8 (NODE_V8_COVERAGE set) Node's own session collects this isolate's precise coverage, and
 * the counters are the isolate's, not a session's: a take here would reset what c8 has not written
 * yet, and stopping or disconnecting would switch its coverage off for the rest of the process.
 * So there: `flush()` writes Node's report (v8.takeCoverage) before each execution, and the session
 * is never stopped nor disconnected. Elsewhere `flush()` does nothing.
 */
const UNDER_C8 = process.env['NODE_V8_COVERAGE'] !== undefined && isMainThread;

/** A precise-coverage session on this thread's isolate (the main thread's, or a worker's own); one per thread. */
export class CoverageSession {
  private static current: CoverageSession | undefined;
  private readonly session = new Session();
  private started = false;

  private constructor() {}

  /** This thread's session, started on first use. */
  static async get(): Promise<CoverageSession> {
    const s = (CoverageSession.current ??= new CoverageSession());
    if (!s.started) await s.start();
    return s;
  }

  private async start(): Promise<void> {
    try {
      this.session.connect();
      await this.post('Profiler.enable');
      await this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
      this.started = true;
    } catch (e) {
      throw new FuzzError('ERR_FUZZ_COVERAGE', `V8 precise coverage could not start: ${(e as Error).message}`, {
        fix: 'run without --inspect or another profiler attached to this process',
        cause: e,
      });
    }
    this.flush();
    await this.take(); // from now on
  }

  /** Before an execution: under c8, write what c8 would otherwise lose to the next take. */
  flush(): void {
    if (UNDER_C8) takeCoverage();
  }

  /** The counts since the last call (the counters reset). */
  async take(): Promise<ScriptCoverage[]> {
    const r = (await this.post('Profiler.takePreciseCoverage')) as { result: ScriptCoverage[] };
    return r.result;
  }

  /** Stop and disconnect (never under c8: it would switch c8's coverage off). */
  async stop(): Promise<void> {
    if (!this.started || UNDER_C8) return;
    this.started = false;
    CoverageSession.current = undefined;
    await this.post('Profiler.stopPreciseCoverage');
    this.session.disconnect();
  }

  private post(method: string, params?: object): Promise<unknown> {
    return new Promise((resolve, reject) => this.session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
  }
}
