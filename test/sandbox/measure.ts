/**
 * Measures the sandbox on the simulator (not a test; run by hand):
 *   node --conditions=source --import tsx test/sandbox/measure.ts
 * container spawn to READY, QD1 4 KiB read latency through the block ring and the container's
 * driver, and QD16 4 KiB random-read throughput with the request kicks the manager sent (and left
 * out, the container still taking) per request. Prints the machine (nproc, node, load average).
 * DMABOX_POLL_MS=N sets the manager's hybrid polling window (sandbox/abi/hybrid-poll.ts; default 0,
 * as a policy without an NBD linkback).
 */
import { availableParallelism, loadavg } from 'node:os';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { simPolicy } from './helpers.js';

const pollIdleMs = Number(process.env.DMABOX_POLL_MS ?? 0);
const s = new Supervisor(simPolicy('measure'), { pollIdleMs });
const t0 = performance.now();
await s.start();
const spawnMs = performance.now() - t0;
const blocks = s.block.blockCount;
const lat: number[] = [];
for (let i = 0; i < 2000; i++) {
  const a = performance.now();
  await s.block.read((i * 8 * 7919) % (blocks - 8), 8);
  lat.push(performance.now() - a);
}
lat.sort((a, b) => a - b);
let done = 0;
const end = performance.now() + 3000;
async function worker(seed: number): Promise<void> {
  let x = seed;
  while (performance.now() < end) {
    x = (x * 1103515245 + 12345) >>> 0;
    await s.block.read((x % ((blocks - 8) / 8)) * 8, 8);
    done++;
  }
}
const k0 = { kicks: s.block.kicks, saved: s.block.kicksSaved, done: s.block.completed, turns: s.poller?.turns ?? 0 };
const w0 = performance.now();
await Promise.all(Array.from({ length: 16 }, (_, i) => worker(i + 1)));
const secs = (performance.now() - w0) / 1000;
const reqs = s.block.completed - k0.done;
const kicks = { perRequest: +((s.block.kicks - k0.kicks) / reqs).toFixed(3), leftOutPerRequest: +((s.block.kicksSaved - k0.saved) / reqs).toFixed(3) };
await s.stop();
console.log(
  JSON.stringify({
    machine: { nproc: availableParallelism(), node: process.version, loadavg: loadavg().map((l) => l.toFixed(2)) },
    spawnToReadyMs: Math.round(spawnMs),
    qd1ReadUs: { median: Math.round(lat[1000]! * 1000), p99: Math.round(lat[1980]! * 1000) },
    qd16: {
      iops: Math.round(done / secs),
      mibPerS: +((done * 4096) / secs / 2 ** 20).toFixed(1),
      requestKicks: kicks,
      pollTurnsPerRequest: +(((s.poller?.turns ?? 0) - k0.turns) / reqs).toFixed(2),
    },
    pollIdleMs,
  }),
);
