/**
 * `dmabox up POLICY... [--control PATH] [--bind] [--keep-privileges]`: start a sandbox per policy and supervise them in the
 * foreground, one line per event on stdout, and start the linkback each policy names (NBD, TAP).
 * SIGINT or SIGTERM shuts down in order: linkback clients answered and disconnected, then each container
 * is asked to stop (bounded, then SIGKILL), its device quarantined (bus mastering off, FLR), its
 * windows unmapped, and with --bind each real device given back to its driver. Exit status 0
 * after an orderly stop, 1 when a policy is invalid. As root, once the sandboxes and linkbacks
 * are up the manager leaves root for its own uid, with no capability, and a small privileged spawner starts and kills containers (sandbox/manager/privilege.ts) unless
 * --keep-privileges.
 */
import { loadPoliciesOrReport } from './load-policies.js';
import type { Linkback } from '../linkback/registry.js';
import type { Manager as ManagerType } from '../sandbox/manager/manager.js';
import { startLinkbacks } from '../linkback/service.js';
import { Manager } from '../sandbox/manager/manager.js';
import type { SandboxEvent } from '../sandbox/manager/supervisor.js';

const USAGE = `usage: dmabox up POLICY... [--control PATH] [--bind] [--keep-privileges]\n  --bind  bind real devices to vfio-pci at start and give them back to their drivers at stop\n          (as if every policy said device.bind: true)\n  --keep-privileges  as root, stay root after set-up (default: the manager switches to its\n          own uid with no capability and a spawner starts containers; sandbox/README.md)\n`;

export interface Io {
  out(s: string): void;
  err(s: string): void;
}
const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

export function formatEvent(e: SandboxEvent, unconfined: boolean): string {
  const t = new Date(e.time).toISOString().slice(11, 23);
  return `${t} ${e.sandbox}${unconfined ? ' UNCONFINED' : ''} ${e.kind}${e.level && e.level !== 'info' ? ` [${e.level}]` : ''}: ${e.text}\n`;
}

/**
 * Whether a manager started by this command drops privileges after set-up: when root, unless
 * --keep-privileges, and only when the command runs the process (its signals are `process`'s, as
 * from cli/main.ts). The drop is irreversible and covers the whole process, so a caller embedding
 * `run()` with its own signal source (the in-process CLI tests) keeps its privileges.
 */
export function dropByDefault(keepPrivileges: boolean, signals: NodeJS.EventEmitter): boolean {
  return process.getuid?.() === 0 && !keepPrivileges && signals === process;
}

/** After set-up: the privilege drop `manager` was asked for, one line saying what it kept, or why it failed. */
export function endSetup(manager: ManagerType, io: Io, linkbacks: readonly Linkback[] = []): void {
  try {
    // The linkbacks' unix sockets: the spawner removes them once the manager cannot.
    const sockets = linkbacks.flatMap((l) => l.addresses.filter((a) => a.startsWith('unix:')).map((a) => a.slice('unix:'.length)));
    const r = manager.endSetup(sockets);
    if (r)
      io.out(
        `privileges: the manager is uid ${r.uid} gid ${r.gid} with no capability on any of its ${r.threads} threads (no_new_privs on all); the spawner (pid ${manager.spawner?.pid}) starts and kills containers and device processes\n`,
      );
  } catch (e) {
    io.err(`privileges: NOT DROPPED, the manager may still be root: ${(e as Error).message}\n`);
  }
}

export async function run(argv: string[], io: Io = stdio, signals: NodeJS.EventEmitter = process): Promise<number> {
  const files: string[] = [];
  let control: string | undefined;
  let bind = false;
  let keepPrivileges = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--control') {
      control = argv[++i];
      if (!control) {
        io.err(`dmabox up: --control needs a path\n${USAGE}`);
        return 2;
      }
    } else if (a === '--bind') {
      bind = true;
    } else if (a === '--keep-privileges') {
      keepPrivileges = true;
    } else if (a.startsWith('-')) {
      io.err(`dmabox up: unknown option ${a}\n${USAGE}`);
      return 2;
    } else files.push(a);
  }
  if (files.length === 0) {
    io.err(`dmabox up: name at least one policy file\n${USAGE}`);
    return 2;
  }
  const result = loadPoliciesOrReport(files, io, 'nothing was started');
  if (!result) return 1;
  const policies = result.policies.map((lp) => lp.policy);
  const unconfined = new Set(policies.filter((p) => p.unconfined).map((p) => p.name));
  const manager = new Manager(policies, {
    ...(control ? { controlPath: control } : {}),
    supervisor: { bind },
    dropPrivileges: dropByDefault(keepPrivileges, signals),
  });
  manager.on('event', (e: SandboxEvent) => io.out(formatEvent(e, unconfined.has(e.sandbox))));
  if (process.getuid?.() !== 0) io.out(`not root: containers run as the invoking user (uid ${process.getuid?.()}), with no identity or cgroup of their own\n`);
  let linkbacks: Linkback[] = [];
  let exitCode = 0;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (sig: string): void => {
      io.out(`${sig}: stopping ${linkbacks.length} linkback(s), then ${manager.sandboxes.length} sandbox(es)\n`);
      signals.off('SIGINT', onSignal);
      signals.off('SIGTERM', onSignal);
      // Clients first (answered and disconnected), then containers and devices.
      Promise.allSettled(linkbacks.map((l) => l.close()))
        .then(() => manager.stop())
        .then(resolve, resolve);
    };
    signals.on('SIGINT', onSignal);
    signals.on('SIGTERM', onSignal);
    // The spawner died: nothing can start or kill containers any more; stop, and exit with an error.
    manager.once('fatal', (why: string) => {
      io.err(`FATAL: ${why}; stopping\n`);
      exitCode = 1;
      onSignal('spawner gone');
    });
  });
  await manager.start();
  io.out(
    `up: ${manager.sandboxes.map((s) => `${s.name}${unconfined.has(s.name) ? ' UNCONFINED' : ''} ${s.state}`).join(', ')}; control socket ${manager.controlPath}\n`,
  );
  const started = await startLinkbacks(manager, (sandbox, line, level) =>
    io.out(`${sandbox} linkback${level && level !== 'info' ? ` [${level}]` : ''}: ${line}\n`),
  );
  linkbacks = started.linkbacks;
  for (const l of linkbacks) io.out(`${l.sandbox}: ${l.kind} linkback at ${l.addresses.join(', ')}\n`);
  for (const u of started.unavailable) io.err(`${u.policy}: ${u.what} ${u.kind === 'unsupported' ? 'NOT AVAILABLE YET' : 'FAILED'}: ${u.reason}\n`);
  endSetup(manager, io, linkbacks);
  await stopped;
  io.out('stopped: containers gone, devices quarantined, windows unmapped\n');
  return exitCode;
}
