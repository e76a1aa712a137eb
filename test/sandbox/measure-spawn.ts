/**
 * Measures container spawn to READY on the simulator (not a test; run by hand after a build):
 *   node dist/test/sandbox/measure-spawn.js [N] [unconfined]
 * N (default 10) sandboxes started one after the other, each timed from Supervisor.start() to
 * READY and stopped; prints every figure, the median, and the machine (nproc, node, load average).
 * `unconfined` runs them with `unconfined: true` (no seccomp, no namespaces).
 */
import { availableParallelism, loadavg } from 'node:os';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { simPolicy } from './helpers.js';

const n = Number(process.argv[2] ?? 10);
const extra = process.argv[3] === 'unconfined' ? 'unconfined: true\ncontainer: { seccomp: none }' : '';
const load = loadavg()[0]!.toFixed(2);
const ms: number[] = [];
for (let i = 0; i < n; i++) {
  const s = new Supervisor(simPolicy(`measure-spawn-${i}`, extra));
  const t0 = performance.now();
  await s.start().catch((e: unknown) => {
    console.error(s.events.map((x) => `${x.kind}: ${x.text}`).join('\n'));
    throw e;
  });
  ms.push(Math.round(performance.now() - t0));
  await s.stop();
}
const sorted = [...ms].sort((a, b) => a - b);
const median = n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
console.log(
  JSON.stringify({ nproc: availableParallelism(), node: process.version, load: [load, loadavg()[0]!.toFixed(2)], spawnToReadyMs: ms, medianMs: median }),
);
