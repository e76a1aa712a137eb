/**
 * `dmabox up POLICY|FOLDER... [--control PATH] [--bind] [--keep-privileges] [--metrics ADDR] [--log-format F]`: start a
 * sandbox per policy (a folder: each *.yaml in it) and supervise them in the foreground, one line per event on stdout
 * through one logger (ops/logger.ts: text, json or journal), and start the linkback each policy names (NBD, TAP).
 * Operations (ops/README.md): --metrics serves Prometheus metrics; under systemd (NOTIFY_SOCKET) READY=1 once
 * everything is up, STATUS= on state changes, WATCHDOG=1 at half WATCHDOG_USEC, STOPPING=1; SIGHUP reloads the
 * policies and restarts only the sandboxes whose policy changed (ops/reload.ts).
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
import { collect } from '../ops/collector.js';
import { OpsError } from '../ops/errors.js';
import { chooseLogFormat, Logger } from '../ops/logger.js';
import { MetricsServer, parseMetricsAddress, type MetricsAddress } from '../ops/metrics-server.js';
import { Notifier } from '../ops/notify.js';
import { applyPolicies, expandPolicyArgs } from '../ops/reload.js';

/** Events that change a sandbox's state: each sends the service manager a STATUS= line. */
const STATE_EVENTS: ReadonlySet<SandboxEvent['kind']> = new Set(['ready', 'exit', 'quarantine', 'restart', 'failed', 'stop']);

const USAGE = `usage: dmabox up POLICY|FOLDER... [--control PATH] [--bind] [--keep-privileges] [--metrics ADDR] [--log-format text|json|journal]\n  FOLDER  every *.yaml / *.yml in it (/etc/dmabox/)\n  --metrics ADDR  serve Prometheus metrics at /metrics on a unix socket path or a loopback HOST:PORT\n  --log-format F  text (default), json (one object per line) or journal (<N> priority prefixes;\n          the default when JOURNAL_STREAM is set)\n  --bind  bind real devices to vfio-pci at start and give them back to their drivers at stop\n          (as if every policy said device.bind: true)\n  --keep-privileges  as root, stay root after set-up (default: the manager switches to its\n          own uid with no capability and a spawner starts containers; sandbox/README.md)\n`;

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
export function endSetup(manager: ManagerType, io: Io, linkbacks: readonly Linkback[] = [], otherSockets: readonly string[] = []): void {
  try {
    // The linkbacks' unix sockets (and others the manager serves, the metrics'): the spawner removes them once the manager cannot.
    const sockets = [...linkbacks.flatMap((l) => l.addresses.filter((a) => a.startsWith('unix:')).map((a) => a.slice('unix:'.length))), ...otherSockets];
    const r = manager.endSetup(sockets);
    if (r)
      io.out(
        `privileges: the manager is uid ${r.uid} gid ${r.gid} with no capability on any of its ${r.threads} threads (no_new_privs on all); the spawner (pid ${manager.spawner?.pid}) starts and kills containers and device processes\n`,
      );
  } catch (e) {
    io.err(`privileges: NOT DROPPED, the manager may still be root: ${(e as Error).message}\n`);
  }
}

/** For a caller embedding `up` (an appliance's PID 1): told once the manager is up and set up. */
export interface UpHooks {
  started?(manager: Manager): void;
}

export async function run(
  argv: string[],
  io: Io = stdio,
  signals: NodeJS.EventEmitter = process,
  env: NodeJS.ProcessEnv = process.env,
  hooks: UpHooks = {},
): Promise<number> {
  const files: string[] = [];
  let control: string | undefined;
  let bind = false;
  let keepPrivileges = false;
  let metrics: string | undefined;
  let logFormat: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--control' || a === '--metrics' || a === '--log-format') {
      const v = argv[++i];
      if (!v) {
        io.err(`dmabox up: ${a} needs a value\n${USAGE}`);
        return 2;
      }
      if (a === '--control') control = v;
      else if (a === '--metrics') metrics = v;
      else logFormat = v;
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
    io.err(`dmabox up: name at least one policy file or folder\n${USAGE}`);
    return 2;
  }
  let log: Logger;
  let metricsAddress: MetricsAddress | undefined;
  let notifier: Notifier | undefined;
  let policyFiles: string[];
  try {
    log = new Logger(chooseLogFormat(logFormat, env), io);
    metricsAddress = metrics === undefined ? undefined : parseMetricsAddress(metrics);
    policyFiles = expandPolicyArgs(files);
    // Opened now, while still root: the notify socket may be root's alone (notify.ts).
    notifier = Notifier.fromEnv(env);
  } catch (e) {
    if (!(e instanceof OpsError)) throw e;
    io.err(`dmabox up: ${e.code}: ${e.message}\n`);
    return 2;
  }
  // Policy problems through the logger too (journal priorities: a WARNING line is a warning).
  const problems = {
    err: (line: string): void =>
      log.log({ event: 'policy', message: line.replace(/\n$/, ''), level: line.startsWith('WARNING') ? 'warn' : 'error', stderr: true }),
  };
  const result = loadPoliciesOrReport(policyFiles, problems, 'nothing was started');
  if (!result) {
    notifier?.close();
    return 1;
  }
  const policies = result.policies.map((lp) => lp.policy);
  const unconfined = new Set(policies.filter((p) => p.unconfined).map((p) => p.name));
  const say = (message: string, fields?: Record<string, unknown>): void => log.log({ event: 'manager', message, ...(fields ? { fields } : {}) });
  const complain = (message: string, level: 'error' | 'warn' = 'error', sandbox?: string): void =>
    log.log({ event: 'manager', message, level, stderr: true, ...(sandbox ? { sandbox, bare: true } : {}) });
  let manager: Manager;
  try {
    manager = new Manager(policies, {
      ...(control ? { controlPath: control } : {}),
      supervisor: { bind },
      dropPrivileges: dropByDefault(keepPrivileges, signals),
    });
  } catch (e) {
    notifier?.close();
    throw e;
  }
  const stateLine = (): string => manager.sandboxes.map((s) => `${s.name} ${s.state}`).join(', ');
  manager.on('event', (e: SandboxEvent) => {
    log.log({
      time: e.time,
      level: e.level ?? 'info',
      sandbox: e.sandbox,
      event: e.kind,
      message: e.text,
      fields: unconfined.has(e.sandbox) ? { unconfined: true } : {},
    });
    // The service manager sees every state change on one line (systemctl status).
    if (STATE_EVENTS.has(e.kind)) notifier?.status(stateLine());
  });
  if (process.getuid?.() !== 0) say(`not root: containers run as the invoking user (uid ${process.getuid?.()}), with no identity or cgroup of their own`);
  let linkbacks: Linkback[] = [];
  let metricsServer: MetricsServer | undefined;
  let exitCode = 0;
  let reloading: Promise<void> = Promise.resolve();
  const linkbackLog = (sandbox: string, line: string, level?: 'info' | 'warn' | 'error'): void =>
    log.log({ sandbox, event: 'linkback', message: line, level: level ?? 'info', fields: unconfined.has(sandbox) ? { unconfined: true } : {} });
  const onReload = (): void => {
    reloading = reloading
      .then(async () => {
        notifier?.reloading();
        say(`SIGHUP: reading ${files.join(' ')} again`);
        const next = loadPoliciesOrReport(expandPolicyArgs(files), problems, 'nothing was changed');
        if (next) {
          const nextPolicies = next.policies.map((lp) => lp.policy);
          unconfined.clear();
          for (const p of nextPolicies) if (p.unconfined) unconfined.add(p.name);
          const d = await applyPolicies(manager, linkbacks, nextPolicies, linkbackLog);
          say(
            `reloaded: ${d.added.length} added, ${d.changed.length} restarted, ${d.removed.length} removed, ${d.unchanged.length} unchanged${d.unchanged.length ? ` (${d.unchanged.join(', ')})` : ''}`,
            { added: d.added.map((p) => p.name), changed: d.changed.map((p) => p.name), removed: d.removed, unchanged: d.unchanged },
          );
        }
      })
      .catch((e: unknown) => complain(`reload failed: ${(e as Error).message}`))
      // Whatever happened, the service manager waits for READY=1 after RELOADING=1.
      .finally(() => notifier?.ready(stateLine()));
  };
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (sig: string): void => {
      say(`${sig}: stopping ${linkbacks.length} linkback(s), then ${manager.sandboxes.length} sandbox(es)`);
      notifier?.stopping();
      signals.off('SIGINT', onSignal);
      signals.off('SIGTERM', onSignal);
      signals.off('SIGHUP', onReload);
      // Clients first (answered and disconnected), then containers and devices; a reload under way finishes first.
      reloading
        .then(() => Promise.allSettled([...linkbacks.map((l) => l.close()), metricsServer?.close()]))
        .then(() => manager.stop())
        .then(resolve, resolve);
    };
    signals.on('SIGINT', onSignal);
    signals.on('SIGTERM', onSignal);
    // The spawner died: nothing can start or kill containers any more; stop, and exit with an error.
    manager.once('fatal', (why: string) => {
      complain(`FATAL: ${why}; stopping`);
      exitCode = 1;
      onSignal('spawner gone');
    });
  });
  await manager.start();
  say(
    `up: ${manager.sandboxes.map((s) => `${s.name}${unconfined.has(s.name) ? ' UNCONFINED' : ''} ${s.state}`).join(', ')}; control socket ${manager.controlPath}`,
  );
  const started = await startLinkbacks(manager, linkbackLog);
  linkbacks = started.linkbacks;
  for (const l of linkbacks)
    log.log({ sandbox: l.sandbox, event: 'linkback', message: `${l.sandbox}: ${l.kind} linkback at ${l.addresses.join(', ')}`, bare: true });
  for (const u of started.unavailable)
    complain(`${u.policy}: ${u.what} ${u.kind === 'unsupported' ? 'NOT AVAILABLE YET' : 'FAILED'}: ${u.reason}`, 'error', u.policy);
  if (metricsAddress) {
    try {
      metricsServer = await MetricsServer.listen(metricsAddress, () => collect({ manager: () => manager, linkbacks: () => linkbacks }));
      say(`metrics: ${metricsServer.address}`);
    } catch (e) {
      complain(`metrics: NOT SERVED: ${(e as Error).message}`);
    }
  }
  endSetup(
    manager,
    { out: (s) => say(s.trimEnd()), err: (s) => complain(s.trimEnd()) },
    linkbacks,
    metricsAddress?.kind === 'unix' && metricsServer ? [metricsAddress.path] : [],
  );
  signals.on('SIGHUP', onReload);
  notifier?.ready(stateLine());
  // WATCHDOG=1 only while the manager can still do its work (its spawner alive, not stopping).
  notifier?.startWatchdog(() => manager.fatal === undefined);
  hooks.started?.(manager);
  await stopped;
  notifier?.close();
  say('stopped: containers gone, devices quarantined, windows unmapped');
  return exitCode;
}
