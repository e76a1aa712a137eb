/**
 * `dmabox appliance`: secure appliance images (appliance/README.md).
 *
 *   dmabox appliance build SPEC --out DIR [--lock FILE]   build a bootable, verified image of SPEC's policies
 *   dmabox appliance run DIR [--port P]                   boot it in the lab's QEMU machine, console on stdout
 *   dmabox appliance test DIR --psk FILE [--identity N]   check it from the host as a user would (check.ts)
 *   dmabox appliance compare A B                          two builds: the same bytes, or what differs
 *   dmabox appliance init                                 PID 1 inside an image (stage 1 switches root to it)
 *
 * `init` runs `doctor`'s checks and refuses to start drivers on a machine that cannot confine DMA
 * (unless the image's spec said allowUnconfinedDma, which it prints at every boot), then runs the
 * manager over /etc/dmabox's policies with --bind. When the manager stops, PID 1 exits, and the
 * kernel reboots or halts as the spec's onFatal put on the command line (panic=1 / panic=0).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MARKER } from '../appliance/build/stage1.js';
import { CliError } from './errors.js';

const USAGE = `usage: dmabox appliance build SPEC --out DIR [--lock FILE] [--test]
       dmabox appliance run DIR [--port P]
       dmabox appliance test DIR --psk FILE [--identity NAME] [--verbose]
       dmabox appliance compare A B
       dmabox appliance init        (PID 1 inside an appliance image; not for a host)
  build   a kernel, a stage-1 initramfs, a SquashFS root protected by dm-verity, the command line
          and manifest.json (every input pinned, every output hashed) in DIR
  --lock FILE   hold the build's inputs to FILE (written when absent); a changed input is refused
  --test        a test image: it also serves a test-only control (kill a sandbox's container) on
                port 10810, and says so at every boot; never ship one
  run     boot DIR in QEMU (the lab's machine: VT-d, an NVMe with a fresh 64 MiB disk, an e1000e on
          QEMU's user network) until Ctrl-C; the NBD port 10809 is forwarded to 127.0.0.1:P
  test    boot DIR and check it from the host: nbdinfo and nbdcopy over TLS through both sandboxed
          drivers, containers killed under the client (a --test image), a tampered root refused
  compare two builds' outputs: exit 0 when bit-identical, else what differs (diffoscope when installed)
`;

async function build(argv: string[]): Promise<number> {
  let spec: string | undefined;
  let out: string | undefined;
  let lock: string | undefined;
  let test = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--test') test = true;
    else if (a === '--out') out = argv[++i];
    else if (a === '--lock') lock = argv[++i];
    else if (a.startsWith('-')) throw new CliError('ERR_CLI_USAGE', `unknown option ${a}\n${USAGE}`);
    else if (spec === undefined) spec = a;
    else throw new CliError('ERR_CLI_USAGE', `one SPEC only (got ${spec} and ${a})\n${USAGE}`);
  }
  if (!spec || !out) throw new CliError('ERR_CLI_USAGE', `build needs SPEC and --out DIR\n${USAGE}`);
  const { buildAppliance } = await import('../appliance/build/build.js');
  const { labCacheDir, repoRoot } = await import('../appliance/lab/setup.js');
  const r = await buildAppliance({
    spec,
    out,
    checkout: repoRoot(),
    kernelCache: join(labCacheDir(), 'kernel'),
    test,
    ...(lock ? { lock } : {}),
    log: (m) => process.stdout.write(`appliance: ${m}\n`),
  });
  const o = r.manifest.outputs;
  const mb = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
  process.stdout.write(
    `built '${r.manifest.name}' in ${(r.ms / 1000).toFixed(1)} s: ${out}\n` +
      Object.entries(o)
        .map(([name, v]) => `  ${name.padEnd(10)} ${mb(v.bytes).padStart(9)}  sha256 ${v.sha256}\n`)
        .join('') +
      `  root hash ${r.manifest.verity.rootHash}\n` +
      `  inputs: ${r.manifest.inputs.debian.length} Debian packages, ${r.manifest.inputs.npm.length} npm packages, kernel ${r.manifest.inputs.kernel.package} ${r.manifest.inputs.kernel.version}; manifest.json, appliance.lock\n`,
  );
  return 0;
}

interface ApplianceConfig {
  name: string;
  onFatal: 'reboot' | 'halt';
  allowUnconfinedDma: boolean;
  testControl: boolean;
  policies: string[];
}

/**
 * The test-only control of a --test image: one line `kill SANDBOX` per connection kills that
 * sandbox's container (as a crash would), answered `killed SANDBOX` or `no sandbox SANDBOX`.
 * Only in images built with --test, which say so at every boot.
 */
async function serveTestControl(manager: import('../sandbox/manager/manager.js').Manager, port: number, say: (s: string) => void): Promise<void> {
  const net = await import('node:net');
  const server = net.createServer((sock) => {
    let line = '';
    sock.setTimeout(5000, () => sock.destroy());
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      line += d.toString('utf8');
      if (line.length > 256) return void sock.destroy();
      const nl = line.indexOf('\n');
      if (nl < 0) return;
      const m = /^kill ([A-Za-z0-9_.-]{1,64})$/.exec(line.slice(0, nl).trim());
      const s = m ? manager.sandboxes.find((x) => x.name === m[1]) : undefined;
      if (s) {
        say(`test control: killing ${s.name}'s container`);
        s.kill('test control');
      }
      sock.end(s ? `killed ${s.name}\n` : `no sandbox ${m?.[1] ?? '?'}\n`);
    });
  });
  server.listen(port, '0.0.0.0', () => say(`TEST IMAGE: the test-only control listens on port ${port}; never ship this image`));
}

/** PID 1 of an image: check the machine can confine DMA, then run the manager until it stops. */
async function init(): Promise<number> {
  const say = (s: string): void => {
    process.stdout.write(`${MARKER} ${s}\n`);
  };
  if (process.pid !== 1)
    throw new CliError('ERR_CLI_USAGE', `appliance init is PID 1 of an appliance image, not a command for a host (this is pid ${process.pid})`);
  const config = JSON.parse(readFileSync('/etc/dmabox/appliance.json', 'utf8')) as ApplianceConfig;
  say(`init '${config.name}': ${config.policies.length} policies, onFatal ${config.onFatal}`);
  const { diagnose } = await import('./doctor.js');
  const report = diagnose();
  const dma = report.checks.filter((c) => c.status === 'FAIL' && /iommu|vfio|group/i.test(c.id));
  for (const c of report.checks) if (c.status !== 'OK') say(`doctor ${c.status} ${c.id}: ${c.summary}`);
  if (dma.length > 0) {
    if (!config.allowUnconfinedDma) {
      say(`fatal: this machine cannot confine DMA (${dma.map((c) => c.id).join(', ')}); refusing to start drivers`);
      return 1;
    }
    say(
      `WARNING: DMA IS NOT CONFINED ON THIS MACHINE (${dma.map((c) => c.id).join(', ')}): the image allows it (allowUnconfinedDma: true); a driver can read and write all memory`,
    );
  }
  const up = await import('./up.js');
  const { TEST_CONTROL_PORT } = await import('../appliance/build/build.js');
  say('manager starting');
  const rc = await up.run([...config.policies, '--bind'], undefined, process, process.env, {
    started: (manager) => {
      if (config.testControl) void serveTestControl(manager, TEST_CONTROL_PORT, say);
    },
  });
  say(`fatal: the manager stopped (exit ${rc}); ${config.onFatal === 'reboot' ? 'rebooting' : 'halting'}`);
  return rc === 0 ? 1 : rc;
}

async function runImage(argv: string[]): Promise<number> {
  let dir: string | undefined;
  let port: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--port') {
      port = Number(argv[++i]);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CliError('ERR_CLI_USAGE', `--port needs a port number 1..65535\n${USAGE}`);
    } else if (a.startsWith('-')) throw new CliError('ERR_CLI_USAGE', `unknown option ${a}\n${USAGE}`);
    else dir = a;
  }
  if (!dir) throw new CliError('ERR_CLI_USAGE', `run needs the image folder\n${USAGE}`);
  const { bootAppliance } = await import('../appliance/build/boot.js');
  const booted = await bootAppliance({ dir, ...(port ? { hostPort: port } : {}), onLine: (l) => process.stdout.write(`${l}\n`) });
  process.stderr.write(`appliance: QEMU started; NBD (TLS) forwarded to 127.0.0.1:${booted.hostPort}; Ctrl-C stops it\n`);
  const stop = (): void => void booted.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const code = await booted.exited;
  return code === 0 ? 0 : 1;
}

async function testImage(argv: string[]): Promise<number> {
  let dir: string | undefined;
  let psk: string | undefined;
  let identity: string | undefined;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--psk') psk = argv[++i];
    else if (a === '--identity') identity = argv[++i];
    else if (a === '--verbose') verbose = true;
    else if (a.startsWith('-')) throw new CliError('ERR_CLI_USAGE', `unknown option ${a}\n${USAGE}`);
    else dir = a;
  }
  if (!dir || !psk) throw new CliError('ERR_CLI_USAGE', `test needs the image folder and --psk FILE\n${USAGE}`);
  const { checkAppliance } = await import('../appliance/build/check.js');
  const steps = await checkAppliance({
    dir,
    psk,
    ...(identity ? { identity } : {}),
    say: (l) => process.stdout.write(`${l}\n`),
    ...(verbose ? { onConsole: (l: string) => process.stderr.write(`  | ${l}\n`) } : {}),
  });
  const failed = steps.filter((s) => !s.ok).length;
  process.stdout.write(`appliance test: ${steps.length - failed} passed, ${failed} failed\n`);
  return failed === 0 ? 0 : 1;
}

async function compare(argv: string[]): Promise<number> {
  if (argv.length !== 2 || argv.some((a) => a.startsWith('-'))) throw new CliError('ERR_CLI_USAGE', `compare needs two image folders\n${USAGE}`);
  const { explainDifference } = await import('../appliance/build/build.js');
  const d = explainDifference(argv[0]!, argv[1]!);
  if (d.length === 0) {
    process.stdout.write(`${argv[0]} and ${argv[1]}: every output bit-identical\n`);
    return 0;
  }
  process.stdout.write(`${d.join('\n')}\n`);
  return 1;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'compare') return compare(rest);
  if (sub === 'test') return testImage(rest);
  if (sub === 'build') return build(rest);
  if (sub === 'run') return runImage(rest);
  if (sub === 'init') return init();
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(USAGE);
    return sub === undefined ? 2 : 0;
  }
  throw new CliError('ERR_CLI_USAGE', `unknown appliance command '${sub}'\n${USAGE}`);
}
