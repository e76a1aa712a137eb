/**
 * Start one sandboxed process: under its sandbox's own identity, in a cgroup of its own joined
 * before the program runs, and (confined) inside bubblewrap's namespaces and minimal read-only
 * root. The chain, each step exec'ing the next so no wrapper stays but bwrap's:
 *
 *   /bin/sh (as the caller, root)  writes its pid into each cgroup.procs, then execs; where there
 *                                  is no shell (an appliance image) the caller instead forks inside
 *                                  the cgroup (Cgroup.forkInside: it moves itself in, spawns, moves
 *                                  back). Either way the child never runs outside its cgroup.
 *   setpriv (util-linux)           switches to the identity (setgroups([]), gid, uid, no_new_privs)
 *   bwrap (as that identity)       builds user, PID, mount, network, IPC and UTS namespaces and
 *                                  the tree; its init is pid 1 there, the program its child
 *   the program                    argv as given; fds 0 (/dev/null), 1, 2 and 3.. as given, nothing else
 *
 * bwrap runs unprivileged, in a user namespace (it maps the identity to itself): the root bwrap
 * then setpriv-inside order was measured too (sandbox/README.md, "Launch") and was no faster. Not
 * root: no identity switch and no cgroup (everything runs as the caller). Unconfined, or where
 * bwrap cannot build namespaces (`host.namespaces.why`): no bwrap step.
 *
 * Exit: through bwrap, a program killed by signal N is reported by bwrap as code 128+N; that is
 * decoded back to the signal (so a program exiting 137 by itself reads as SIGKILL: harmless, both
 * are a crash).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { defaultSys, O_CLOEXEC, type Sys } from 'linux-sys';
import { Cgroup } from './cgroup.js';
import { closeOnExecAll } from './fds.js';
import { SpawnerError } from './errors.js';
import { launchHost, NAMESPACE_ARGS, type LaunchHost } from './host.js';
import type { Role } from './identity.js';

export type { LaunchHost } from './host.js';

export interface LaunchSpec {
  /** The sandbox (policy name): the identity and cgroup are per sandbox and role. */
  sandbox: string;
  /** The driver container, or the simulated device's process. */
  role: Role;
  /** The program and its arguments: [process.execPath, ...nodeFlags, entry, ...args]. */
  argv: readonly string[];
  env: Readonly<Record<string, string>>;
  /** The child's stdout and stderr (write ends the caller made), and its fds from 3 on, in order. */
  stdout: number;
  stderr: number;
  fds: readonly number[];
  limits: { memoryBytes: number; pids: number; cpuWeight: number };
  /** false for an `unconfined: true` debug sandbox (still its own identity; no namespaces). */
  confined: boolean;
}

export interface LaunchExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  oom: boolean;
}

export interface Launched {
  /** The program's own pid (not a wrapper's), in the caller's PID namespace. */
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** Its cgroup's path, or undefined where cgroups are unavailable (doctor says so). */
  readonly cgroup: string | undefined;
  /** The confinement it lacks, in words (empty: none missing). */
  readonly missing: readonly string[];
  kill(signal: NodeJS.Signals): void;
  /** Settles once, when the program and every wrapper are gone; `oom`: its cgroup's OOM killer killed it. */
  readonly exit: Promise<LaunchExit>;
}

/** The wrapper: join every cgroup named before `--`, then exec the rest. */
const JOIN = 'for f; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; shift; exec "$@"';
/** The shell that joins a child to its cgroup before it execs; absent in an appliance image. */
const SHELL = existsSync('/bin/sh') ? '/bin/sh' : undefined;
const SIGNAL_BY_NUMBER = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));
/** How long bwrap may take to say where its child is, and the child to appear under its init. */
const INFO_TIMEOUT_MS = 10_000;
const CHILD_TIMEOUT_MS = 2_000;

let launches = 0;

export async function launch(spec: LaunchSpec, host: LaunchHost = launchHost(), sys: Sys = defaultSys()): Promise<Launched> {
  if (spec.argv.length === 0 || !/^[A-Za-z0-9_.-]{1,64}$/.test(spec.sandbox))
    throw new SpawnerError('ERR_SPAWNER_ARG', `launch: sandbox ${JSON.stringify(spec.sandbox)} with ${spec.argv.length} argv entries`, {
      fix: 'a sandbox name of letters, digits, . _ - and a program to run',
    });
  const identity = host.root ? host.identities.get(spec.sandbox, spec.role) : { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
  const missing: string[] = [];
  let cgroup: Cgroup | undefined;
  if (host.cgroups.version !== 0) cgroup = Cgroup.create(host.cgroups, `${spec.sandbox}.${spec.role}.${process.pid}-${++launches}`, spec.limits);
  else missing.push(`no cgroup (${host.cgroups.why}): its memory, pids and CPU are not limited`);
  if (!host.root) missing.push('runs as the invoking user (the manager is not root): no identity of its own');
  const useBwrap = spec.confined && host.namespaces.bwrap !== undefined;
  if (spec.confined && !useBwrap) missing.push(`no namespaces (${host.namespaces.why}): it sees the host's processes, files and network (seccomp still holds)`);

  // Nothing this process inherited reaches the child: only what the spec names is dup'ed into place.
  closeOnExecAll(sys);
  const stdio: ('ignore' | number)[] = ['ignore', spec.stdout, spec.stderr, ...spec.fds];
  let info: [number, number] | undefined;
  const argv: string[] = [];
  if (host.root) argv.push(host.setpriv, '--reuid', String(identity.uid), '--regid', String(identity.gid), '--clear-groups', '--no-new-privs', '--');
  if (useBwrap) {
    info = sys.pipe2(O_CLOEXEC);
    const infoSlot = stdio.length;
    stdio.push(info[1]);
    // bwrap closes the info fd before the program runs, so it never reaches the program.
    argv.push(host.namespaces.bwrap!, ...NAMESPACE_ARGS, ...host.tree, '--info-fd', String(infoSlot), '--');
  }
  argv.push(...spec.argv);
  // The shell wrapper moves only the child. forkInside moves the whole caller, all its threads,
  // for the length of a fork: while there, a thread the caller starts counts against the child's
  // pids limit and its allocations against the child's memory limit (a large manager or test
  // process running the launch in-process crashed so in the lab), so it is the fallback only.
  const viaShell = cgroup !== undefined && SHELL !== undefined;
  const fork = (): ChildProcess =>
    spawn(viaShell ? SHELL! : argv[0]!, viaShell ? ['-c', JOIN, 'dmabox-launch', ...cgroup!.procsFiles, '--', ...argv] : argv.slice(1), {
      stdio,
      // Its own process group: a terminal's Ctrl-C goes to the caller, which stops its processes in order.
      detached: true,
      env: { ...spec.env },
    });
  let child: ChildProcess;
  try {
    child = cgroup && !viaShell ? cgroup.forkInside(fork) : fork();
  } catch (e) {
    if (info) {
      sys.close(info[0]);
      sys.close(info[1]);
    }
    await cgroup?.remove();
    throw new SpawnerError(
      'ERR_SPAWNER_LAUNCH',
      `launch of ${spec.sandbox}/${spec.role}: cannot start it in its cgroup ${cgroup?.path}: ${(e as Error).message}`,
      {
        cause: e,
        fix: 'run `dmabox doctor`',
      },
    );
  }
  if (info) sys.close(info[1]);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const finish = async (): Promise<LaunchExit> => {
    const e = await exited;
    let { code, signal } = e;
    if (useBwrap && code !== null && code > 128 && SIGNAL_BY_NUMBER.has(code - 128)) {
      signal = SIGNAL_BY_NUMBER.get(code - 128)!;
      code = null;
    }
    const oom = (cgroup?.oomKills() ?? 0) > 0;
    await cgroup?.remove();
    return { code, signal, oom };
  };
  const failed = async (why: string, cause?: unknown): Promise<never> => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    await cgroup?.remove();
    throw new SpawnerError('ERR_SPAWNER_LAUNCH', `launch of ${spec.sandbox}/${spec.role}: ${why}`, { cause, fix: 'run `dmabox doctor`' });
  };

  let pid = child.pid;
  if (pid === undefined) {
    if (info) sys.close(info[0]);
    return failed(`spawn failed: ${(await spawnError).message}`);
  }
  const outer = pid;
  if (info) {
    const said = await bwrapInfo(info[0], Promise.race([exited, spawnError]));
    if (said === undefined) {
      // bwrap exited (or failed) before saying where its child is: report the exit as the program's.
      return settled(outer, identity, cgroup, missing, finish());
    }
    const program = await childOf(said, exited);
    pid = program ?? said;
  }
  // The program itself is signalled (bwrap's init then exits with its status): killing bwrap
  // instead would lose the program's own exit code.
  const target = pid;
  return {
    pid: target,
    uid: identity.uid,
    gid: identity.gid,
    cgroup: cgroup?.path,
    missing,
    kill(signal) {
      try {
        process.kill(target, signal);
      } catch {
        // already gone
      }
    },
    exit: finish(),
  };
}

function settled(pid: number, identity: { uid: number; gid: number }, cgroup: Cgroup | undefined, missing: string[], exit: Promise<LaunchExit>): Launched {
  return { pid, uid: identity.uid, gid: identity.gid, cgroup: cgroup?.path, missing, kill: () => {}, exit };
}

/**
 * bwrap's `--info-fd` JSON: its child's pid in our namespace, or undefined if bwrap went first. The
 * read end stays open until bwrap is gone: closing it early would kill bwrap with SIGPIPE on a late write.
 */
async function bwrapInfo(fd: number, gone: Promise<unknown>): Promise<number | undefined> {
  const s = new Socket({ fd, readable: true, writable: false });
  void gone.then(() => s.destroy());
  let text = '';
  const childPid = (): number | undefined => {
    try {
      const v = (JSON.parse(text) as Record<string, unknown>)['child-pid'];
      return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
    } catch {
      return undefined; // not all of it yet
    }
  };
  return new Promise<number | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), INFO_TIMEOUT_MS);
    const done = (v: number | undefined): void => {
      clearTimeout(timer);
      resolve(v);
    };
    s.on('data', (b: Buffer) => {
      if (text.length > 4096) return;
      text += b.toString('utf8');
      const pid = childPid();
      if (pid !== undefined) done(pid);
    });
    s.on('error', () => done(undefined));
    s.on('end', () => done(childPid()));
    void gone.then(() => setTimeout(() => done(undefined), 50));
  });
}

/** bwrap's init (pid 1 of the namespace) forks the program: find it under the init, for a bounded time. */
async function childOf(init: number, gone: Promise<unknown>): Promise<number | undefined> {
  let over = false;
  void gone.then(() => (over = true));
  const deadline = Date.now() + CHILD_TIMEOUT_MS;
  while (!over && Date.now() < deadline) {
    try {
      const kids = readFileSync(`/proc/${init}/task/${init}/children`, 'utf8').trim();
      if (kids) return Number(kids.split(/\s+/)[0]);
    } catch {
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  return undefined;
}
