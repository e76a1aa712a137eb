/**
 * `npm run bench -- fuzz`: the coverage-guided mode's rate (campaigns/README.md, "Coverage-guided
 * mode") on campaigns/examples/fuzz-nvme.yaml. First what one execution of the empty input costs
 * on this thread, without and with V8 block coverage (the floor: bring-up, workload, verifier);
 * then fuzzing for --seconds (default 20) on this thread (--jobs 0) and with one worker thread per
 * core: executions per second and per CPU-second (process CPU time, all threads), blocks, corpus.
 * VIA's ~570 executions per second per core is the figure to compare with.
 *
 * Options: --seconds=S, --execs=N (empty-input executions per floor measurement, default 100).
 */
import { availableParallelism, loadavg } from 'node:os';
import { cpuUsage } from 'node:process';
import { fileURLToPath } from 'node:url';
import { fuzz } from '../campaigns/fuzz/loop.js';
import { InProcess } from '../campaigns/fuzz/pool.js';

const SPEC = fileURLToPath(new URL('../../campaigns/examples/fuzz-nvme.yaml', import.meta.url));

function opt(argv: string[], name: string, dflt: number): number {
  const a = argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : dflt;
}

async function floor(n: number, coverage: boolean): Promise<{ ms: number; cpuMs: number }> {
  const ex = await InProcess.open(SPEC, 1, 3000, coverage);
  await ex.run(new Uint8Array(0)); // warm
  const t0 = performance.now();
  const c0 = cpuUsage();
  for (let i = 0; i < n; i++) await ex.run(new Uint8Array(0));
  const c = cpuUsage(c0);
  const ms = (performance.now() - t0) / n;
  await ex.close();
  return { ms, cpuMs: (c.user + c.system) / 1000 / n };
}

export async function run(argv: string[]): Promise<void> {
  const seconds = opt(argv, 'seconds', 20);
  const n = opt(argv, 'execs', 100);
  console.log(
    `spec ${SPEC}; load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  for (const coverage of [false, true]) {
    const f = await floor(n, coverage);
    console.log(
      `empty input, this thread, coverage ${coverage ? 'on ' : 'off'}: ${f.ms.toFixed(2)} ms per execution (${f.cpuMs.toFixed(2)} ms CPU), ${(1000 / f.ms).toFixed(0)}/s`,
    );
  }
  for (const jobs of [0, availableParallelism()]) {
    const s = await fuzz({ spec: SPEC, seconds, seed: 1, jobs, intervalMs: 1e9 });
    console.log(
      `fuzz ${seconds} s, ${jobs === 0 ? 'this thread' : `${jobs} worker threads`}: ${s.execs} executions, ${s.execsPerSecond}/s, ${s.execsPerCpuSecond}/CPU-s; coverage ${s.coverage} blocks, corpus ${s.corpus}, findings ${s.findings}`,
    );
  }
  console.log(
    `load average after: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}
