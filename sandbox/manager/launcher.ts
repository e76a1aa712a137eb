/**
 * How the manager starts the processes of its sandboxes: one interface, two ways.
 * - `directLauncher`: the launch library in the manager's own process (library and test use, a
 *   manager that is not root, or one that keeps its privileges);
 * - `SpawnerClient`: asks the privileged spawner process (sandbox/spawner/main.ts) over a
 *   socketpair, passing the fds with SCM_RIGHTS. The manager starts it while still root, before it
 *   drops to its own uid; from then on the spawner is the only process of dmabox with privileges.
 *   If the spawner dies, the client says so ('gone'): the manager can no longer start or kill
 *   containers and stops.
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AF_UNIX, SOCK_CLOEXEC, SOCK_SEQPACKET, type Sys } from 'linux-sys';
import { openChannel, readError, readExit, readLaunched, SpawnerProtocolError, SpType, type Frame, type SpawnerChannel } from '../abi/spawner.js';
import { launch, type Launched, type LaunchExit, type LaunchSpec } from '../spawner/launch.js';

export interface Launcher {
  launch(spec: LaunchSpec): Promise<Launched>;
}

export interface Followed {
  /** It runs. */
  launched(l: Launched): void;
  /** It is gone (`why`: its exit could not be read, reported as no code and no signal). */
  exited(x: LaunchExit, why?: string): void;
  /** No process was started. */
  failed(e: Error): void;
}

/** Launch `spec` through `launcher` and follow the process to its exit; every outcome through `h`, once. */
export function follow(launcher: Launcher, spec: LaunchSpec, h: Followed): void {
  let started: Promise<Launched>;
  try {
    started = launcher.launch(spec);
  } catch (e) {
    started = Promise.reject(e);
  }
  started.then(
    (l) => {
      h.launched(l);
      void l.exit.then(
        (x) => h.exited(x),
        (e: unknown) => h.exited({ code: null, signal: null, oom: false }, `its exit could not be read: ${(e as Error).message}`),
      );
    },
    (e: unknown) => h.failed(e as Error),
  );
}

/** The launch library, in this process. */
export const directLauncher: Launcher = { launch: (spec) => launch(spec) };

/** What the spawner keeps: setpriv's names (the README says why each). */
export const SPAWNER_CAPS = ['setuid', 'setgid', 'kill'] as const;

export function spawnerEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`../spawner/main${extname(here)}`, import.meta.url));
}

export interface SpawnerOptions {
  sys: Sys;
  /** The entries the spawner may start (absolute paths). */
  entries: readonly string[];
  /** Node flags a launch may carry besides the manager's own execArgv. */
  flags: readonly string[];
  /** uids and gids no launched process may have (the manager's). */
  forbid: readonly number[];
  /** Identities policies name, fixed at the spawner's start. */
  pins?: readonly { sandbox: string; role: 'driver' | 'device'; uid: number; gid: number }[];
  /** Bound on the spawner's start (default 10 s). */
  helloTimeoutMs?: number;
}

type Exit = { code: number | null; signal: NodeJS.Signals | null; oom: boolean };

export class SpawnerClient extends EventEmitter implements Launcher {
  /** The spawner's pid (setpriv execs node: the same process). */
  readonly pid: number;
  private channel!: SpawnerChannel;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(l: Launched): void; reject(e: Error): void }>();
  private readonly exits = new Map<number, (x: Exit) => void>();
  private goneReason: string | undefined;
  /** Settles when the spawner process has exited. */
  private exited: Promise<void> = Promise.resolve();

  private constructor(pid: number) {
    super();
    this.pid = pid;
  }

  /** Start the spawner (as root: setpriv gives it exactly SPAWNER_CAPS) and wait for its hello. */
  static start(o: SpawnerOptions): Promise<SpawnerClient> {
    const [mine, theirs] = o.sys.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    const keep = SPAWNER_CAPS.map((c) => `+${c}`).join(',');
    const args = [
      '--no-new-privs',
      '--inh-caps=-all',
      `--bounding-set=-all,${keep}`,
      '--',
      process.execPath,
      ...process.execArgv,
      spawnerEntry(),
      ...o.entries.flatMap((e) => ['--entry', e]),
      ...o.flags.flatMap((f) => ['--flag', f]),
      ...o.forbid.flatMap((n) => ['--forbid', String(n)]),
      ...(o.pins ?? []).flatMap((p) => ['--pin', `${p.sandbox}/${p.role}=${p.uid}:${p.gid}`]),
    ];
    let child;
    try {
      child = spawn('setpriv', args, {
        stdio: ['ignore', 'inherit', 'inherit', theirs],
        // Its own process group: a terminal's Ctrl-C goes to the manager, which stops in order.
        detached: true,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_OPTIONS: process.env.NODE_OPTIONS ?? '' },
      });
    } finally {
      o.sys.close(theirs);
    }
    const pid = child.pid;
    if (pid === undefined) {
      o.sys.close(mine);
      return Promise.reject(new SpawnerProtocolError('ERR_SPAWNER_START', 'setpriv could not be started', { fix: 'install util-linux (setpriv)' }));
    }
    child.unref();
    const client = new SpawnerClient(pid);
    const timeoutMs = o.helloTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer);
        void client.close();
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
        reject(
          new SpawnerProtocolError('ERR_SPAWNER_START', `the spawner did not start: ${why}`, {
            fix: 'run dmabox as root with util-linux (setpriv) installed; see its output above',
          }),
        );
      };
      const timer = setTimeout(() => fail(`no hello within ${timeoutMs} ms`), timeoutMs);
      client.exited = new Promise((done) =>
        child.once('exit', (code, signal) => {
          if (!client.goneReason) client.onGone(`the spawner exited (${signal ?? `code ${code}`})`);
          done();
        }),
      );
      let hello = false;
      client.channel = openChannel(o.sys, mine, {
        frame: (f, fds) => {
          for (const n of fds) o.sys.close(n);
          if (!hello) {
            if (f.type !== SpType.HELLO) return fail(`its first frame was of type ${f.type}`);
            hello = true;
            clearTimeout(timer);
            resolve(client);
            return;
          }
          client.frame(f);
        },
        malformed: (e) => client.onGone(`it sent a malformed frame: ${e.message.split('\n')[0]}`),
        gone: (reason) => (hello ? client.onGone(reason) : fail(reason)),
      });
    });
  }

  launch(spec: LaunchSpec): Promise<Launched> {
    if (this.goneReason) return Promise.reject(this.goneError());
    const id = this.nextId++;
    const body = { sandbox: spec.sandbox, role: spec.role, argv: spec.argv, env: spec.env, limits: spec.limits, confined: spec.confined };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.channel.send(SpType.LAUNCH, id, body, [spec.stdout, spec.stderr, ...spec.fds]);
      } catch (e) {
        this.pending.delete(id);
        reject(e as Error);
      }
    });
  }

  /**
   * Set-up is over: the unix sockets the manager serves (in folders only root can write) are
   * removed by the spawner when it exits, and then no more can be named. Call while still root.
   */
  seal(sockets: readonly string[]): void {
    for (const path of sockets) this.channel.send(SpType.REMOVE_AT_EXIT, this.nextId++, { path });
    this.channel.send(SpType.SEAL, this.nextId++, {});
  }

  /**
   * Close the socket: the spawner kills what it launched, removes the sockets it was told of, and
   * exits. Resolves when it has (at most `waitMs`, default 7 s: its own bound is 5 s).
   */
  close(waitMs = 7000): Promise<void> {
    this.goneReason ??= 'closed by the manager';
    this.channel?.close();
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([this.exited, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]).finally(() => clearTimeout(timer));
  }

  private goneError(): SpawnerProtocolError {
    return new SpawnerProtocolError('ERR_SPAWNER_GONE', `the spawner is gone (${this.goneReason})`, {
      fix: 'containers cannot be started or killed any more: restart dmabox',
    });
  }

  private onGone(reason: string): void {
    if (this.goneReason) return;
    this.goneReason = reason;
    this.channel?.close();
    for (const p of this.pending.values()) p.reject(this.goneError());
    this.pending.clear();
    for (const settle of this.exits.values()) settle({ code: null, signal: null, oom: false });
    this.exits.clear();
    this.emit('gone', reason);
  }

  private frame(f: Frame): void {
    try {
      if (f.type === SpType.EXIT) {
        const x = readExit(f.body);
        const settle = this.exits.get(x.pid);
        this.exits.delete(x.pid);
        settle?.({ code: x.code, signal: x.signal, oom: x.oom });
        return;
      }
      if (f.type === SpType.OK) return;
      const p = this.pending.get(f.id);
      if (f.type === SpType.ERROR) {
        const e = readError(f.body);
        const err = new SpawnerProtocolError('ERR_SPAWNER_REFUSED', `the spawner refused: ${e.code}: ${e.message}`);
        if (p) {
          this.pending.delete(f.id);
          p.reject(err);
        } else this.emit('refused', err);
        return;
      }
      if (f.type === SpType.LAUNCHED && p) {
        this.pending.delete(f.id);
        const r = readLaunched(f.body);
        const exit = new Promise<Exit>((settle) => this.exits.set(r.pid, settle));
        p.resolve({
          pid: r.pid,
          uid: r.uid,
          gid: r.gid,
          cgroup: r.cgroup ?? undefined,
          missing: r.missing,
          kill: (signal) => {
            if (!this.exits.has(r.pid) || this.goneReason) return;
            try {
              this.channel.send(SpType.KILL, this.nextId++, { pid: r.pid, signal });
            } catch {
              // onGone has run
            }
          },
          exit,
        });
        return;
      }
      throw new SpawnerProtocolError('ERR_SPAWNER_FRAME', `an unexpected frame of type ${f.type} (request ${f.id})`);
    } catch (e) {
      this.onGone(`it sent a frame this manager cannot take: ${(e as Error).message.split('\n')[0]}`);
    }
  }
}
