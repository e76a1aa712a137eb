/**
 * Start one process of a sandbox (a driver container, or a simulated device's process) under the
 * sandbox's identity: the library the privileged spawner (server.ts) and, in library and test use,
 * the manager itself call.
 *
 * This is the minimal form: child_process.spawn as uid/gid 65534 when root (the invoking user's
 * otherwise), stdio ['ignore', stdout, stderr, ...fds], its own process group; no namespaces and
 * no cgroup. The identities, bubblewrap namespaces and cgroups replace it behind the same signature.
 */
import { spawn } from 'node:child_process';

export interface LaunchSpec {
  /** The sandbox (policy name): the identity and cgroup are per sandbox and role. */
  sandbox: string;
  /** The driver container, or the simulated device's process. */
  role: 'driver' | 'device';
  /** The program and its arguments: [process.execPath, ...nodeFlags, entry, ...args]. */
  argv: readonly string[];
  env: Readonly<Record<string, string>>;
  /** The child's stdout and stderr (write ends the caller made), and its fds from 3 on, in order. */
  stdout: number;
  stderr: number;
  fds: readonly number[];
  limits: { memoryBytes: number; pids: number; cpuWeight: number };
  /** false for an `unconfined: true` debug sandbox. */
  confined: boolean;
}

export interface Launched {
  /** The program's own pid, in the caller's PID namespace. */
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** Its cgroup's path, or undefined where cgroups are unavailable. */
  readonly cgroup: string | undefined;
  kill(signal: NodeJS.Signals): void;
  /** Settles once, when the program has gone; `oom`: its cgroup's OOM killer killed it. */
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; oom: boolean }>;
}

/** What the host offers: here only the identity a sandbox's processes run as. */
export interface LaunchHost {
  identity(sandbox: string, role: LaunchSpec['role']): { uid: number; gid: number };
}

const root = (): boolean => process.getuid?.() === 0;

export const defaultHost: LaunchHost = {
  identity: () => (root() ? { uid: 65534, gid: 65534 } : { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 }),
};

export function launch(spec: LaunchSpec, host: LaunchHost = defaultHost): Promise<Launched> {
  const id = host.identity(spec.sandbox, spec.role);
  return new Promise((resolve, reject) => {
    const child = spawn(spec.argv[0]!, spec.argv.slice(1), {
      stdio: ['ignore', spec.stdout, spec.stderr, ...spec.fds],
      detached: true,
      env: { ...spec.env },
      ...(root() ? { uid: id.uid, gid: id.gid } : {}),
    });
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; oom: boolean }>((settle) => {
      child.once('exit', (code, signal) => settle({ code, signal, oom: false }));
    });
    child.once('error', (e) => {
      if (child.pid === undefined) reject(e);
    });
    child.once('spawn', () =>
      resolve({
        pid: child.pid!,
        uid: id.uid,
        gid: id.gid,
        cgroup: undefined,
        kill: (signal) => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        },
        exit,
      }),
    );
  });
}
