/**
 * `npm run bench -- restart`: how long a block sandbox on the simulator is away when its driver
 * container dies under load. The sandboxed simulated NVMe is served over NBD as `npm start` serves
 * it (linkback/service.ts, in this process); fio's nbd engine writes 4 KiB blocks at random at
 * queue depth 16 and verifies every block it wrote (crc32c, `--verify_backlog`, fatal on the first
 * mismatch) while this process kills the driver container (SIGKILL, the supervisor's own kill)
 * `--interval` after its successor has completed a request and, with spares, once both new spares
 * wait for their fds (the steady case: the wait past the interval is reported). A restart is timed from the kill to the
 * first client request the successor completed (replayed requests come first), and split into the
 * steps between (restart-summary.ts: death detection, the old device process's quarantine, the
 * backoff and launch, the device process's start, the container up to confinement, the driver up
 * to READY, READY to the first completion).
 *
 * Options: --kills=N (default 20), --interval=MS between a restart and the next kill (default 300),
 * --backoff=DURATION (the policy's restart.backoff, initial and max; default 1ms: the policy's
 * default of 100ms is a deliberate wait the bench would only add), --json (the summary as one JSON
 * object, printed last), --no-results (do not append to bench/RESULTS.md).
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startService } from '../linkback/service.js';
import { parsePolicies } from '../policies/index.js';
import type { Policy } from '../policies/types.js';
import type { Supervisor, SandboxEvent } from '../sandbox/manager/supervisor.js';
import { machineSummary } from './machine.js';
import { SPARE_SLOTS } from '../sandbox/abi/handover.js';
import { percentile, summarize, type KillTimes, type RestartSummary } from './restart-summary.js';

function policy(sock: string, backoff: string, spare: boolean): Policy {
  return parsePolicies(
    `
version: 1
name: bench-restart
device: { sim: nvme, capacity: 128MiB }
driver: { name: nvme, interrupts: polling }
windows: [ { size: 1MiB, label: queues }, { size: 8MiB, label: io-buffers } ]
restart: { maxRestarts: 1000, window: 1s, backoff: { initial: ${backoff}, max: ${backoff} }, spare: ${spare} }
linkback: { nbd: { socket: ${sock}, export: bench } }
`,
    'bench-restart.yaml',
  ).policies[0]!.policy;
}

/** fio writing and verifying at random over NBD until killed; resolves with its JSON report's job. */
function startFio(uri: string, dir: string, seconds: number): { done: Promise<{ errors: number; ios: number; verified: number; text: string }>; stop(): void } {
  const child = spawn(
    'fio',
    [
      '--name=restart',
      '--ioengine=nbd',
      `--uri=${uri}`,
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=16',
      '--size=32M',
      '--verify=crc32c',
      '--verify_backlog=512',
      '--verify_fatal=1',
      '--time_based',
      `--runtime=${seconds}`,
      '--verify_state_save=0',
      '--output-format=json',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<{ errors: number; ios: number; verified: number; text: string }>((resolve) => {
    child.on('close', () => {
      type Job = { error: number; total_err?: number; write: { total_ios: number }; read: { total_ios: number } };
      try {
        const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: Job[] }).jobs[0]!;
        // Stopped by SIGINT, fio exits 128 after its report: the report's error and error count decide.
        const errors = (job.error !== 0 ? 1 : 0) + (job.total_err ?? 0);
        resolve({ errors, ios: job.write.total_ios, verified: job.read.total_ios, text: err.trim() });
      } catch {
        resolve({ errors: 1, ios: 0, verified: 0, text: `fio ended without a report: ${err.trim()}` });
      }
    });
  });
  return { done, stop: () => child.kill('SIGINT') };
}

/** One kill of `s`'s container, timed step by step until its successor completes a request (or `timeoutMs`). */
function killOnce(s: Supervisor, timeoutMs: number): Promise<KillTimes> {
  return new Promise((resolve) => {
    const t: KillTimes = {};
    const t0 = performance.now();
    const at = (): number => performance.now() - t0;
    let waiting: NodeJS.Immediate | undefined;
    const finish = (): void => {
      clearTimeout(limit);
      if (waiting) clearImmediate(waiting);
      s.off('event', onEvent);
      resolve(t);
    };
    const limit = setTimeout(finish, timeoutMs);
    const onEvent = (e: SandboxEvent): void => {
      if (e.kind === 'exit' && t.exit === undefined) t.exit = at();
      else if (e.kind === 'quarantine' && t.exit !== undefined && t.quarantined === undefined) {
        // Asked now (after the exit event): settled() resolves once the old device process answered and is gone.
        void s.sim?.settled().then(() => (t.quarantined ??= at()));
      } else if (e.kind === 'device' && t.exit !== undefined && t.deviceLaunched === undefined) {
        t.deviceLaunched = at();
        // The event comes from inside the new DeviceProcess's constructor: the device holds it one turn later.
        setImmediate(
          () =>
            void s.sim?.process?.whenReady().then((ok) => {
              if (ok) t.deviceReady ??= at();
            }),
        );
      } else if (e.kind === 'spawn' && t.exit !== undefined) t.launched ??= at();
      else if (e.kind === 'log' && t.launched !== undefined && e.text.startsWith('confined')) t.confined ??= at();
      else if (e.kind === 'log' && process.env.DMABOX_BENCH_MARKS) console.log(`    ${at().toFixed(1)} ${e.text.slice(0, 100)}`);
      else if (e.kind === 'ready' && t.exit !== undefined) {
        t.ready = at();
        // The first completion after READY: looked for once a turn (the client completes requests in this loop).
        const base = s.block.completed;
        const look = (): void => {
          if (s.block.completed > base) {
            t.firstCompletion = at();
            waiting = undefined;
            finish();
          } else waiting = setImmediate(look);
        };
        look();
      } else if (e.kind === 'failed') finish();
    };
    s.on('event', onEvent);
    s.kill('bench: killed under load');
  });
}

/** Open fds of a process (0 when it is gone). */
function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/**
 * Whether the sandbox's spares wait for their fds, within `ms`: a spare closes its placeholder
 * slots just before it blocks in the handover (sandbox/abi/handover.ts), so its fd count drops
 * below SPARE_SLOTS then.
 */
async function sparesWaiting(s: Supervisor, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const sp = s.status().spares as { container: number | null; deviceProcess: number | null } | null;
    const parked = (pid: number | null | undefined): boolean => pid !== null && pid !== undefined && fdCount(pid) > 0 && fdCount(pid) < SPARE_SLOTS;
    if (sp && parked(sp.container) && parked(sp.deviceProcess)) return true;
    await sleep(5);
  }
  return false;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface Measured {
  summary: RestartSummary;
  fioIos: number;
  /** Blocks fio read back and verified. */
  fioVerified: number;
  fioText: string;
  /** This process's (the manager's) CPU over the kills, ms. */
  managerCpuMs: number;
  /** Restarts a spare container took over. */
  takeovers: number;
  /** How long the kills waited, past the interval, for both spares to wait for their fds (p50, ms; NaN cold). */
  spareWaitP50Ms: number;
}

/** One service, `kills` kills under fio; spares on or off. */
async function measure(spares: boolean, kills: number, interval: number, backoff: string, quiet: boolean): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-bench-restart-'));
  const sock = join(dir, 'bench.sock');
  const svc = await startService([policy(sock, backoff, spares)], { controlPath: null }, () => undefined);
  try {
    if (svc.linkbacks.length !== 1) throw new Error(`the sandbox did not come up: ${JSON.stringify(svc.unavailable)}`);
    const s = svc.manager.sandboxes[0]!;
    // Long enough for every kill at the worst restart seen so far; stopped early when the kills are done.
    const fio = startFio(`nbd+unix:///bench?socket=${sock}`, dir, Math.ceil((kills * (interval + 2000)) / 1000) + 5);
    const times: KillTimes[] = [];
    await sleep(Math.max(1000, interval)); // fio connected and writing; a spare launched
    const cpu0 = process.cpuUsage();
    const parkMs: number[] = [];
    for (let i = 0; i < kills && s.state === 'running'; i++) {
      // With spares: the kill waits until both are waiting for their fds (the steady case; a crash
      // that comes while the spares still start takes over a spare still starting).
      if (spares) {
        const t = performance.now();
        if (await sparesWaiting(s, 10_000)) parkMs.push(performance.now() - t);
      }
      const k = await killOnce(s, 10_000);
      times.push(k);
      if (!quiet) {
        const shown = JSON.stringify(k, (_, v: unknown) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v));
        console.log(
          `  ${spares ? 'spare' : 'cold'} kill ${i + 1}: ${k.firstCompletion === undefined ? 'no completion' : `${k.firstCompletion.toFixed(1)} ms`} ${shown}`,
        );
      }
      await sleep(interval);
    }
    const cpu = process.cpuUsage(cpu0);
    fio.stop();
    const f = await fio.done;
    return {
      summary: summarize(times, f.errors),
      fioIos: f.ios,
      fioVerified: f.verified,
      fioText: f.text,
      managerCpuMs: (cpu.user + cpu.system) / 1000,
      takeovers: s.spareTakeovers,
      spareWaitP50Ms: Math.round(percentile(parkMs, 50)),
    };
  } finally {
    await svc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const MODES = { spare: true, cold: false } as const;

export async function run(argv: string[]): Promise<void> {
  const opt = (name: string, dflt: number): number => {
    const a = argv.find((x) => x.startsWith(`--${name}=`));
    const v = a ? Number(a.slice(name.length + 3)) : dflt;
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer, got ${a}`);
    return v;
  };
  const kills = opt('kills', 20),
    interval = opt('interval', 300);
  const backoff = argv.find((x) => x.startsWith('--backoff='))?.slice(10) ?? '1ms';
  if (!/^[0-9]+ ?(ms|s)$/.test(backoff)) throw new Error(`--backoff: expected a duration like 1ms or 100ms, got ${backoff}`);
  const modes = (argv.find((x) => x.startsWith('--modes='))?.slice(8) ?? 'spare,cold').split(',') as (keyof typeof MODES)[];
  for (const m of modes) if (!(m in MODES)) throw new Error(`--modes: unknown mode '${m}'; known: ${Object.keys(MODES).join(', ')}`);
  const json = argv.includes('--json');
  const results = new Map<string, Measured>();
  for (const m of modes) results.set(m, await measure(MODES[m], kills, interval, backoff, json));
  const load = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const lines = [
    `sandboxed simulated NVMe over NBD, fio randwrite 4 KiB QD16 with crc32c verify; SIGKILL of the driver container ${interval} ms after its successor served, ${kills} kill(s) per mode, restart backoff ${backoff};`,
    `nproc ${availableParallelism()}, load average at the end ${load} (other work on the machine inflates these figures)`,
  ];
  for (const [m, r] of results) {
    const x = r.summary;
    const ph = Object.entries(x.phases)
      .map(([n, p]) => `${n} ${p.p50Ms}/${p.p99Ms}`)
      .join(', ');
    lines.push(
      `- ${m === 'spare' ? 'with spares' : 'cold (no spares)'}: kill to the first request completed by the successor p50 ${x.restartP50Ms} ms, p99 ${x.restartP99Ms} ms, max ${x.restartMaxMs} ms over ${x.kills} kill(s) (${x.unfinished} unfinished${m === 'spare' ? `, ${r.takeovers} taken over by a spare; each kill waited ${r.spareWaitP50Ms} ms (p50) past the interval for both spares to wait` : ''}); client errors ${x.clientErrors} (fio ${r.fioIos} writes, ${r.fioVerified} read back and verified); manager CPU ${r.managerCpuMs.toFixed(0)} ms`,
      `  phases p50/p99 ms: ${ph}${x.clientErrors && r.fioText ? `; fio: ${r.fioText.split('\n').slice(-2).join(' | ')}` : ''}`,
      `  slowest, ms after the kill: ${x.slowest
        .map(
          (k) =>
            `kill ${k.kill} (${Object.entries(k.steps)
              .map(([n, v]) => `${n} ${v}`)
              .join(', ')})`,
        )
        .join('; ')}`,
    );
  }
  lines.push('- target: p50 <= 50 ms, p99 <= 100 ms');
  console.log(lines.join('\n'));
  if (!argv.includes('--no-results')) {
    const file = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './RESULTS.md' : '../../bench/RESULTS.md', import.meta.url));
    appendFileSync(file, `\n## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: restart\n${machineSummary()}\n\n${lines.join('\n')}\n`);
    if (!json) console.log(`appended to ${file}`);
  }
  if (json) {
    const first = results.get(modes[0]!)!;
    const byMode = Object.fromEntries(
      [...results].map(([m, r]) => [m, { ...r.summary, takeovers: r.takeovers, spareWaitP50Ms: r.spareWaitP50Ms, managerCpuMs: r.managerCpuMs }]),
    );
    console.log(JSON.stringify({ ...first.summary, mode: modes[0], modes: byMode, loadAverage: loadavg(), backoff, intervalMs: interval }));
  }
}
