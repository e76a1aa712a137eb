/**
 * What this host offers for launching sandboxed processes, detected once: whether we can switch
 * identities (root), bubblewrap and whether it can build namespaces for an unprivileged identity
 * (user namespaces), the cgroup layout, the identities handed out, and the read-only tree a
 * confined process sees. `dmabox doctor` prints the same facts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectCgroups, type CgroupHost } from './cgroup.js';
import { Identities } from './identity.js';

export interface LaunchHost {
  /** Root: each (sandbox, role) runs as its own identity and gets a cgroup; otherwise everything runs as the caller. */
  readonly root: boolean;
  /** bubblewrap's path and whether it built PID, mount, network, IPC and UTS namespaces here; `why` when not. */
  readonly namespaces: { bwrap: string; why?: undefined } | { bwrap?: undefined; why: string };
  readonly cgroups: CgroupHost;
  readonly identities: Identities;
  /** bwrap arguments of the read-only tree a confined process sees (binds, symlinks, /proc, /dev). */
  readonly tree: readonly string[];
  /** The setpriv binary (util-linux) that switches identity before bwrap runs. */
  readonly setpriv: string;
}

function which(name: string): string | undefined {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin']) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** The project's folder: the first one up from here that has package.json and node_modules. */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'node_modules'))) return dir;
    const up = dirname(dir);
    if (up === dir) return dirname(fileURLToPath(import.meta.url));
    dir = up;
  }
}

/**
 * The minimal root: /usr (Node's libraries, and node itself where it lives there), the /lib*,
 * /bin, /sbin of a merged-usr system as symlinks (or bound where they are folders), the node
 * binary wherever it is, the project's package.json, dist/ and node_modules/ and the workspace
 * packages node_modules links to; a fresh /proc; /dev with null, zero and urandom only. No /etc,
 * no /sys, no /tmp, no /dev/vfio.
 */
export function confinedTree(root = projectRoot()): string[] {
  const args: string[] = ['--ro-bind', '/usr', '/usr'];
  for (const top of ['/lib', '/lib64', '/lib32', '/libx32', '/bin', '/sbin']) {
    try {
      const st = lstatSync(top);
      if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(top), top);
      else if (st.isDirectory()) args.push('--ro-bind', top, top);
    } catch {
      // absent here
    }
  }
  const node = realpathSync(process.execPath);
  if (!node.startsWith('/usr/')) args.push('--ro-bind', node, node);
  if (process.execPath !== node && !process.execPath.startsWith('/usr/')) args.push('--symlink', node, process.execPath);
  const bound = new Set<string>();
  const bind = (p: string): void => {
    if (!existsSync(p) || bound.has(p)) return;
    bound.add(p);
    args.push('--ro-bind', p, p);
  };
  for (const f of ['package.json', 'dist', 'node_modules']) bind(join(root, f));
  // Workspace packages are symlinks out of node_modules: bind what they point at.
  const links = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      if (n.startsWith('@')) links(p);
      else if (lstatSync(p).isSymbolicLink()) {
        const target = realpathSync(p);
        if (!target.startsWith(`${join(root, 'node_modules')}/`)) bind(target);
      }
    }
  };
  links(join(root, 'node_modules'));
  args.push('--proc', '/proc', '--dir', '/dev');
  for (const d of ['/dev/null', '/dev/zero', '/dev/urandom']) args.push('--dev-bind', d, d);
  args.push('--chdir', '/');
  return args;
}

/** Namespaces the tree is built in. */
export const NAMESPACE_ARGS = [
  '--unshare-user',
  '--unshare-pid',
  '--unshare-net',
  '--unshare-ipc',
  '--unshare-uts',
  '--unshare-cgroup-try',
  '--die-with-parent',
  '--new-session',
] as const;

/** Try bwrap once as an unprivileged identity (nobody: what a container is) and say why it does not work. */
function probeNamespaces(bwrap: string | undefined, setpriv: string | undefined, root: boolean): LaunchHost['namespaces'] {
  if (!bwrap) return { why: 'bubblewrap (bwrap) is not installed: apt-get install bubblewrap' };
  // The probe's program is bwrap itself (`--version`): present wherever bwrap is, with no shell or
  // coreutils needed (an appliance image has neither).
  const argv = [bwrap, ...NAMESPACE_ARGS, '--ro-bind', '/', '/', '--', bwrap, '--version'];
  const cmd = root && setpriv ? [setpriv, '--reuid', '65534', '--regid', '65534', '--clear-groups', '--', ...argv] : argv;
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 10_000 });
  if (r.status === 0) return { bwrap };
  const said = `${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
  return {
    why: `bwrap could not build user, PID, mount, network, IPC and UTS namespaces as an unprivileged user (${said || r.error?.message || `exit ${r.status}`}); check kernel.unprivileged_userns_clone and user.max_user_namespaces`,
  };
}

let detected: LaunchHost | undefined;

/** The host's facts, detected on first use and kept (`fresh` detects again). */
export function launchHost(fresh = false): LaunchHost {
  if (detected && !fresh) return detected;
  const root = process.geteuid?.() === 0;
  const setpriv = which('setpriv') ?? '/usr/bin/setpriv';
  detected = {
    root,
    namespaces: probeNamespaces(which('bwrap'), which('setpriv'), root),
    cgroups: detectCgroups('/proc', root ? 0 : -1),
    identities: new Identities(),
    tree: confinedTree(),
    setpriv,
  };
  return detected;
}
