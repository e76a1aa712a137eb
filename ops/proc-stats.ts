/**
 * A container's CPU time and memory, read at scrape time (never on a hot path):
 * - memory: its cgroup's `memory.current` (v2) or `memory.usage_in_bytes` (v1) when it has a
 *   cgroup (the manager is root); otherwise the sum of VmRSS over its process tree;
 * - CPU: user + system time of its process tree (/proc/PID/stat fields 14 and 15, in clock ticks
 *   of 1/100 s: USER_HZ is 100 on every Linux architecture Node runs on). The tree is walked
 *   through /proc/PID/task/TID/children, at most MAX_PROCS processes.
 * Whatever cannot be read (a process that just exited) counts as nothing rather than failing a scrape.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const USER_HZ = 100;
/** Processes walked per container (bwrap, its init, node and node's helpers are a handful). */
const MAX_PROCS = 64;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The pids of `pid`'s process tree, itself first (bounded). */
export function processTree(pid: number, proc = '/proc'): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0 && out.length < MAX_PROCS) {
    const p = queue.shift()!;
    out.push(p);
    let tasks: string[];
    try {
      tasks = readdirSync(join(proc, String(p), 'task'));
    } catch {
      continue;
    }
    for (const t of tasks) {
      const kids = read(join(proc, String(p), 'task', t, 'children'));
      if (kids) for (const k of kids.trim().split(/\s+/)) if (k) queue.push(Number(k));
    }
  }
  return out;
}

/** utime + stime of one process in seconds (0 when it cannot be read). */
export function cpuSeconds(pid: number, proc = '/proc'): number {
  const stat = read(join(proc, String(pid), 'stat'));
  if (!stat) return 0;
  // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): utime is field 14, stime field 15.
  const utime = Number(rest[11]),
    stime = Number(rest[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / USER_HZ : 0;
}

/** VmRSS of one process in bytes (0 when it cannot be read, or for a kernel thread). */
export function rssBytes(pid: number, proc = '/proc'): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(read(join(proc, String(pid), 'status')) ?? '');
  return m ? Number(m[1]) * 1024 : 0;
}

/** A cgroup's memory use in bytes (v2 or v1), undefined when it has no such file. */
export function cgroupMemoryBytes(dir: string): number | undefined {
  const t = read(join(dir, 'memory.current')) ?? read(join(dir, 'memory.usage_in_bytes'));
  const n = t === undefined ? NaN : Number(t.trim());
  return Number.isFinite(n) ? n : undefined;
}

export interface ContainerUsage {
  cpuSeconds: number;
  memoryBytes: number;
  processes: number;
}

/** CPU and memory of the container whose outermost process is `pid`, in cgroup `cgroup` if any. */
export function containerUsage(pid: number, cgroup: string | undefined, proc = '/proc'): ContainerUsage {
  const tree = processTree(pid, proc);
  let cpu = 0,
    rss = 0;
  for (const p of tree) {
    cpu += cpuSeconds(p, proc);
    rss += rssBytes(p, proc);
  }
  const fromCgroup = cgroup ? cgroupMemoryBytes(cgroup) : undefined;
  return { cpuSeconds: cpu, memoryBytes: fromCgroup ?? rss, processes: tree.length };
}
