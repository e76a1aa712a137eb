/**
 * `dmabox lab`: the QEMU lab (appliance/lab/README.md).
 *
 *   dmabox lab setup                      fetch the kernel and build the initramfs (cached)
 *   dmabox lab run [--nvme SIZE]... [--e1000e]... [--timeout S] [--trace-dmar] [--device-errors] [--verbose] [--log FILE] -- CMD ARGS...
 *
 * `run` boots the lab with the devices asked for, runs CMD in the guest (as root, in this directory,
 * the host's / read-only), and exits with CMD's exit status. CMD's output (the console lines while
 * it runs) goes to stdout; the whole console, boot included, goes to the log (and to stderr with
 * --verbose); with --trace-dmar the DMAR faults QEMU recorded are listed at the end.
 */
import { CliError } from './errors.js';

export interface RunArgs {
  nvme: { sizeMiB: number }[];
  e1000e: number;
  deviceErrors: boolean;
  timeoutMs: number;
  dmarTrace: boolean;
  verbose: boolean;
  logFile?: string;
  command: string[];
}

const USAGE = `usage: dmabox lab setup
       dmabox lab run [--nvme SIZE]... [--e1000e]... [--timeout S] [--trace-dmar] [--device-errors] [--verbose] [--log FILE] -- CMD [ARGS...]
  --nvme SIZE     add an NVMe controller with a fresh raw disk of SIZE (64M, 1G, or MiB as a number); repeatable
  --e1000e        add an e1000e NIC on QEMU's user network (slirp); repeatable
  --timeout S     kill the lab after S seconds (default 600)
  --trace-dmar    record QEMU's DMAR fault trace and list the faults
  --device-errors add the device-error extras: an NVMe over blkdebug (EIO on fixed sectors) at 00:1b.0, an
                  e1000e behind a PCIe root port at 01:00.0, and the monitor relay for AER injection
  --verbose       copy the whole console (kernel boot included) to stderr; it is always in the log
  --log FILE      where the console log goes (default .cache/lab/logs/lab-TIME.log)
`;

/** `64M`, `1G`, `512` (MiB) -> MiB. */
export function parseSize(text: string): number {
  const m = /^(\d+)([MG]i?B?)?$/i.exec(text.trim());
  if (!m) throw new CliError('ERR_CLI_USAGE', `--nvme size '${text}' is not a size`, { fix: 'write it as 64M, 1G, or a number of MiB' });
  const n = Number(m[1]) * (m[2] && /^g/i.test(m[2]) ? 1024 : 1);
  if (n < 1) throw new CliError('ERR_CLI_USAGE', `--nvme size '${text}' must be at least 1 MiB`);
  return n;
}

/** Parse `run`'s arguments. Everything after `--` is the guest command, untouched. */
export function parseRunArgs(argv: readonly string[]): RunArgs {
  const out: RunArgs = { nvme: [], e1000e: 0, deviceErrors: false, timeoutMs: 600_000, dmarTrace: false, verbose: false, command: [] };
  const bad = (msg: string) => new CliError('ERR_CLI_USAGE', `${msg}\n${USAGE}`);
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw bad(`${a} needs a value`);
      return v;
    };
    if (a === '--') {
      i++;
      break;
    } else if (a === '--nvme') out.nvme.push({ sizeMiB: parseSize(value()) });
    else if (a.startsWith('--nvme=')) out.nvme.push({ sizeMiB: parseSize(a.slice(7)) });
    else if (a === '--e1000e') out.e1000e++;
    else if (a === '--trace-dmar') out.dmarTrace = true;
    else if (a === '--device-errors') out.deviceErrors = true;
    else if (a === '--verbose') out.verbose = true;
    else if (a === '--log') out.logFile = value();
    else if (a === '--timeout') {
      const v = value();
      const s = Number(v);
      if (!Number.isFinite(s) || s <= 0) throw bad(`--timeout '${v}' is not a positive number of seconds`);
      out.timeoutMs = s * 1000;
    } else throw bad(`unknown option '${a}' (the guest command goes after --)`);
  }
  out.command = argv.slice(i);
  if (out.command.length === 0) throw bad('no command: put the guest command after --');
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '-h' || sub === '--help') {
    process.stdout.write(USAGE);
    return sub ? 0 : 2;
  }
  if (sub === 'setup') {
    const { setupLab } = await import('../appliance/lab/setup.js');
    const image = await setupLab({ log: (m) => process.stderr.write(`lab setup: ${m}\n`) });
    process.stdout.write(
      `kernel ${image.kernel.kver}: ${image.bootKernel}\ninitramfs: ${image.initrd}\nmodules: ${image.modules.join(' ')}\n` +
        `${image.cached ? 'cached' : 'built'} in ${(image.ms / 1000).toFixed(1)} s\n`,
    );
    return 0;
  }
  if (sub !== 'run') {
    process.stderr.write(`dmabox lab: unknown subcommand '${sub}'\n${USAGE}`);
    return 2;
  }
  const args = parseRunArgs(rest);
  const { launchLab } = await import('../appliance/lab/launch.js');
  let running = false;
  const r = await launchLab({
    nvme: args.nvme,
    e1000e: Array.from({ length: args.e1000e }, () => ({ net: 'slirp' as const })),
    command: args.command,
    timeoutMs: args.timeoutMs,
    dmarTrace: args.dmarTrace,
    deviceErrors: args.deviceErrors,
    echo: args.verbose,
    onLine: (line) => {
      if (line.startsWith('dmabox-lab: done')) running = false;
      if (running && !args.verbose) process.stdout.write(`${line}\n`);
      if (line.startsWith('dmabox-lab: run')) running = true;
      if (line.startsWith('dmabox-lab: error') && !args.verbose) process.stderr.write(`${line}\n`);
    },
    ...(args.logFile ? { logFile: args.logFile } : {}),
  });
  const t = r.timings;
  process.stderr.write(`lab: ${r.devices.map((d) => `${d.kind}${d.index} ${d.bdf} group ${d.group ?? '?'}`).join(', ') || 'no devices'}\n`);
  process.stderr.write(
    `lab: exit status ${r.status}; boot ${((t.bootMs ?? 0) / 1000).toFixed(1)} s, command ${((t.commandMs ?? 0) / 1000).toFixed(1)} s, total ${(t.totalMs / 1000).toFixed(1)} s; log ${r.logFile}\n`,
  );
  if (args.dmarTrace) {
    process.stderr.write(`lab: ${r.dmarFaults.length} DMAR fault(s) traced${r.dmarTraceFile ? ` (${r.dmarTraceFile})` : ''}\n`);
    const { groupDmarFaults } = await import('../appliance/lab/dmar.js');
    const runs = groupDmarFaults(r.dmarFaults);
    for (const g of runs.slice(0, 20)) {
      const where = g.first === g.last ? `0x${g.first.toString(16)}` : `0x${g.first.toString(16)}..0x${g.last.toString(16)} (${g.count} faults)`;
      process.stderr.write(`  ${g.bdf} ${g.write ? 'write' : 'read'} ${where}: reason ${g.reason}, ${g.reasonText}\n`);
    }
    if (runs.length > 20) process.stderr.write(`  ... ${runs.length - 20} more runs\n`);
  }
  return r.status;
}
