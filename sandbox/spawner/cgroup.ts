/**
 * A cgroup per launched process, with its memory limit (the whole process: heap, native memory,
 * the pages it touches first), a pids limit and a CPU weight. cgroup v2 where it is mounted with
 * the memory and pids controllers; otherwise the v1 hierarchies of memory, pids (and cpu) (a
 * v1/v2 hybrid, as on the development machines). Every cgroup is made under the caller's own
 * cgroup of each hierarchy, in a `dmabox` folder, so a limit set on the caller still holds.
 * v2's rule that a cgroup with processes has no controllers for children: the caller's cgroup
 * may be the root (exempt) or must accept `+memory +pids` in its subtree_control; if it does not,
 * v2 is reported unavailable with the reason.
 *
 * The process is in its cgroup before it runs anything: a /bin/sh wrapper writes its own pid into
 * every `cgroup.procs` (procsFiles) and then execs (launch.ts); where there is no shell (an
 * appliance image), the caller moves itself into the cgroup, forks the child there (it inherits the
 * cgroup) and moves itself back, in one synchronous step (`forkInside`).
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SpawnerError } from './errors.js';

export type Controller = 'memory' | 'pids' | 'cpu';

/** Where cgroups can be made, as detected once. */
export type CgroupHost =
  | { version: 2; base: string; controllers: Controller[] }
  | { version: 1; bases: Partial<Record<Controller, string>>; controllers: Controller[] }
  | { version: 0; why: string };

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
  /** 1..10000, 100 the default share (cgroup v2's cpu.weight; v1 cpu.shares = weight * 1024 / 100). */
  cpuWeight: number;
}

interface Mount {
  point: string;
  fstype: string;
  superOptions: string[];
}

function mounts(proc: string): Mount[] {
  let text: string;
  try {
    text = readFileSync(join(proc, 'self/mountinfo'), 'utf8');
  } catch {
    return [];
  }
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const point = left.split(' ')[4]!.replace(/\\040/g, ' ');
    const [fstype = '', , opts = ''] = right.split(' ');
    out.push({ point, fstype, superOptions: opts.split(',') });
  }
  return out;
}

/** The caller's cgroup path per hierarchy (`0::/x` is v2; `4:memory:/y` a v1 controller). */
function ownCgroups(proc: string): { v2: string | undefined; v1: Map<string, string> } {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  let text: string;
  try {
    text = readFileSync(join(proc, 'self/cgroup'), 'utf8');
  } catch {
    return { v2, v1 };
  }
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') v2 = m[3];
    else for (const c of m[2]!.split(',')) v1.set(c, m[3]!);
  }
  return { v2, v1 };
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Find where cgroups can be made here; `proc` lets tests read a fake /proc. */
export function detectCgroups(proc = '/proc', euid = process.geteuid?.() ?? -1): CgroupHost {
  if (euid !== 0) return { version: 0, why: 'not root: a process cannot be put in a cgroup of its own without a delegated subtree' };
  const ms = mounts(proc);
  const own = ownCgroups(proc);
  const reasons: string[] = [];
  const v2 = ms.find((m) => m.fstype === 'cgroup2');
  if (v2 && own.v2 !== undefined) {
    const parent = join(v2.point, own.v2);
    const available = readText(join(parent, 'cgroup.controllers')).trim().split(/\s+/);
    const controllers = (['memory', 'pids', 'cpu'] as const).filter((c) => available.includes(c));
    if (controllers.includes('memory') && controllers.includes('pids')) {
      const base = join(parent, 'dmabox');
      try {
        const enable = controllers.map((c) => `+${c}`).join(' ');
        writeFileSync(join(parent, 'cgroup.subtree_control'), enable);
        mkdirSync(base, { recursive: true });
        writeFileSync(join(base, 'cgroup.subtree_control'), enable);
        return { version: 2, base, controllers };
      } catch (e) {
        reasons.push(`cgroup v2 at ${v2.point}: cannot enable ${controllers.join(', ')} below ${parent} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      }
    } else reasons.push(`cgroup v2 at ${v2.point} has no memory and pids controllers (it has: ${available.filter(Boolean).join(' ') || 'none'})`);
  } else reasons.push('no cgroup v2 mounted');
  const bases: Partial<Record<Controller, string>> = {};
  for (const c of ['memory', 'pids', 'cpu'] as const) {
    const m = ms.find((x) => x.fstype === 'cgroup' && x.superOptions.includes(c));
    const path = own.v1.get(c);
    if (!m || path === undefined) continue;
    const base = join(m.point, path, 'dmabox');
    try {
      mkdirSync(base, { recursive: true });
      bases[c] = base;
    } catch (e) {
      reasons.push(`cgroup v1 ${c} at ${m.point}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  if (bases.memory && bases.pids) return { version: 1, bases, controllers: Object.keys(bases) as Controller[] };
  reasons.push('no cgroup v1 hierarchy with both memory and pids');
  return { version: 0, why: reasons.join('; ') };
}

/** One process's cgroup: made and limited before it runs, removed after it is gone. */
export class Cgroup {
  /** Its folder (v2) or folders (v1, one per controller). */
  readonly dirs: string[];
  /** The files the process writes its pid into to join. */
  readonly procsFiles: string[];
  private readonly memoryDir: string;
  private readonly version: 1 | 2;

  private constructor(version: 1 | 2, dirs: string[], memoryDir: string) {
    this.version = version;
    this.dirs = dirs;
    this.memoryDir = memoryDir;
    this.procsFiles = dirs.map((d) => join(d, 'cgroup.procs'));
  }

  /** Its path as shown to people: the v2 folder, or the memory hierarchy's. */
  get path(): string {
    return this.memoryDir;
  }

  static create(host: CgroupHost, name: string, limits: CgroupLimits): Cgroup {
    if (host.version === 0) throw new SpawnerError('ERR_SPAWNER_CGROUP', `no cgroups: ${host.why}`, { fix: 'run `dmabox doctor`' });
    if (!(limits.memoryBytes > 0 && limits.pids > 0 && limits.cpuWeight >= 1 && limits.cpuWeight <= 10000))
      throw new SpawnerError('ERR_SPAWNER_ARG', `cgroup limits out of range: ${JSON.stringify(limits)}`, {
        fix: 'memory and pids above 0, cpuWeight 1..10000',
      });
    const made: string[] = [];
    const write = (dir: string, file: string, value: string | number): void => writeFileSync(join(dir, file), String(value));
    try {
      if (host.version === 2) {
        const dir = join(host.base, name);
        mkdirSync(dir);
        made.push(dir);
        write(dir, 'memory.max', limits.memoryBytes);
        if (existsSync(join(dir, 'memory.swap.max'))) write(dir, 'memory.swap.max', 0);
        write(dir, 'pids.max', limits.pids);
        if (host.controllers.includes('cpu')) write(dir, 'cpu.weight', limits.cpuWeight);
        return new Cgroup(2, made, dir);
      }
      for (const c of host.controllers) {
        const dir = join(host.bases[c]!, name);
        mkdirSync(dir);
        made.push(dir);
        if (c === 'memory') {
          write(dir, 'memory.limit_in_bytes', limits.memoryBytes);
          // Swap would let the process grow past its limit: memsw (where accounted) equal to the limit.
          if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) write(dir, 'memory.memsw.limit_in_bytes', limits.memoryBytes);
        } else if (c === 'pids') write(dir, 'pids.max', limits.pids);
        else write(dir, 'cpu.shares', Math.max(2, Math.round((limits.cpuWeight * 1024) / 100)));
      }
      return new Cgroup(1, made, join(host.bases.memory!, name));
    } catch (e) {
      for (const d of made.reverse()) tryRmdir(d);
      throw new SpawnerError('ERR_SPAWNER_CGROUP', `cgroup ${name}: ${(e as Error).message}`, { cause: e, fix: 'run `dmabox doctor`' });
    }
  }

  /**
   * Run `fork` (a synchronous spawn) with this process inside the cgroup, so the child starts in it
   * and never runs outside; then move this process back where it was (the folder above `dmabox/`).
   * Nothing else runs in between: the event loop is not entered.
   */
  forkInside<T>(fork: () => T): T {
    const pid = String(process.pid);
    for (const f of this.procsFiles) writeFileSync(f, pid);
    try {
      return fork();
    } finally {
      for (const d of this.dirs) writeFileSync(join(dirname(dirname(d)), 'cgroup.procs'), pid);
    }
  }

  /** How many times the OOM killer killed a process of it (v2 memory.events, v1 memory.oom_control: `oom_kill N`). */
  oomKills(): number {
    const text = readText(join(this.memoryDir, this.version === 2 ? 'memory.events' : 'memory.oom_control'));
    const m = /^oom_kill (\d+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  }

  /** Remove it (every folder); a folder still busy (a process not yet reaped) is tried again for up to `ms`. */
  async remove(ms = 2000): Promise<void> {
    const deadline = Date.now() + ms;
    // The kernel empties a cgroup a moment after its last process is reaped: retry soon, then less
    // often (1, 2, 4 .. 32 ms), as a caller (the supervisor's death detection) waits on this.
    for (const d of this.dirs) {
      let wait = 1;
      while (!tryRmdir(d) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(32, wait * 2);
      }
    }
  }
}

function tryRmdir(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}
