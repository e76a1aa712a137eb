#!/usr/bin/env node
/**
 * The `dmabox` command. Each subcommand lives in its own module under cli/ and exports
 * `run(argv: string[]): Promise<number>` (the exit status); this file only dispatches, so
 * subcommands load only what they use. An error with a code that reaches it is printed as
 * `dmabox CMD: CODE: message` (the message ends with its fix); the exit status is 2 for a usage
 * error (`ERR_CLI_USAGE`, as for the usage errors subcommands print themselves) and 1 otherwise.
 */
import { DmaboxError } from '../common/errors.js';
import { CliError } from './errors.js';

interface Command {
  summary: string;
  load: () => Promise<{ run(argv: string[]): Promise<number> }>;
}

const commands: Record<string, Command> = {
  // one line per subcommand: name: { summary, load: () => import('./name.js') },
  doctor: { summary: 'check IOMMU, interrupt remapping, VFIO, groups, memlock and huge pages', load: () => import('./doctor.js') },
  policy: { summary: 'check policies, show them resolved, print their JSON Schema', load: () => import('./policy.js') },
  up: {
    summary: 'run sandboxes from policies (files or folders) in the foreground, supervised; SIGINT/SIGTERM stop them in order, SIGHUP reloads',
    load: () => import('./up.js'),
  },
  status: { summary: 'what the running sandboxes are doing (containers, uid, restarts, faults, windows, I/O) [--json]', load: () => import('./status.js') },
  demo: {
    summary: 'npm start: the demo policies (or those named) up on the simulator, each linkback served (NBD...) until Ctrl-C',
    load: () => import('./demo.js'),
  },
  devices: { summary: 'PCI functions: ids, driver, IOMMU group and whether VFIO can use it [--json] [--all]', load: () => import('./devices.js') },
  bind: { summary: 'hand PCI functions to vfio-pci (remembers nothing: prints how to give each back)', load: () => import('./bind.js') },
  unbind: { summary: 'take PCI functions off vfio-pci [--driver NAME] and let the kernel re-probe them', load: () => import('./unbind.js') },
  campaign: { summary: 'fault-injection campaigns: run SPEC, replay DIR --trial N, merge DIR..., report DIR, fuzz SPEC', load: () => import('./campaign.js') },
  lab: { summary: 'the QEMU lab: set it up, boot it and run a command on real VFIO', load: () => import('./lab.js') },
  appliance: { summary: 'secure appliance images: build a verified, bootable image that runs policies', load: () => import('./appliance.js') },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: dmabox <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`dmabox: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    return await (await cmd.load()).run(rest);
  } catch (e) {
    if (e instanceof DmaboxError || (e instanceof Error && typeof (e as { code?: unknown }).code === 'string')) {
      process.stderr.write(`dmabox ${name}: ${(e as Error & { code: string }).code}: ${e.message}\n`);
      return e instanceof CliError && e.code === 'ERR_CLI_USAGE' ? 2 : 1;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // Not one of dmabox's errors: a bug. Say so with the stack, and fail.
    process.stderr.write(`dmabox: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 70; // EX_SOFTWARE
  },
);
