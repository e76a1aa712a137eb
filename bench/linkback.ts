/**
 * `npm run bench -- linkback`: the block linkback end to end, with fio's nbd engine (4 KiB random
 * read/write 50/50, queue depth 16, one job, time-based) over a unix socket, against:
 *   1. the sandboxed simulated NVMe: the NVMe driver in its container, the simulated controller in
 *      its device process, the NBD server in this (the manager's) process (linkback/service.ts, as
 *      `npm start` runs it);
 *   2. the same driver and controller in-process, no container (linkback/nvme-block.ts);
 *   3. our NBD server over a memory device (no driver, no device model): what the server costs;
 *   4. `nbdkit memory` (Debian nbdkit), what a user would otherwise run.
 * Each export is 128 MiB; fio works on its first 64 MiB, filled with random data first (nbdcopy)
 * so every target reads written blocks. Targets run one after another, interleaved per repeat.
 * Options: --seconds=N (per run, default 8), --repeat=N (default 1; the median is reported),
 * --interrupts=polling|msix (how both driver cases wait for completions; default polling, as npm start),
 * --poll=DURATION (the sandboxed policy's linkback.nbd.poll, hybrid polling: 0ms turns it off),
 * --targets=sandboxed,in-process,memory,nbdkit (which to run, default all; the ratios need the first two,
 * or the first and the last), --no-results (do not append to bench/RESULTS.md), --no-qd1 (skip the QD1 runs),
 * --qd1-seconds=N (each QD1 run, default 3), --json (the summary, bench/linkback-summary.ts, as one
 * JSON object on the last line), --profile=DIR (after the measured runs, one more run per target
 * with profilers on: see `profileRun`).
 *
 * QD1: after each target's QD16 run, fio randread then randwrite at queue depth 1 (4 KiB, same
 * export) give the mean completion latency of one request with nothing else in flight; the
 * sandboxed minus the in-process figure is the latency the sandbox adds.
 *
 * --lab: run it inside the QEMU lab on real VFIO (sandboxed and in-process on QEMU's NVMe; the
 * memory and nbdkit targets as references in the same guest); see `runInLab`.
 *
 * Besides IOPS, each run reports CPU microseconds per request of every process involved (this
 * process: the manager or the in-process server, from process.cpuUsage(); the container, the device
 * process or nbdkit, from /proc/PID/stat; fio, from its own usr_cpu/sys_cpu). On a small machine the client and the
 * server share the cores, so throughput follows the sum, and CPU per request is far steadier
 * from run to run than IOPS (bench/RESULTS.md).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  constants as fsConstants,
  existsSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  lstatSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NvmeController } from '../drivers/nvme/controller.js';
import { MemoryBlockDevice } from '../linkback/memory-block-device.js';
import { NbdServer } from '../linkback/nbd/server.js';
import { NvmeBlockDevice } from '../linkback/in-process/nvme.js';
import { startService } from '../linkback/service.js';
import { VfioPlatform } from '../platform/vfio.js';
import { parsePolicies } from '../policies/index.js';
import { formatDuration } from '../policies/units.js';
import type { Policy } from '../policies/types.js';
import { SimMachine } from '../sim/machine.js';
import { SimNvme } from '../sim/nvme/controller.js';
import { profileText, summarizeProfile, type CpuProfile } from './cpu-profile.js';
import { median, summarizeLinkback, targetLines, type Qd1, type Run, type TargetKey } from './linkback-summary.js';
import { machineSummary } from './machine.js';

const MiB = 1 << 20;

/** A started target: how to stop it, and the processes that serve it (for CPU accounting). */
interface Serving {
  stop(): Promise<void>;
  /** Server processes other than this one: the driver container, nbdkit. */
  pids(): number[];
  /** The simulated device's processes (the sandboxed target on the simulator). */
  devicePids?(): number[];
  /** Whether this process serves (the manager, or the in-process server). */
  self: boolean;
}

interface Target {
  name: string;
  /** For --targets=. */
  key: 'sandboxed' | 'in-process' | 'memory' | 'nbdkit';
  /** Start serving `name` on `sock` (`profiling`: the profile run, see `profileRun`). */
  start(sock: string, profiling?: boolean): Promise<Serving>;
}

/** How the driver waits for completions, in both driver cases (--interrupts=polling|msix). */
let interrupts: 'polling' | 'msix' = 'polling';

/** The sandboxed target's linkback.nbd.poll (--poll=500us; default: the policy's default). */
let pollWindow: string | undefined;

/** Inside the lab guest (--in-lab): QEMU's NVMe function through real VFIO instead of the simulator. */
let labBdf: string | undefined;

function policy(sock: string, unconfined = false): Policy {
  return parsePolicies(
    `
version: 1
name: bench-nvme${unconfined ? '\nunconfined: true' : ''}
device: ${labBdf ? `{ pci: "${labBdf}" }` : '{ sim: nvme, capacity: 128MiB }'}
driver: { name: nvme, interrupts: ${interrupts} }
windows: [ { size: 1MiB, label: queues }, { size: 8MiB, label: io-buffers } ]
linkback: { nbd: { socket: ${sock}, export: bench${pollWindow ? `, poll: ${pollWindow}` : ''} } }
`,
    'bench.yaml',
  ).policies[0]!.policy;
}

const allTargets: Target[] = [
  {
    name: 'sandboxed NVMe (container)',
    key: 'sandboxed',
    async start(sock, profiling = false) {
      const svc = await startService([policy(sock, profiling)], { controlPath: null }, () => undefined);
      if (svc.linkbacks.length !== 1) throw new Error(`the sandbox did not come up: ${JSON.stringify(svc.unavailable)}`);
      return {
        stop: () => svc.stop(),
        pids: () => svc.manager.sandboxes.flatMap((s) => (s.pid ? [s.pid] : [])),
        devicePids: () => svc.manager.sandboxes.flatMap((s) => (s.sim?.process?.alive && s.sim.process.pid ? [s.sim.process.pid] : [])),
        self: true,
      };
    },
  },
  {
    name: 'same driver in-process',
    key: 'in-process',
    async start(sock) {
      const p = policy(sock);
      if (labBdf) {
        // The same driver on the same function through VFIO, in this process.
        const platform = VfioPlatform.open(labBdf);
        const ctrl = await NvmeController.open(platform, {
          queues: p.driver.queues,
          queueEntries: p.driver.depth,
          interrupts: p.driver.interrupts === 'msix' ? 'msix' : 'poll',
          log: () => undefined,
        });
        const server = new NbdServer({ exports: [{ name: 'bench', device: new NvmeBlockDevice(ctrl, ctrl.namespaces[0]!) }] });
        await server.listenUnix(sock);
        return {
          stop: async () => {
            await server.close();
            await ctrl.close();
            platform.close();
          },
          pids: () => [],
          self: true,
        };
      }
      const d = p.device as Extract<Policy['device'], { sim: 'nvme' }>;
      const machine = new SimMachine();
      machine.attach(
        new SimNvme({
          serial: d.serial,
          namespaces: [{ blocks: d.capacity / d.blockSize, blockSize: d.blockSize }],
          maxQueueEntries: d.mqes,
          maxIoQueues: d.maxQueues,
        }),
        { address: '0000:00:01.0' },
      );
      const platform = machine.platform('0000:00:01.0');
      const ctrl = await NvmeController.open(platform, {
        queues: p.driver.queues,
        queueEntries: p.driver.depth,
        interrupts: p.driver.interrupts === 'msix' ? 'msix' : 'poll',
        log: () => undefined,
      });
      const server = new NbdServer({ exports: [{ name: 'bench', device: new NvmeBlockDevice(ctrl, ctrl.namespaces[0]!) }] });
      await server.listenUnix(sock);
      return {
        stop: async () => {
          await server.close();
          await ctrl.close();
          platform.close();
        },
        pids: () => [],
        self: true,
      };
    },
  },
  {
    // Our NBD server with no driver or device behind it: what the server itself costs.
    name: 'dmabox NBD, memory device',
    key: 'memory',
    async start(sock) {
      const server = new NbdServer({ exports: [{ name: 'bench', device: new MemoryBlockDevice({ size: 128 * MiB }) }] });
      await server.listenUnix(sock);
      return { stop: () => server.close(), pids: () => [], self: true };
    },
  },
  {
    name: 'nbdkit memory',
    key: 'nbdkit',
    async start(sock) {
      const child: ChildProcess = spawn('nbdkit', ['-f', '-U', sock, '-e', 'bench', 'memory', '128M'], { stdio: ['ignore', 'ignore', 'inherit'] });
      const end = Date.now() + 10_000;
      while (!existsSync(sock)) {
        if (Date.now() > end || child.exitCode !== null) {
          child.kill('SIGKILL');
          throw new Error('nbdkit did not create its socket within 10 s');
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      return {
        stop: () =>
          new Promise<void>((r) => {
            child.once('exit', () => r());
            child.kill('SIGTERM');
          }),
        pids: () => (child.pid ? [child.pid] : []),
        self: false,
      };
    },
  },
];

function exec(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, timeout: timeoutMs, maxBuffer: 64 * MiB, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** CPU time (user + system) of a process in microseconds, from /proc (0 when it is gone). */
function procCpuUs(pid: number): number {
  try {
    // Fields after the command name (which may hold spaces): utime is field 14, stime 15.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) / CLOCK_TICKS) * 1e6;
  } catch {
    return 0;
  }
}
/** USER_HZ: 100 on every Linux architecture Node runs on (sysconf(_SC_CLK_TCK)). */
const CLOCK_TICKS = 100;

interface Measured extends Run {
  read: number;
  write: number;
}

type FioJob = {
  error: number;
  job_runtime: number;
  usr_cpu: number;
  sys_cpu: number;
  read: { iops: number; total_ios: number; lat_ns: { mean: number } };
  write: { iops: number; total_ios: number; lat_ns: { mean: number } };
};

/** One fio job against `uri` (4 KiB, nbd engine, time-based), its JSON job. */
async function fio(uri: string, dir: string, rw: 'randrw' | 'randread' | 'randwrite', depth: number, seconds: number, what: string): Promise<FioJob> {
  const out = await exec(
    'fio',
    [
      '--name=linkback',
      '--ioengine=nbd',
      `--uri=${uri}`,
      `--rw=${rw}`,
      ...(rw === 'randrw' ? ['--rwmixread=50'] : []),
      '--bs=4k',
      `--iodepth=${depth}`,
      '--size=64M',
      '--time_based',
      `--runtime=${seconds}`,
      '--verify_state_save=0',
      '--output-format=json',
    ],
    dir,
    (seconds + 60) * 1000,
  );
  const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: FioJob[] }).jobs[0]!;
  if (job.error !== 0) throw new Error(`fio reported error ${job.error} against ${what}`);
  return job;
}

/** Options of a measured run. */
interface RunOptions {
  seconds: number;
  /** Seconds of each QD1 run; 0: none. */
  qd1Seconds: number;
  fill: string;
}

async function measure(t: Target, dir: string, o: RunOptions): Promise<Measured> {
  const sock = join(dir, 'bench.sock');
  rmSync(sock, { force: true });
  const serving = await t.start(sock);
  try {
    const uri = `nbd+unix:///bench?socket=${sock}`;
    await exec('nbdcopy', [o.fill, uri], dir, 120_000);
    const pids = serving.pids();
    const others0 = pids.reduce((a, p) => a + procCpuUs(p), 0);
    const devicePids = serving.devicePids?.() ?? [];
    const device0 = devicePids.reduce((a, p) => a + procCpuUs(p), 0);
    const self0 = process.cpuUsage();
    const job = await fio(uri, dir, 'randrw', 16, o.seconds, t.name);
    const selfCpu = process.cpuUsage(self0);
    const others = pids.reduce((a, p) => a + procCpuUs(p), 0) - others0;
    const device = devicePids.reduce((a, p) => a + procCpuUs(p), 0) - device0;
    const ios = job.read.total_ios + job.write.total_ios;
    const fioUs = ((job.usr_cpu + job.sys_cpu) / 100) * job.job_runtime * 1000;
    let qd1: Qd1 | undefined;
    if (o.qd1Seconds > 0) {
      const r = await fio(uri, dir, 'randread', 1, o.qd1Seconds, `${t.name} (QD1 read)`);
      const w = await fio(uri, dir, 'randwrite', 1, o.qd1Seconds, `${t.name} (QD1 write)`);
      qd1 = { randreadUs: r.read.lat_ns.mean / 1000, randwriteUs: w.write.lat_ns.mean / 1000 };
    }
    return {
      iops: job.read.iops + job.write.iops,
      read: job.read.iops,
      write: job.write.iops,
      cpu: { self: serving.self ? (selfCpu.user + selfCpu.system) / ios : 0, others: others / ios, device: device / ios, fio: fioUs / ios },
      ...(qd1 ? { qd1 } : {}),
    };
  } finally {
    await serving.stop();
  }
}
/**
 * `--profile=DIR`: one more run of `t` (QD16, `seconds`) with profilers on, so every figure can be
 * explained by where the CPU went:
 * - this process (the manager, the in-process server, our NBD server over memory): the inspector's
 *   sampling profiler, written as DIR/KEY-self.cpuprofile (open it in Chrome DevTools or any
 *   .cpuprofile viewer) and summarized (bench/cpu-profile.ts);
 * - every process serving the target (this one, the container, the device process, nbdkit):
 *   `perf record` when perf is installed, the report per process in DIR/KEY-perf.txt, JavaScript
 *   frames named through the /tmp/perf-PID.map files Node writes with --perf-basic-prof (handed to
 *   the children through NODE_OPTIONS). A confined container has no /tmp (spawner/host.ts), so the
 *   sandboxed target's profile run uses `unconfined: true`: its own uid and seccomp filter as
 *   always, but no namespaces. A V8 --cpu-prof cannot be written by a confined process either (the
 *   device process's filter refuses open), which is why perf is used for the children.
 * Profiles cost CPU themselves: the figures are those of the measured runs, not of this one.
 */
async function profileRun(t: Target, dir: string, seconds: number, fill: string, out: string): Promise<string[]> {
  const sock = join(dir, 'bench.sock');
  rmSync(sock, { force: true });
  const startedAt = Date.now() - 1000;
  const nodeOptions = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = `${nodeOptions ?? ''} --perf-basic-prof`.trim();
  let serving: Serving;
  try {
    serving = await t.start(sock, true);
  } finally {
    if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = nodeOptions;
  }
  const lines: string[] = [];
  const session = new Session();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
  const perfData = join(out, `${t.key}-perf.data`);
  let perf: ChildProcess | undefined;
  const pids: { pid: number; what: string }[] = [];
  try {
    const uri = `nbd+unix:///bench?socket=${sock}`;
    await exec('nbdcopy', [fill, uri], dir, 120_000);
    pids.push(
      ...(serving.self ? [{ pid: process.pid, what: t.key === 'sandboxed' ? 'manager' : 'server' }] : []),
      ...serving.pids().map((pid) => ({ pid, what: t.key === 'nbdkit' ? 'nbdkit' : 'container' })),
      ...(serving.devicePids?.() ?? []).map((pid) => ({ pid, what: 'device process' })),
    );
    if (hasPerf()) {
      perf = spawn('perf', ['record', '-F', '999', '-o', perfData, '-p', pids.map((p) => p.pid).join(',')], { stdio: ['ignore', 'ignore', 'pipe'] });
      await new Promise((r) => setTimeout(r, 300)); // perf attaches
    }
    if (serving.self) {
      session.connect();
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: 200 });
      await post('Profiler.start');
    }
    const job = await fio(uri, dir, 'randrw', 16, seconds, `${t.name} (profile run)`);
    const ios = job.read.total_ios + job.write.total_ios;
    lines.push(`${t.name}: profile run ${k(job.read.iops + job.write.iops)} IOPS, ${k(ios)} requests`);
    if (serving.self) {
      const { profile } = (await post('Profiler.stop')) as { profile: CpuProfile };
      const file = join(out, `${t.key}-self.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      lines.push(`  ${pids[0]!.what} (this process, ${file}): ${profileText(summarizeProfile(profile, 12), ios).join('\n  ')}`);
    }
    if (perf) {
      await stopPerf(perf);
      perf = undefined;
      // perf reads a JIT map only when its owner is perf's user: the children's are theirs.
      for (const p of pids) ownMap(p.pid);
      const report = join(out, `${t.key}-perf.txt`);
      let text = '';
      for (const p of pids) {
        // Each process's own symbols, self time, above 0.5 % of its samples.
        const r = await exec(
          'perf',
          [
            'report',
            '-i',
            perfData,
            '--stdio',
            '--no-children',
            '--sort',
            'dso,sym',
            '--pid',
            String(p.pid),
            '--percentage',
            'relative',
            '--percent-limit',
            '0.5',
          ],
          dir,
          120_000,
        ).catch((e: Error) => `perf report failed: ${e.message}\n`);
        text += `==== ${p.what} (pid ${p.pid})\n${r}\n`;
        const top = r
          .split('\n')
          .filter((l) => /^\s+[0-9.]+%/.test(l))
          .slice(0, 8)
          .map((l) => `    ${l.trim().replace(/\s+/g, ' ')}`);
        lines.push(`  perf, ${p.what}:`, ...top);
      }
      writeFileSync(report, text);
      lines.push(`  perf reports: ${report}`);
    } else if (!hasPerf()) lines.push('  perf is not installed (Debian: linux-perf): no profile of the other processes');
  } finally {
    if (perf) await stopPerf(perf);
    session.disconnect();
    await serving.stop();
    // The JIT maps of the processes this run started (the launch chain's too), once they are gone.
    for (const f of readdirSync('/tmp')) {
      const pid = Number(/^perf-([0-9]+)\.map$/.exec(f)?.[1]);
      try {
        if (pid && pid !== process.pid && lstatSync(join('/tmp', f)).mtimeMs >= startedAt && !existsSync(`/proc/${pid}`))
          rmSync(join('/tmp', f), { force: true });
      } catch {
        // gone meanwhile
      }
    }
  }
  return lines;
}

/**
 * Make /tmp/perf-PID.map this process's own (perf ignores a map its user does not own). The file
 * was written by a container's uid in a shared /tmp, so it is read without following a link, only
 * when it is a regular file of at most 64 MiB, and the copy is created exclusively (O_EXCL: a link
 * put there meanwhile fails it) and readable by this user only.
 */
function ownMap(pid: number): void {
  const f = `/tmp/perf-${pid}.map`;
  if (pid === process.pid) return;
  let text: Buffer;
  try {
    const fd = openSync(f, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.size > 64 * MiB) return;
      text = readFileSync(fd);
    } finally {
      closeSync(fd);
    }
    rmSync(f);
    writeFileSync(f, text, { flag: 'wx', mode: 0o600 });
  } catch {
    // absent, or left as it is: its JavaScript frames stay unnamed in the report
  }
}

let perfFound: boolean | undefined;
function hasPerf(): boolean {
  perfFound ??= (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => existsSync(join(d, 'perf')));
  return perfFound;
}

function stopPerf(perf: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (perf.exitCode !== null || perf.signalCode !== null) return resolve();
    const timer = setTimeout(() => perf.kill('SIGKILL'), 30_000);
    perf.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    perf.kill('SIGINT');
  });
}

const medianCpu = (ms: Measured[]): Measured['cpu'] => ({
  self: median(ms.map((m) => m.cpu.self)),
  others: median(ms.map((m) => m.cpu.others)),
  device: median(ms.map((m) => m.cpu.device)),
  fio: median(ms.map((m) => m.cpu.fio)),
});
const us = (n: number): string => `${n.toFixed(1)} us`;
/** CPU microseconds per request, named for the target: throughput on a 2-core machine is bound by their sum. */
function cpuText(t: Target, c: Measured['cpu']): string {
  const server =
    t.key === 'sandboxed'
      ? `manager ${us(c.self)} + container ${us(c.others)}${c.device > 0 ? ` + device process ${us(c.device)}` : ''}`
      : t.key === 'nbdkit'
        ? `nbdkit ${us(c.others)}`
        : `server ${us(c.self)}`;
  return `${server}, fio ${us(c.fio)}, total ${us(c.self + c.others + c.device + c.fio)}`;
}
const k = (n: number): string => `${Math.round(n).toLocaleString('en-US')}`;

/**
 * `--lab`: the same benchmark inside the QEMU lab (appliance/lab), where the driver runs on QEMU's
 * NVMe through real VFIO behind the emulated VT-d: a request crosses processes twice there (ring
 * post and completion), not four times as on the simulator. The guest is TCG-emulated (CPU-bound
 * JavaScript 4 to 13 times slower, LAB-NOTES.md), so its IOPS are the guest's, and what compares
 * is sandboxed against in-process on the same function.
 */
async function runInLab(argv: string[]): Promise<void> {
  const root = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '..' : '../..', import.meta.url));
  const cli = join(root, 'dist', 'cli', 'main.js');
  const bench = join(root, 'dist', 'bench', 'main.js');
  if (!existsSync(cli) || !existsSync(bench)) throw new Error('the lab runs the built project: run `npm run build` first (npm run bench does)');
  const pass = argv.filter((a) => a !== '--lab');
  let out = '';
  const go = (args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cli, ...args], { stdio: ['inherit', 'pipe', 'inherit'], cwd: root });
      child.stdout!.on('data', (d: Buffer) => {
        process.stdout.write(d);
        out += d.toString();
      });
      child.on('error', reject);
      child.on('exit', (code, sig) => (code === 0 ? resolve() : reject(new Error(`dmabox ${args.slice(0, 2).join(' ')} exited with ${code ?? sig}`))));
    });
  await go(['lab', 'setup']);
  await go(['lab', 'run', '--nvme', '128M', '--timeout', '1500', '--', process.execPath, bench, 'linkback', '--in-lab', ...pass]);
  const a = out.indexOf(RESULTS_BEGIN),
    b = out.indexOf(RESULTS_END);
  if (a >= 0 && b > a)
    appendResults(
      pass.includes('--json'),
      out
        .slice(a + RESULTS_BEGIN.length, b)
        .replace(/\r/g, '')
        .replace(/^\n+/, '\n')
        .replace(/\n+$/, '\n'),
    );
  else if (!pass.includes('--no-results')) throw new Error('the lab run printed no results section');
}

export async function run(argv: string[]): Promise<void> {
  if (argv.includes('--lab')) return runInLab(argv);
  if (argv.includes('--in-lab')) {
    if (process.env.DMABOX_LAB !== '1') throw new Error('--in-lab runs inside the lab guest only: use --lab on the host');
    labBdf = (process.env.DMABOX_LAB_NVME ?? '').split(',').filter(Boolean)[0];
    if (!labBdf) throw new Error('the lab was started without an NVMe function (DMABOX_LAB_NVME is empty)');
  }
  const opt = (name: string, dflt: number): number => {
    const a = argv.find((x) => x.startsWith(`--${name}=`));
    const v = a ? Number(a.slice(name.length + 3)) : dflt;
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer, got ${a}`);
    return v;
  };
  const seconds = opt('seconds', 8),
    repeat = opt('repeat', 1);
  const qd1Seconds = argv.includes('--no-qd1') ? 0 : opt('qd1-seconds', 3);
  const json = argv.includes('--json');
  const profileArg = argv.find((x) => x.startsWith('--profile'));
  if (profileArg !== undefined && !profileArg.startsWith('--profile='))
    throw new Error(`--profile: expected --profile=DIR (where the profiles go), got ${profileArg}`);
  const profileDir = profileArg?.slice(10);
  if (profileDir === '') throw new Error('--profile=: expected a folder, e.g. --profile=/tmp/linkback-prof');
  pollWindow = argv.find((x) => x.startsWith('--poll='))?.slice(7);
  if (pollWindow !== undefined && !/^[0-9]+ ?(us|ms)$/.test(pollWindow)) throw new Error(`--poll: expected a duration like 500us or 0ms, got ${pollWindow}`);
  const irq = argv.find((x) => x.startsWith('--interrupts='))?.slice(13) ?? 'polling';
  if (irq !== 'polling' && irq !== 'msix') throw new Error(`--interrupts: expected polling or msix, got ${irq}`);
  interrupts = irq;
  const keys = (argv.find((x) => x.startsWith('--targets='))?.slice(10) ?? 'sandboxed,in-process,memory,nbdkit').split(',');
  for (const key of keys) {
    if (!allTargets.some((t) => t.key === key)) throw new Error(`--targets: unknown target '${key}'; known: ${allTargets.map((t) => t.key).join(', ')}`);
  }
  const targets = allTargets.filter((t) => keys.includes(t.key));
  for (const tool of ['fio', 'nbdcopy', 'nbdkit']) {
    try {
      await exec('sh', ['-c', `command -v ${tool}`], tmpdir(), 5000);
    } catch {
      throw new Error(`${tool} is not installed: run scripts/setup-host.sh (Debian: fio, libnbd-bin, nbdkit)`);
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-bench-linkback-'));
  const fill = join(dir, 'fill.bin');
  writeFileSync(fill, randomBytes(64 * MiB));
  const runs = new Map<string, Measured[]>(targets.map((t) => [t.name, []]));
  const profileLines: string[] = [];
  try {
    for (let r = 0; r < repeat; r++) {
      for (const t of targets) {
        const m = await measure(t, dir, { seconds, qd1Seconds, fill });
        runs.get(t.name)!.push(m);
        console.log(
          `  run ${r + 1}: ${t.name}: ${k(m.iops)} IOPS (read ${k(m.read)}, write ${k(m.write)}); CPU per request: ${cpuText(t, m.cpu)}${m.qd1 ? `; QD1 ${qd1Text(m.qd1)}` : ''}`,
        );
      }
    }
    if (profileDir !== undefined) {
      mkdirSync(profileDir, { recursive: true });
      for (const t of targets) profileLines.push(...(await profileRun(t, dir, seconds, fill, profileDir)));
      console.log(`profiles (one run per target, not the measured figures):\n${profileLines.join('\n')}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const med = new Map([...runs].map(([n, xs]) => [n, median(xs.map((x) => x.iops))]));
  const load = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const pollShown = formatDuration((policy('/unused.sock').linkback as { nbd: { poll: number } }).nbd.poll);
  const lines = [
    `fio ${(await exec('fio', ['--version'], tmpdir(), 5000)).trim()} --ioengine=nbd, 4 KiB randrw 50/50, queue depth 16, one job, driver ${interrupts}, manager poll window ${pollShown}, ${seconds} s per run, ${repeat} run(s) per target${repeat > 1 ? ' (median)' : ''}, unix socket, 64 MiB of a 128 MiB export prefilled;`,
    `nproc ${availableParallelism()}, load average at the end ${load} (other work on the machine inflates these figures)`,
    ...targets.map(
      (t) =>
        `- ${t.name}: ${k(med.get(t.name)!)} IOPS${
          repeat > 1
            ? ` (runs: ${runs
                .get(t.name)!
                .map((x) => k(x.iops))
                .join(', ')})`
            : ''
        }; CPU per request (median): ${cpuText(t, medianCpu(runs.get(t.name)!))}`,
    ),
  ];
  const summary = summarizeLinkback(Object.fromEntries(targets.map((t) => [summaryKey(t), runs.get(t.name)!])));
  if (summary.ratioSandboxedInProcess !== null) lines.push(`- sandboxed / in-process IOPS: ${summary.ratioSandboxedInProcess}`);
  if (summary.addedServerCpuUsPerRequest !== null) {
    lines.push(
      `- server CPU per request, sandboxed against in-process: ${us(summary.sandboxed!.cpuUsPerRequest)} against ${us(summary.inProcess!.cpuUsPerRequest)} (the sandbox adds ${us(summary.addedServerCpuUsPerRequest)})`,
    );
  }
  if (qd1Seconds > 0) {
    lines.push(
      `- QD1 (fio randread, then randwrite, 4 KiB, ${qd1Seconds} s each; mean latency, median of the runs): ${targets.map((t) => `${t.key} ${qd1Text(summary[summaryKey(t)]!.qd1!)}`).join('; ')}`,
    );
  }
  lines.push(...targetLines(summary));
  console.log(lines.join('\n'));
  if (!argv.includes('--no-results')) {
    const where = labBdf ? ` in the lab (QEMU TCG guest; QEMU's NVMe ${labBdf} through VFIO and VT-d)` : '';
    const section = `\n## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: linkback${where}\n${machineSummary()}\n\n${lines.join('\n')}\n`;
    // The guest sees the checkout read-only: it hands the section to the host side (runInLab).
    if (labBdf) console.log(`${RESULTS_BEGIN}\n${section}\n${RESULTS_END}`);
    else appendResults(false, section);
  }
  if (json) {
    const extra = { loadAverage: loadavg(), seconds, repeat, qd1Seconds, interrupts, ...(profileDir !== undefined ? { profileDir } : {}) };
    console.log(JSON.stringify({ ...summary, ...extra }));
  }
}

/** The summary's name of a target (`in-process` is `inProcess` in JSON). */
const summaryKey = (t: Target): TargetKey => (t.key === 'in-process' ? 'inProcess' : t.key);
const qd1Text = (q: Qd1): string => `read ${q.randreadUs.toFixed(1)} us, write ${q.randwriteUs.toFixed(1)} us`;

const RESULTS_BEGIN = '--- bench/RESULTS.md section begins ---';
const RESULTS_END = '--- bench/RESULTS.md section ends ---';

/** Append a section to bench/RESULTS.md; `quiet` (--json in the lab): say nothing, the guest's JSON line stays last. */
function appendResults(quiet: boolean, section: string): void {
  const file = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './RESULTS.md' : '../../bench/RESULTS.md', import.meta.url));
  appendFileSync(file, section);
  if (!quiet) console.log(`appended to ${file}`);
}
