/**
 * `dmabox demo [POLICY...] [--socket PATH] [--control PATH] [--keep-privileges]` (what `npm start`
 * runs): bring up the demo policy (policies/examples/demo.yaml: the simulator, no IOMMU and no root needed), or the
 * policies named, through the Manager, start the linkback each names (linkback/service.ts), print
 * where they are and how to use them, and serve until SIGINT or SIGTERM. Then, in order: NBD
 * clients answered and disconnected, linkbacks closed, containers stopped, devices quarantined and
 * released, sockets removed. The line starting `ready:` says everything that can serve is serving.
 *
 * `--socket PATH` moves the one NBD unix socket of the policies to PATH (tests, a second demo).
 * What cannot run (a device the sandbox has no container for yet, a linkback kind not built yet, a
 * sandbox that failed) is printed as NOT AVAILABLE YET or FAILED with the reason; the rest serves.
 * As root the manager leaves root for its own uid (a privileged spawner starts containers) once everything is up
 * (sandbox/manager/privilege.ts), unless --keep-privileges.
 * Exit status: 0 after an orderly stop; 1 when no linkback could be started; 2 for bad arguments.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startService, type Service } from '../linkback/service.js';
import { CliError } from './errors.js';
import { loadPoliciesOrReport } from './load-policies.js';
import type { NbdLinkbackOptions, Policy } from '../policies/types.js';
import type { SandboxEvent } from '../sandbox/manager/supervisor.js';
import { dropByDefault, endSetup, formatEvent } from './up.js';

const USAGE = 'usage: dmabox demo [POLICY...] [--socket PATH] [--control PATH] [--keep-privileges]\n';

export interface Io {
  out(s: string): void;
  err(s: string): void;
}
const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

const here = dirname(fileURLToPath(import.meta.url));

/** policies/examples/demo.yaml from the sources (cli/) or the build (dist/cli/). */
export function demoPolicyPath(): string {
  for (const p of [join(here, '../policies/examples/demo.yaml'), join(here, '../../policies/examples/demo.yaml')]) if (existsSync(p)) return resolve(p);
  throw new CliError('ERR_CLI_DEMO_POLICY', `policies/examples/demo.yaml is not next to ${here}, and no policy was named`, {
    fix: 'run from a dmabox checkout (npm start), or name the policies: dmabox demo POLICY...',
  });
}

/** How to run this CLI again (for the status line): `node /abs/dist/cli/main.js` or `dmabox`. */
function self(): string {
  const main = process.argv[1];
  return main && /main\.[jt]s$/.test(main) ? `node ${resolve(main)}` : 'dmabox';
}

function withSocket(policies: Policy[], socket: string): Policy[] | string {
  const nbd = policies.filter((p) => p.linkback && 'nbd' in p.linkback && 'socket' in p.linkback.nbd);
  if (nbd.length !== 1) return `--socket needs exactly one policy with an NBD unix socket linkback; these have ${nbd.length}`;
  return policies.map((p) => (p === nbd[0] ? { ...p, linkback: { nbd: { ...(p.linkback as { nbd: NbdLinkbackOptions }).nbd, socket } } } : p));
}

export async function run(argv: string[], io: Io = stdio, signals: NodeJS.EventEmitter = process): Promise<number> {
  const files: string[] = [];
  let control: string | undefined;
  let socket: string | undefined;
  let keepPrivileges = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--control' || a === '--socket') {
      const v = argv[++i];
      if (!v || !v.startsWith('/')) {
        io.err(`dmabox demo: ${a} needs an absolute path\n${USAGE}`);
        return 2;
      }
      if (a === '--control') control = v;
      else socket = v;
    } else if (a === '--keep-privileges') keepPrivileges = true;
    else if (a === '-h' || a === '--help') {
      io.out(USAGE);
      return 0;
    } else if (a.startsWith('-')) {
      io.err(`dmabox demo: unknown option ${a}\n${USAGE}`);
      return 2;
    } else files.push(a);
  }
  const result = loadPoliciesOrReport(files.length ? files : [demoPolicyPath()], io, 'nothing was started');
  if (!result) return 1;
  let policies = result.policies.map((lp) => lp.policy);
  if (socket) {
    const r = withSocket(policies, socket);
    if (typeof r === 'string') {
      io.err(`dmabox demo: ${r}\n`);
      return 2;
    }
    policies = r;
  }
  const unconfined = new Set(policies.filter((p) => p.unconfined).map((p) => p.name));
  const uid = process.getuid?.();
  io.out(
    uid === 0
      ? 'root: each sandbox runs as an identity of its own (61184-65519, or the uid its policy pins)\n'
      : `not root: containers run as the invoking user (uid ${uid}), with no identity or cgroup of their own; on the simulator nothing else needs root\n`,
  );

  // Signals that arrive while starting are honoured once the start is done.
  let signalled: string | undefined;
  let wake: (() => void) | undefined;
  const onSignal = (sig: string): void => {
    signalled ??= sig;
    wake?.();
  };
  signals.on('SIGINT', onSignal);
  signals.on('SIGTERM', onSignal);
  const log = (sandbox: string, line: string, level?: string): void =>
    io.out(`${new Date().toISOString().slice(11, 23)} ${sandbox} linkback${level && level !== 'info' ? ` [${level}]` : ''}: ${line}\n`);
  let service: Service;
  try {
    service = await startService(policies, { ...(control ? { controlPath: control } : {}), dropPrivileges: dropByDefault(keepPrivileges, signals) }, log, (m) =>
      m.on('event', (e: SandboxEvent) => io.out(formatEvent(e, unconfined.has(e.sandbox)))),
    );
  } catch (e) {
    signals.off('SIGINT', onSignal);
    signals.off('SIGTERM', onSignal);
    throw e;
  }
  const { manager, linkbacks, unavailable } = service;
  endSetup(manager, io, linkbacks);
  let code = 0;
  // The spawner died: nothing can start or kill containers any more; stop, and exit with an error.
  manager.once('fatal', (why: string) => {
    io.err(`FATAL: ${why}; stopping\n`);
    code = 1;
    onSignal('spawner gone');
  });
  io.out('\n');
  for (const s of manager.sandboxes)
    io.out(`sandbox ${s.name}${unconfined.has(s.name) ? ' UNCONFINED' : ''}: ${s.state}, ${s.driver.label} driver (${s.kind}) on ${s.device.description}\n`);
  for (const l of linkbacks) {
    io.out(`${l.sandbox}: ${l.kind} linkback at ${l.addresses.join(', ')}\n`);
    for (const u of l.usage()) io.out(`  ${u}\n`);
  }
  for (const s of manager.sandboxes) {
    if (s.state === 'running' && !s.policy.linkback) io.out(`${s.name}: running, no linkback in its policy (it serves nothing to the host)\n`);
  }
  for (const u of unavailable) io.out(`${u.policy}: ${u.what} ${u.kind === 'unsupported' ? 'NOT AVAILABLE YET' : 'FAILED'}: ${u.reason}\n`);
  if (manager.controlPath) io.out(`status: ${self()} status${control ? ` --control ${control}` : ''}\n`);
  if (linkbacks.length === 0) {
    io.out('nothing to serve: no linkback is up\n');
    code = 1;
  }
  if (code === 0) {
    io.out(`ready: ${linkbacks.map((l) => `${l.sandbox} ${l.kind} ${l.addresses.join(' ')}`).join('; ')}; Ctrl-C to stop\n`);
    if (!signalled)
      await new Promise<void>((r) => {
        wake = r;
      });
    io.out(`${signalled}: stopping\n`);
  }
  signals.off('SIGINT', onSignal);
  signals.off('SIGTERM', onSignal);
  io.out(`closing ${linkbacks.length} linkback(s): clients answered and disconnected\n`);
  await Promise.all(linkbacks.map((l) => l.close()));
  io.out(`stopping ${manager.sandboxes.length} sandbox(es): containers, then devices (quarantined, windows unmapped)\n`);
  await service.stop();
  io.out('stopped\n');
  return code;
}
