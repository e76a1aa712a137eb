/**
 * The spawner's side of the spawner protocol (sandbox/abi/spawner.ts): it starts and kills the
 * processes of sandboxes for a manager that has dropped root. It trusts the manager's requests no
 * more than it must, since a manager that parses container data may be compromised:
 * - a LAUNCH names no uid or gid: the identity comes from the launch library, and a result of uid
 *   or gid 0 or the manager's own is killed and refused;
 * - the program is this node binary with allowed flags and one of the allowed entries, all fixed
 *   when the spawner was started (before the manager read any container data);
 * - the environment holds only allowed variables, each with the value the spawner was given;
 * - the fds are of the kinds the container ABI passes (memfd, eventfd, AF_UNIX socket, pipe, VFIO
 *   device), at most MAX_LAUNCH_FDS;
 * - a KILL reaches only a process it launched that has not exited, with SIGKILL, SIGTERM or SIGINT;
 * - the sockets it removes when it exits (the manager's, in folders only root can write) are named
 *   before SEAL, that is while the manager is still root; afterwards none is taken.
 * Everything refused is answered with ERROR (ERR_SPAWNER_REFUSED or ERR_SPAWNER_FRAME).
 */
import { fstatSync, lstatSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { MFD_CLOEXEC, type Sys } from 'linux-sys';
import {
  MAX_LAUNCH_FDS,
  openChannel,
  readKill,
  readLaunch,
  readRemoveAtExit,
  SpawnerProtocolError,
  SpType,
  type Frame,
  type LaunchRequest,
  type SpawnerChannel,
} from '../abi/spawner.js';
import type { Launched, LaunchSpec } from './launch.js';

export interface ServerConfig {
  sys: Sys;
  /** The spawner's end of the socketpair (AF_UNIX SOCK_SEQPACKET). */
  fd: number;
  /** The only program: the node binary (process.execPath). */
  node: string;
  /** Node flags a LAUNCH may carry (besides --max-old-space-size=N). */
  nodeFlags: readonly string[];
  /** The only entries (absolute paths of the container's and the device process's main module). */
  entries: readonly string[];
  /** The only environment variables, each with its only value. */
  env: Readonly<Record<string, string>>;
  /** Identities no launched process may have (0 and the manager's). */
  forbiddenIds: readonly number[];
  launch(spec: LaunchSpec): Promise<Launched>;
  /** The manager's end closed: every launched process has been sent SIGKILL. */
  gone(reason: string): void;
}

/** Arguments after the entry (the container takes none; test fixtures take a name and numbers). */
const ARG = /^[A-Za-z0-9_.:,=/-]{0,256}$/;
const MAX_ENTRY_ARGS = 8;
const HEAP_FLAG = /^--max-old-space-size=\d{1,7}$/;
/** At most this many processes launched and running at once. */
export const MAX_RUNNING = 256;

function refused(message: string): SpawnerProtocolError {
  return new SpawnerProtocolError('ERR_SPAWNER_REFUSED', message, {
    fix: 'the spawner starts only the dmabox container and device entries, as sandbox identities, with the ABI fds',
  });
}

export class SpawnerServer {
  readonly running = new Map<number, Launched>();
  private readonly channel: SpawnerChannel;
  private readonly memfdDev: number;
  private launching = 0;
  /** Unix sockets to remove at exit, named before SEAL. */
  readonly removeAtExit: string[] = [];
  private sealed = false;

  constructor(private readonly c: ServerConfig) {
    // A memfd of our own: every memfd lives on the kernel's internal shmem mount, whose device this is.
    const ref = c.sys.memfdCreate('dmabox-spawner-ref', MFD_CLOEXEC);
    try {
      this.memfdDev = fstatSync(ref).dev;
    } finally {
      c.sys.close(ref);
    }
    this.channel = openChannel(c.sys, c.fd, {
      frame: (f, fds) => this.frame(f, fds),
      malformed: (e) => this.reply(SpType.ERROR, 0, { code: e.code, message: e.message.split('\n')[0] }),
      gone: (reason) => {
        this.killAll();
        c.gone(reason);
      },
    });
  }

  /** Say hello: the manager waits for this before it sends anything. */
  hello(): void {
    this.reply(SpType.HELLO, 0, { pid: process.pid, uid: process.getuid?.() ?? -1 });
  }

  killAll(): void {
    for (const l of this.running.values()) l.kill('SIGKILL');
  }

  close(): void {
    this.channel.close();
  }

  /** Remove the sockets named before SEAL (those that are still sockets). */
  removeSockets(): void {
    for (const p of this.removeAtExit) {
      try {
        if (lstatSync(p).isSocket()) rmSync(p);
      } catch {
        // gone already
      }
    }
  }

  private reply(type: SpType, id: number, body: unknown): void {
    if (this.channel.closed) return;
    try {
      this.channel.send(type, id, body);
    } catch {
      // gone() has run: nothing more to tell.
    }
  }

  private frame(f: Frame, fds: number[]): void {
    try {
      if (f.type === SpType.LAUNCH) {
        const r = readLaunch(f.body);
        this.checkLaunch(r, fds);
        // fds are closed once the child has them (or launch failed).
        void this.launch(f.id, r, fds);
        return;
      }
      for (const n of fds) this.c.sys.close(n);
      if (f.type === SpType.REMOVE_AT_EXIT) {
        const { path } = readRemoveAtExit(f.body);
        if (this.sealed) throw refused('REMOVE_AT_EXIT after SEAL: the manager has left root');
        if (this.removeAtExit.length >= 64) throw refused('at most 64 sockets to remove');
        if (!lstatSync(path, { throwIfNoEntry: false })?.isSocket()) throw refused(`${path} is not a socket`);
        this.removeAtExit.push(path);
        this.reply(SpType.OK, f.id, {});
        return;
      }
      if (f.type === SpType.SEAL) {
        this.sealed = true;
        this.reply(SpType.OK, f.id, {});
        return;
      }
      if (f.type === SpType.KILL) {
        const k = readKill(f.body);
        const l = this.running.get(k.pid);
        if (!l) throw refused(`pid ${k.pid} is not a process this spawner launched and that is still running`);
        l.kill(k.signal);
        this.reply(SpType.OK, f.id, {});
        return;
      }
      throw refused(`a frame of type ${f.type}, which only the spawner sends`);
    } catch (e) {
      if (f.type === SpType.LAUNCH) for (const n of fds) this.c.sys.close(n);
      const err = e as SpawnerProtocolError;
      this.reply(SpType.ERROR, f.id, { code: err.code ?? 'ERR_SPAWNER_REFUSED', message: String(err.message).split('\n')[0] });
    }
  }

  private checkLaunch(r: LaunchRequest, fds: number[]): void {
    const c = this.c;
    if (this.running.size + this.launching >= MAX_RUNNING) throw refused(`already ${MAX_RUNNING} processes running`);
    const argv = r.argv;
    if (argv[0] !== c.node) throw refused(`program ${JSON.stringify(argv[0]?.slice(0, 128))}: only ${c.node} is started`);
    let i = 1;
    while (i < argv.length && argv[i]!.startsWith('-')) {
      const a = argv[i]!;
      if (!c.nodeFlags.includes(a) && !HEAP_FLAG.test(a)) throw refused(`node flag ${JSON.stringify(a.slice(0, 128))} is not one the spawner allows`);
      i++;
    }
    const entry = argv[i];
    if (entry === undefined || !c.entries.includes(entry))
      throw refused(`entry ${JSON.stringify(entry?.slice(0, 256))} is not a dmabox container or device entry`);
    const rest = argv.slice(i + 1);
    if (rest.length > MAX_ENTRY_ARGS || !rest.every((a) => ARG.test(a)))
      throw refused(`at most ${MAX_ENTRY_ARGS} short arguments of letters, digits and .:,=/_- after the entry`);
    for (const [k, v] of Object.entries(r.env)) {
      if (!(k in c.env)) throw refused(`environment variable ${JSON.stringify(k)} is not allowed (allowed: ${Object.keys(c.env).join(', ')})`);
      if (v !== c.env[k]) throw refused(`environment variable ${k} may only have the spawner's own value`);
    }
    if (fds.length < 2 || fds.length > MAX_LAUNCH_FDS)
      throw refused(`a LAUNCH carries stdout, stderr and at most ${MAX_LAUNCH_FDS - 2} more fds; got ${fds.length}`);
    let unixInodes: Set<string> | undefined;
    for (const [n, fd] of fds.entries()) {
      const kind = this.fdKind(fd, () => (unixInodes ??= unixSocketInodes()));
      if (!kind) throw refused(`fd ${n} of the LAUNCH is not a memfd, eventfd, unix socket, pipe or VFIO device`);
    }
  }

  /** The kind of `fd` if it is one the container ABI passes; undefined otherwise. */
  private fdKind(fd: number, unix: () => Set<string>): string | undefined {
    let link: string;
    try {
      link = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return undefined;
    }
    if (link === 'anon_inode:[eventfd]') return 'eventfd';
    if (link === 'anon_inode:[vfio-device]') return 'vfio-device';
    if (/^pipe:\[\d+\]$/.test(link)) return 'pipe';
    const sock = /^socket:\[(\d+)\]$/.exec(link);
    if (sock) return unix().has(sock[1]!) ? 'unix socket' : undefined;
    if (link.startsWith('/memfd:')) {
      const st = fstatSync(fd);
      // A file in / named memfd:... would be a regular file with a link, on another device.
      return st.isFile() && st.nlink === 0 && st.dev === this.memfdDev ? 'memfd' : undefined;
    }
    return undefined;
  }

  private async launch(id: number, r: LaunchRequest, fds: number[]): Promise<void> {
    this.launching++;
    let l: Launched;
    try {
      l = await this.c.launch({ ...r, stdout: fds[0]!, stderr: fds[1]!, fds: fds.slice(2) });
    } catch (e) {
      this.reply(SpType.ERROR, id, { code: 'ERR_SPAWNER_REFUSED', message: `launch failed: ${String((e as Error).message).split('\n')[0]}` });
      return;
    } finally {
      this.launching--;
      for (const n of fds) this.c.sys.close(n);
    }
    if (l.uid === 0 || l.gid === 0 || this.c.forbiddenIds.includes(l.uid) || this.c.forbiddenIds.includes(l.gid)) {
      l.kill('SIGKILL');
      this.reply(SpType.ERROR, id, {
        code: 'ERR_SPAWNER_REFUSED',
        message: `the launch library gave uid ${l.uid} gid ${l.gid}, root's or the manager's: killed`,
      });
      return;
    }
    this.running.set(l.pid, l);
    l.exit.then(
      (x) => {
        this.running.delete(l.pid);
        this.reply(SpType.EXIT, 0, { pid: l.pid, code: x.code, signal: x.signal, oom: x.oom });
      },
      () => this.running.delete(l.pid),
    );
    if (this.channel.closed) l.kill('SIGKILL');
    this.reply(SpType.LAUNCHED, id, { pid: l.pid, uid: l.uid, gid: l.gid, cgroup: l.cgroup ?? null, missing: l.missing });
  }
}

/** Inodes of this network namespace's AF_UNIX sockets (/proc/self/net/unix, column 7). */
function unixSocketInodes(): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync('/proc/self/net/unix', 'utf8').split('\n').slice(1)) {
    const inode = line.trim().split(/\s+/)[6];
    if (inode) out.add(inode);
  }
  return out;
}
