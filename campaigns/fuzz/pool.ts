/**
 * Executors: where executions run. `InProcess` runs them on this thread (`--jobs 0`: what the unit
 * tests use, so c8 sees the code); `WorkerPool` in worker threads (the default, one per core), each
 * with its own target, rig and coverage session. A worker that does not answer within its time
 * limit plus a grace period is in a synchronous loop: it is terminated, the input is a `hang`
 * finding, and a fresh worker takes its place.
 */
import { Worker } from 'node:worker_threads';
import { CoverageSession } from './coverage.js';
import { FuzzError } from './errors.js';
import { execute, loadTarget, type ExecResult, type Target } from './exec.js';

export interface Executor {
  /** How many executions may be in flight at once. */
  readonly slots: number;
  run(input: Uint8Array): Promise<ExecResult>;
  close(): Promise<void>;
}

export class InProcess implements Executor {
  readonly slots = 1;
  private constructor(
    private readonly target: Target,
    private readonly coverage: CoverageSession | undefined,
    private readonly timeoutMs: number,
  ) {}

  static async open(spec: string, seed: number, timeoutMs: number, coverage = true): Promise<InProcess> {
    return new InProcess(await loadTarget(spec, seed), coverage ? await CoverageSession.get() : undefined, timeoutMs);
  }

  run(input: Uint8Array): Promise<ExecResult> {
    return execute(this.target, input, { timeoutMs: this.timeoutMs, coverage: this.coverage });
  }

  async close(): Promise<void> {
    await this.coverage?.stop();
  }
}

/** Grace beyond the execution's own limit before a silent worker is taken to be stuck. */
const GRACE_MS = 2000;
/** How long a worker may take to load the target. */
const START_MS = 30_000;

interface Slot {
  worker: Worker;
  busy: boolean;
}

export class WorkerPool implements Executor {
  readonly slots: number;
  private readonly workers: Slot[] = [];
  private id = 0;
  private closed = false;

  private constructor(
    private readonly spec: string,
    private readonly seed: number,
    private readonly timeoutMs: number,
    jobs: number,
  ) {
    this.slots = jobs;
  }

  static async open(spec: string, seed: number, timeoutMs: number, jobs: number): Promise<WorkerPool> {
    const p = new WorkerPool(spec, seed, timeoutMs, jobs);
    try {
      for (let i = 0; i < jobs; i++) p.workers.push({ worker: await p.spawn(), busy: false });
    } catch (e) {
      await p.close();
      throw e;
    }
    return p;
  }

  private spawn(): Promise<Worker> {
    const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: { spec: this.spec, seed: this.seed, timeoutMs: this.timeoutMs } });
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(t);
        void w.terminate();
        reject(new FuzzError('ERR_FUZZ_WORKER', `a fuzzing worker failed to start: ${why}`, { fix: 'rerun with --jobs 0 to see the error in this process' }));
      };
      const t = setTimeout(() => fail(`no answer within ${START_MS} ms`), START_MS);
      w.once('error', (e) => fail(e.message));
      w.once('message', (m: { ready?: boolean; fatal?: string }) => {
        if (!m.ready) return fail(m.fatal ?? 'unexpected message');
        clearTimeout(t);
        w.removeAllListeners('error');
        resolve(w);
      });
    });
  }

  async run(input: Uint8Array): Promise<ExecResult> {
    const slot = this.workers.find((s) => !s.busy);
    if (!slot || this.closed)
      throw new FuzzError('ERR_FUZZ_WORKER', 'no idle fuzzing worker', { fix: 'a bug in campaigns/fuzz/loop.ts: more executions in flight than workers' });
    slot.busy = true;
    const id = ++this.id;
    const w = slot.worker;
    const t0 = performance.now();
    const r = await new Promise<ExecResult | { stuck: string }>((resolve) => {
      const done = (v: ExecResult | { stuck: string }) => {
        clearTimeout(t);
        w.off('message', onMessage);
        w.off('error', onError);
        resolve(v);
      };
      const onMessage = (m: { id: number; result?: ExecResult; error?: string }) => {
        if (m.id !== id) return;
        if (m.result) done(m.result);
        else done({ stuck: `the worker's execution threw: ${m.error ?? ''}` });
      };
      const onError = (e: Error) => done({ stuck: `uncaught in the worker: ${e.message.split('\n')[0]}` });
      const t = setTimeout(() => done({ stuck: '' }), this.timeoutMs + GRACE_MS);
      w.on('message', onMessage);
      w.on('error', onError);
      w.postMessage({ id, input });
    });
    if ('features' in r) {
      slot.busy = false;
      return r;
    }
    // Stuck or dead: a fresh worker replaces it.
    void w.terminate();
    if (!this.closed) slot.worker = await this.spawn();
    slot.busy = false;
    const hang = r.stuck === '';
    return {
      features: new Uint32Array(0),
      finding: hang
        ? { kind: 'hang', symptom: `no answer within ${this.timeoutMs + GRACE_MS} ms (a synchronous loop?)` }
        : { kind: 'exception', symptom: r.stuck },
      observed: { registers: [], completions: 0, identifies: 0 },
      ms: performance.now() - t0,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((s) => s.worker.terminate()));
  }
}
