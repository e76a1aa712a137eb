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
 * or the first and the last), --no-results (do not append to bench/RESULTS.md).
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
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
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
  /** Start serving `name` on `sock`. */
  start(sock: string): Promise<Serving>;
}

/** How the driver waits for completions, in both driver cases (--interrupts=polling|msix). */
let interrupts: 'polling' | 'msix' = 'polling';

/** The sandboxed target's linkback.nbd.poll (--poll=500us; default: the policy's default). */
let pollWindow: string | undefined;

/** Inside the lab guest (--in-lab): QEMU's NVMe function through real VFIO instead of the simulator. */
let labBdf: string | undefined;

function policy(sock: string): Policy {
  return parsePolicies(
    `
version: 1
name: bench-nvme
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
    async start(sock) {
      const svc = await startService([policy(sock)], { controlPath: null }, () => undefined);
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

interface Measured {
  iops: number;
  read: number;
  write: number;
  /** CPU microseconds per request: this process (manager or in-process server), other server processes, device processes, fio. */
  cpu: { self: number; others: number; device: number; fio: number };
}

async function measure(t: Target, dir: string, seconds: number, fill: string): Promise<Measured> {
  const sock = join(dir, 'bench.sock');
  rmSync(sock, { force: true });
  const serving = await t.start(sock);
  try {
    const uri = `nbd+unix:///bench?socket=${sock}`;
    await exec('nbdcopy', [fill, uri], dir, 120_000);
    const pids = serving.pids();
    const others0 = pids.reduce((a, p) => a + procCpuUs(p), 0);
    const devicePids = serving.devicePids?.() ?? [];
    const device0 = devicePids.reduce((a, p) => a + procCpuUs(p), 0);
    const self0 = process.cpuUsage();
    const out = await exec(
      'fio',
      [
        '--name=linkback',
        '--ioengine=nbd',
        `--uri=${uri}`,
        '--rw=randrw',
        '--rwmixread=50',
        '--bs=4k',
        '--iodepth=16',
        '--size=64M',
        '--time_based',
        `--runtime=${seconds}`,
        '--verify_state_save=0',
        '--output-format=json',
      ],
      dir,
      (seconds + 60) * 1000,
    );
    const selfCpu = process.cpuUsage(self0);
    const others = pids.reduce((a, p) => a + procCpuUs(p), 0) - others0;
    const device = devicePids.reduce((a, p) => a + procCpuUs(p), 0) - device0;
    type Job = {
      error: number;
      job_runtime: number;
      usr_cpu: number;
      sys_cpu: number;
      read: { iops: number; total_ios: number };
      write: { iops: number; total_ios: number };
    };
    const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: Job[] }).jobs[0]!;
    if (job.error !== 0) throw new Error(`fio reported error ${job.error} against ${t.name}`);
    const ios = job.read.total_ios + job.write.total_ios;
    const fioUs = ((job.usr_cpu + job.sys_cpu) / 100) * job.job_runtime * 1000;
    return {
      iops: job.read.iops + job.write.iops,
      read: job.read.iops,
      write: job.write.iops,
      cpu: { self: serving.self ? (selfCpu.user + selfCpu.system) / ios : 0, others: others / ios, device: device / ios, fio: fioUs / ios },
    };
  } finally {
    await serving.stop();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
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
  try {
    for (let r = 0; r < repeat; r++) {
      for (const t of targets) {
        const m = await measure(t, dir, seconds, fill);
        runs.get(t.name)!.push(m);
        console.log(`  run ${r + 1}: ${t.name}: ${k(m.iops)} IOPS (read ${k(m.read)}, write ${k(m.write)}); CPU per request: ${cpuText(t, m.cpu)}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const med = new Map([...runs].map(([n, xs]) => [n, median(xs.map((x) => x.iops))]));
  const [sandboxed, inproc, , nbdkit] = allTargets.map((t) => med.get(t.name));
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
  if (sandboxed !== undefined && inproc !== undefined) {
    lines.push(
      `- sandboxed / in-process: ${(sandboxed / inproc).toFixed(3)} (container cost ${((1 - sandboxed / inproc) * 100).toFixed(1)} %; target: within 5 %)`,
    );
    const cs = medianCpu(runs.get(allTargets[0]!.name)!),
      ci = medianCpu(runs.get(allTargets[1]!.name)!);
    const sb = cs.self + cs.others + cs.device,
      ip = ci.self;
    lines.push(
      `- server CPU per request, sandboxed against in-process: ${us(sb)} against ${us(ip)} (the sandbox adds ${us(sb - ip)}, ${((sb / ip - 1) * 100).toFixed(0)} %)`,
    );
  }
  if (sandboxed !== undefined && nbdkit !== undefined) lines.push(`- sandboxed / nbdkit memory: ${(sandboxed / nbdkit).toFixed(3)} (target: at least 1)`);
  console.log(lines.join('\n'));
  if (!argv.includes('--no-results')) {
    const where = labBdf ? ` in the lab (QEMU TCG guest; QEMU's NVMe ${labBdf} through VFIO and VT-d)` : '';
    const section = `\n## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: linkback${where}\n${machineSummary()}\n\n${lines.join('\n')}\n`;
    // The guest sees the checkout read-only: it hands the section to the host side (runInLab).
    if (labBdf) console.log(`${RESULTS_BEGIN}\n${section}\n${RESULTS_END}`);
    else appendResults(section);
  }
}

const RESULTS_BEGIN = '--- bench/RESULTS.md section begins ---';
const RESULTS_END = '--- bench/RESULTS.md section ends ---';

function appendResults(section: string): void {
  const file = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './RESULTS.md' : '../../bench/RESULTS.md', import.meta.url));
  appendFileSync(file, section);
  console.log(`appended to ${file}`);
}
