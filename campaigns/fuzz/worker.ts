/**
 * A fuzzing worker thread (pool.ts): loads the target once, with a coverage session of its own
 * isolate, and runs the inputs it is sent, one result per message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CoverageSession } from './coverage.js';
import { execute, loadTarget } from './exec.js';

const data = workerData as { spec: string; seed: number; timeoutMs: number };
const port = parentPort!;

async function main(): Promise<void> {
  const target = await loadTarget(data.spec, data.seed);
  const coverage = await CoverageSession.get();
  port.on('message', (m: { id: number; input: Uint8Array }) => {
    void execute(target, m.input, { timeoutMs: data.timeoutMs, coverage }).then(
      (r) => port.postMessage({ id: m.id, result: r }),
      (e: unknown) => port.postMessage({ id: m.id, error: (e as Error).message }),
    );
  });
  port.postMessage({ ready: true });
}

main().catch((e: unknown) => port.postMessage({ fatal: (e as Error).message }));
