/**
 * `npm run bench -- nvme`: the NVMe driver against the simulated controller in one process.
 * 4 KiB random reads and writes at queue depth 32 through the low-level, allocation-free I/O API
 * (one SQ doorbell per batch, completions reaped by phase tag, one CQ doorbell per batch), with
 * the model moving the data (copy) and without (a null data path), so the second figure is the
 * cost of the queues: driver plus the model's command handling. A CPU profile (node:inspector)
 * then splits the time between driver code, model code, the sim core (IOMMU, DMA engine, BAR
 * dispatch) and the rest. Options: --seconds=N (per run, default 2), --repeat=N (runs per case, the
 * median is reported with the spread, default 5), --qd=N (default 32),
 * --no-results (do not append to bench/RESULTS.md).
 */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { machineSummary } from './machine.js';
import { SimMachine } from '../sim/machine.js';
import { SimNvme } from '../sim/nvme/controller.js';
import { NvmeController } from '../drivers/nvme/controller.js';
import type { IoQueue } from '../drivers/nvme/ioqueue.js';

const ADDRESS = '0000:00:01.0';
const BLOCKS = 16384; // 64 MiB of 4 KiB blocks

interface Case {
  name: string;
  write: boolean;
  copy: boolean;
}

interface Result {
  name: string;
  /** Median over the repeats. */
  iops: number;
  min: number;
  max: number;
  usPerIo: number;
  ios: number;
  errors: number;
}

async function setup(copy: boolean): Promise<{ ctrl: NvmeController; model: SimNvme; close: () => Promise<void> }> {
  const machine = new SimMachine();
  const model = new SimNvme({ namespaces: [{ blocks: BLOCKS, blockSize: 4096 }], copyData: copy, maxIoQueues: 1 });
  machine.attach(model, { address: ADDRESS, workMode: 'sync' });
  const platform = machine.platform(ADDRESS);
  const ctrl = await NvmeController.open(platform, { queues: 1, queueEntries: 64, bufferBytes: 4096, log: () => undefined });
  return {
    ctrl,
    model,
    close: async () => {
      await ctrl.close();
      platform.close();
    },
  };
}

/** Run one case for `ms`: keep `qd` I/Os in flight, submit in batches, reap in batches. */
function drive(q: IoQueue, nsid: number, write: boolean, qd: number, ms: number): { ios: number; errors: number; elapsed: number } {
  let inFlight = 0;
  let ios = 0;
  let errors = 0;
  let x = 0x9e3779b9;
  const done = (_slot: number, status: number): void => {
    inFlight--;
    ios++;
    if (status !== 0) errors++;
  };
  const t0 = performance.now();
  const end = t0 + ms;
  let now = t0;
  let rounds = 0;
  while (now < end) {
    while (inFlight < qd) {
      const slot = q.acquire();
      if (slot < 0) break;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const lba = (x >>> 0) % BLOCKS;
      if (write) q.write(slot, nsid, lba, 1, 12, 0, done);
      else q.read(slot, nsid, lba, 1, 12, 0, done);
      inFlight++;
    }
    q.ring();
    q.poll();
    if ((++rounds & 63) === 0) now = performance.now();
  }
  // Drain.
  while (inFlight > 0) q.poll();
  return { ios, errors, elapsed: performance.now() - t0 };
}

async function runCase(c: Case, qd: number, ms: number, repeat: number): Promise<Result> {
  const { ctrl, close } = await setup(c.copy);
  const q = ctrl.ioQueues[0]!;
  const nsid = ctrl.namespaces[0]!.nsid;
  drive(q, nsid, c.write, qd, Math.min(300, ms / 4)); // warm-up (JIT)
  const runs: number[] = [];
  let ios = 0;
  let errors = 0;
  for (let i = 0; i < repeat; i++) {
    const r = drive(q, nsid, c.write, qd, ms);
    runs.push((r.ios / r.elapsed) * 1000);
    ios += r.ios;
    errors += r.errors;
  }
  await close();
  runs.sort((a, b) => a - b);
  const iops = runs[Math.floor(runs.length / 2)]!;
  return { name: c.name, iops, min: runs[0]!, max: runs.at(-1)!, usPerIo: 1e6 / iops, ios, errors };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  hitCount?: number;
}

/** Profile one case and split self time by where the code lives. */
async function profileCase(c: Case, qd: number, ms: number): Promise<{ share: Record<string, number>; top: { fn: string; where: string; pct: number }[] }> {
  const { ctrl, close } = await setup(c.copy);
  const q = ctrl.ioQueues[0]!;
  const nsid = ctrl.namespaces[0]!.nsid;
  drive(q, nsid, c.write, qd, 300);
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  drive(q, nsid, c.write, qd, ms);
  const { profile } = (await session.post('Profiler.stop')) as { profile: { nodes: ProfileNode[] } };
  session.disconnect();
  await close();
  const root = fileURLToPath(new URL('..', import.meta.url));
  const area = (url: string): string => {
    const p = url.startsWith('file:') ? fileURLToPath(url) : url;
    const rel = p.startsWith(root) ? p.slice(root.length) : p;
    if (/(^|\/)drivers\/nvme\//.test(rel)) return 'driver (drivers/nvme)';
    if (/(^|\/)sim\/nvme\//.test(rel)) return 'model (sim/nvme)';
    if (/(^|\/)sim\//.test(rel)) return 'sim core (IOMMU, DMA engine, BAR dispatch)';
    if (/(^|\/)bench\//.test(rel)) return 'benchmark loop';
    return rel === '' ? 'V8/native (GC, builtins)' : 'other';
  };
  const by: Record<string, number> = {};
  const fns = new Map<string, number>();
  let total = 0;
  for (const n of profile.nodes) {
    const h = n.hitCount ?? 0;
    if (h === 0 || n.callFrame.functionName === '(idle)' || n.callFrame.functionName === '(program)') continue;
    const a = area(n.callFrame.url);
    by[a] = (by[a] ?? 0) + h;
    const key = `${n.callFrame.functionName || '(anonymous)'}\t${a}`;
    fns.set(key, (fns.get(key) ?? 0) + h);
    total += h;
  }
  const share: Record<string, number> = {};
  for (const [k, v] of Object.entries(by)) share[k] = (100 * v) / total;
  const top = [...fns.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([k, v]) => ({ fn: k.split('\t')[0]!, where: k.split('\t')[1]!, pct: (100 * v) / total }));
  return { share, top };
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export async function run(argv: string[]): Promise<void> {
  const arg = (name: string, dflt: number): number => {
    const a = argv.find((x) => x.startsWith(`--${name}=`));
    return a ? Number(a.slice(name.length + 3)) : dflt;
  };
  const seconds = arg('seconds', 2);
  const qd = arg('qd', 32);
  const repeat = Math.max(1, arg('repeat', 5));
  const cases: Case[] = [
    { name: '4 KiB random read, no data copy', write: false, copy: false },
    { name: '4 KiB random write, no data copy', write: true, copy: false },
    { name: '4 KiB random read, with data copy', write: false, copy: true },
    { name: '4 KiB random write, with data copy', write: true, copy: true },
  ];
  const results: Result[] = [];
  for (const c of cases) {
    const r = await runCase(c, qd, seconds * 1000, repeat);
    results.push(r);
    console.log(
      `${r.name.padEnd(36)} QD${qd}: ${fmt(r.iops).padStart(10)} IOPS median of ${repeat} (${fmt(r.min)} .. ${fmt(r.max)})  ${r.usPerIo.toFixed(3)} us/IO  (${r.ios} I/Os, ${r.errors} errors)`,
    );
  }
  const prof = await profileCase(cases[0]!, qd, Math.max(1000, seconds * 500));
  console.log(`\nwhere the time goes (${cases[0]!.name}, CPU profile, self time):`);
  for (const [k, v] of Object.entries(prof.share).sort((a, b) => b[1] - a[1])) console.log(`  ${v.toFixed(1).padStart(5)} %  ${k}`);
  const driverShare = (prof.share['driver (drivers/nvme)'] ?? 0) / 100;
  const driverUs = driverShare * results[0]!.usPerIo;
  console.log(
    `driver's own cost: ${(driverShare * 100).toFixed(1)} % of ${results[0]!.usPerIo.toFixed(3)} us = ${driverUs.toFixed(3)} us per I/O (${fmt(1 / (driverUs / 1e6))} IOPS per core if the device cost nothing)`,
  );
  console.log('hottest functions:');
  for (const t of prof.top) console.log(`  ${t.pct.toFixed(1).padStart(5)} %  ${t.fn}  [${t.where}]`);

  if (!argv.includes('--no-results')) {
    // Sources live in bench/; the compiled module runs from dist/bench/: write beside the sources.
    const here = fileURLToPath(new URL('.', import.meta.url));
    const file = /\/dist\/bench\/?$/.test(here)
      ? fileURLToPath(new URL('../../bench/RESULTS.md', import.meta.url))
      : fileURLToPath(new URL('./RESULTS.md', import.meta.url));
    if (!existsSync(file)) writeFileSync(file, '# Benchmark results\n\nAppended by `npm run bench`; each section names its machine.\n');
    const lines = [
      '',
      `## nvme, ${new Date().toISOString()}`,
      '',
      machineSummary(),
      `(nproc ${(await import('node:os')).availableParallelism()}, ${process.version}; driver and simulated controller in one process, one thread, model in sync mode, QD${qd}, ${seconds} s per case)`,
      '',
      'No data copy: the model fetches, checks and completes each command (SQ fetch and CQ writes through the simulated IOMMU) but walks no PRPs and moves no data. With data copy: PRPs walked through the IOMMU and 4 KiB moved between the memory store and the window (a write copies twice: window to scratch, scratch to store).',
      '',
      `Load average when it ended: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(', ')} (other work shares this machine: read the min..max spread).`,
      '',
      `| case | IOPS (median of ${repeat} x ${seconds} s) | min .. max | us per I/O (median) |`,
      '|---|---|---|---|',
      ...results.map((r) => `| ${r.name} | ${fmt(r.iops)} | ${fmt(r.min)} .. ${fmt(r.max)} | ${r.usPerIo.toFixed(3)} |`),
      '',
      `Self time by area (${cases[0]!.name}): ` +
        Object.entries(prof.share)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${v.toFixed(1)} %`)
          .join('; ') +
        '.',
      '',
      `Driver's own cost: ${(driverShare * 100).toFixed(1)} % of the median ${results[0]!.usPerIo.toFixed(3)} us = ${driverUs.toFixed(3)} us per I/O, i.e. about ${fmt(1 / (driverUs / 1e6))} IOPS per core for the driver alone.`,
      '',
      'Hottest functions: ' + prof.top.map((t) => `${t.fn} [${t.where}] ${t.pct.toFixed(1)} %`).join('; ') + '.',
    ];
    appendFileSync(file, lines.join('\n') + '\n');
    console.log(`\nappended to ${file}`);
  }
}
