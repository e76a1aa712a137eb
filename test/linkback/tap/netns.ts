/**
 * Network namespaces for TAP tests: make them, move a TAP interface into one, give it an address,
 * run a command inside, and always remove them (cleanup() in a finally, and again at process exit
 * for a test that dies half way). Namespaces are named `dmabox-tap-<pid>-<n>`; ones left by a
 * process that no longer exists are removed when a new lab is made.
 *
 * Only addresses inside 10.77.0.0/16, and only inside namespaces this helper made: the host's own
 * networks are never touched. IPv6 is off in the namespaces so that the host stack's own traffic
 * (router solicitations, MLD) does not blur frame counts.
 *
 * Commands run asynchronously (spawn), never with execFileSync while a bridge runs: the bridge
 * lives in this process's event loop, and a blocked loop would answer no frame.
 */
import { execFileSync, spawn } from 'node:child_process';

export const NS_PREFIX = 'dmabox-tap-';
const ALLOWED = /^10\.77\.\d{1,3}\.\d{1,3}\/\d{1,2}$/;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Why TAP tests that need root cannot run here, or null when they can. */
export function rootTestsBlocked(): string | null {
  if (process.getuid?.() !== 0) return 'not running as root (TAP interfaces and network namespaces need CAP_NET_ADMIN)';
  return null;
}

/** A program the tests need; throws saying which package brings it. */
export function requireProgram(name: string, pkg: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`${name} is not installed: apt-get install ${pkg} (scripts/setup-host.sh should list it)`);
  }
}

function ip(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  } catch (e) {
    const stderr = String((e as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(`ip ${args.join(' ')} failed: ${stderr || String(e)}`, { cause: e });
  }
}

function listNamespaces(): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 });
  return out
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.length > 0);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

/** Remove namespaces an earlier test process left behind (its pid is gone). */
export function sweepStale(): string[] {
  const removed: string[] = [];
  for (const name of listNamespaces()) {
    if (!name.startsWith(NS_PREFIX)) continue;
    const pid = Number(name.slice(NS_PREFIX.length).split('-')[0]);
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) {
      try {
        ip(['netns', 'del', name]);
        removed.push(name);
      } catch {
        /* another sweeper got it */
      }
    }
  }
  return removed;
}

const live = new Set<NetnsLab>();
let exitHook = false;

export class NetnsLab {
  readonly names: string[] = [];
  private cleaned = false;

  /** Make `count` namespaces with loopback up and IPv6 off. On failure, those made are removed. */
  static create(count: number): NetnsLab {
    if (!Number.isInteger(count) || count < 1 || count > 8) throw new RangeError(`netns: count ${count} must be 1 to 8`);
    sweepStale();
    const lab = new NetnsLab();
    live.add(lab);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const l of live) l.cleanup();
      });
    }
    try {
      for (let i = 1; i <= count; i++) {
        const name = `${NS_PREFIX}${process.pid}-${i}`;
        ip(['netns', 'add', name]);
        lab.names.push(name);
        ip(['-n', name, 'link', 'set', 'lo', 'up']);
        for (const key of ['all', 'default']) {
          try {
            execFileSync('ip', ['netns', 'exec', name, 'sysctl', '-qw', `net.ipv6.conf.${key}.disable_ipv6=1`], { stdio: 'ignore', timeout: 10_000 });
          } catch {
            /* a kernel without IPv6: nothing to quiet */
          }
        }
      }
    } catch (e) {
      lab.cleanup();
      throw e;
    }
    return lab;
  }

  private check(ns: string): void {
    if (this.cleaned) throw new Error('netns: this lab was cleaned up');
    if (!this.names.includes(ns)) throw new Error(`netns: ${ns} is not one of this lab's namespaces (${this.names.join(', ')})`);
  }

  /** Move interface `ifname` (in our namespace) into `ns`, give it `cidr` (10.77.x.y/n only) and bring it up. */
  attach(ns: string, ifname: string, cidr: string): void {
    this.check(ns);
    if (!ALLOWED.test(cidr)) throw new Error(`netns: address ${cidr} is outside 10.77.0.0/16, the only range these tests may use`);
    ip(['link', 'set', ifname, 'netns', ns]);
    ip(['-n', ns, 'addr', 'add', cidr, 'dev', ifname]);
    ip(['-n', ns, 'link', 'set', ifname, 'up']);
  }

  /** Run a command inside `ns`, asynchronously, killed after `timeoutMs`. */
  run(ns: string, argv: string[], timeoutMs: number): Promise<RunResult> {
    this.check(ns);
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '',
        stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
      }, timeoutMs);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr, ms: performance.now() - t0 });
      });
    });
  }

  /** Remove every namespace (and with it the interfaces inside). Idempotent; never throws. */
  cleanup(): string[] {
    const failed: string[] = [];
    if (this.cleaned) return failed;
    this.cleaned = true;
    live.delete(this);
    for (const name of this.names) {
      try {
        ip(['netns', 'del', name]);
      } catch {
        failed.push(name);
      }
    }
    return failed;
  }
}

/** A namespace of ours that still exists (for tests of the cleanup). */
export function leftovers(): string[] {
  return listNamespaces().filter((n) => n.startsWith(`${NS_PREFIX}${process.pid}-`));
}
