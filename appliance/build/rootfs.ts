/**
 * What goes into an appliance's root filesystem, as a list of entries with fixed modes, and where
 * each came from (so the manifest can pin it):
 *   - Node.js, bubblewrap and setpriv (the spawner's launch chain), with every shared library `ldd`
 *     names, laid out merged-/usr style (/bin, /lib, /lib64 are links into /usr);
 *   - dmabox's build (dist/ without tests and benchmarks) and its production npm packages
 *     (package-lock.json's non-dev entries that are installed; the workspaces linux-sys and
 *     vfio-bindings as their package.json and dist/);
 *   - /etc/dmabox: the policies and the appliance's config.
 * Nothing else: no shell, no package manager, no login. Pure apart from reading the host's files.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { ApplianceError } from '../image/errors.js';

export type RootEntry =
  | { type: 'dir'; path: string; mode: number }
  | { type: 'file'; path: string; mode: number; source: string }
  | { type: 'data'; path: string; mode: number; data: string | Uint8Array }
  | { type: 'symlink'; path: string; target: string };

/** Where dmabox lives in the image. */
export const IMAGE_DMABOX = 'opt/dmabox';
/** The programs the image runs: node (the manager, containers), bwrap and setpriv (the spawner's chain). */
export const IMAGE_PROGRAMS = ['/usr/bin/node', '/usr/bin/bwrap', '/usr/bin/setpriv'];
/** dist/ folders that never ship: tests, benchmarks, build scripts. */
const DIST_SKIPPED = new Set(['test', 'bench', 'scripts']);

/** Shared libraries of an ELF file as `ldd` resolves them (the loader included), real host paths. */
export function sharedLibraries(file: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const said = String((e as { stdout?: unknown }).stdout ?? '') + String((e as { stderr?: unknown }).stderr ?? '');
    if (/not a dynamic executable/.test(said)) return [];
    throw new ApplianceError('ERR_APPLIANCE_INPUT', `ldd ${file} failed: ${said.trim() || (e as Error).message}`, { fix: 'install libc-bin (ldd)', cause: e });
  }
  return parseLdd(out, file);
}

export function parseLdd(out: string, file = 'the program'): string[] {
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('linux-vdso') || t.startsWith('linux-gate')) continue;
    if (/=> not found/.test(t))
      throw new ApplianceError('ERR_APPLIANCE_INPUT', `${file} needs ${t.split(' ')[0]}, which this host does not have`, {
        fix: 'install the library, then build again',
      });
    const m = /=>\s+(\/\S+)\s+\(/.exec(t) ?? /^(\/\S+)\s+\(/.exec(t);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

/** The ELF interpreter is executed too (execve opens it for execution): 0755; other libraries 0644. */
function libraryMode(path: string): number {
  return /\/ld-linux[^/]*$/.test(path) ? 0o755 : 0o644;
}

/** `/lib/x86_64-linux-gnu/libc.so.6` -> `usr/lib/x86_64-linux-gnu/libc.so.6` (merged /usr in the image). */
export function imagePath(hostPath: string): string {
  const p = hostPath.replace(/^\/+/, '');
  for (const top of ['bin/', 'sbin/', 'lib/', 'lib64/']) if (p.startsWith(top)) return `usr/${p}`;
  return p;
}

export interface RootfsInputs {
  /** The dmabox checkout (package.json, package-lock.json, dist/, node_modules/). */
  checkout: string;
  /** Policy files: image name -> text. */
  policies: { name: string; text: string }[];
  /** /etc/dmabox/appliance.json */
  config: unknown;
  /** Extra programs to include with their libraries (absolute host paths). */
  programs?: readonly string[];
  /** Files the spec puts into the image (keys...): absolute image path, mode, contents. */
  files?: readonly { path: string; mode: number; data: Uint8Array }[];
}

export interface Rootfs {
  entries: RootEntry[];
  /** Host files copied in (programs and libraries), for the manifest. */
  hostFiles: string[];
  /** npm packages shipped: lockfile key -> version/integrity. */
  npm: { name: string; version: string; integrity: string }[];
}

/** Every entry of the root filesystem, parents before children, sorted. */
export function rootfsEntries(inputs: RootfsInputs): Rootfs {
  const entries = new Map<string, RootEntry>();
  const dir = (p: string, mode = 0o755): void => {
    const parts = p.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!entries.has(d)) entries.set(d, { type: 'dir', path: d, mode: i === parts.length ? mode : 0o755 });
    }
  };
  const put = (e: RootEntry): void => {
    const parent = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/')) : '';
    if (parent) dir(parent);
    entries.set(e.path, e);
  };
  // Mount points and the merged-/usr links.
  for (const d of ['dev', 'proc', 'sys', 'run', 'tmp', 'etc', 'root', 'usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64'])
    dir(d, d === 'tmp' ? 0o1777 : d === 'root' ? 0o700 : 0o755);
  for (const top of ['bin', 'sbin', 'lib', 'lib64']) put({ type: 'symlink', path: top, target: `usr/${top}` });

  // Programs and their libraries, by their real contents.
  const hostFiles = new Set<string>();
  for (const program of [...IMAGE_PROGRAMS, ...(inputs.programs ?? [])]) {
    if (!existsSync(program))
      throw new ApplianceError('ERR_APPLIANCE_INPUT', `${program} is missing on this host`, {
        fix: 'run scripts/setup-host.sh (bubblewrap, util-linux, nodejs)',
      });
    for (const f of [program, ...sharedLibraries(program)]) {
      hostFiles.add(f);
      put({ type: 'file', path: imagePath(f), mode: f === program ? 0o755 : libraryMode(f), source: realpathSync(f) });
    }
  }
  // koffi's native module has libraries of its own (libc's, already there, but checked).
  const { npm, files } = npmPackages(inputs.checkout);
  for (const f of files) {
    put({ type: 'file', path: `${IMAGE_DMABOX}/${f.rel}`, mode: 0o644, source: f.source });
    if (f.source.endsWith('.node'))
      for (const lib of sharedLibraries(f.source)) {
        hostFiles.add(lib);
        put({ type: 'file', path: imagePath(lib), mode: libraryMode(lib), source: realpathSync(lib) });
      }
  }
  for (const f of distFiles(inputs.checkout)) put({ type: 'file', path: `${IMAGE_DMABOX}/${f.rel}`, mode: 0o644, source: f.source });
  put({ type: 'data', path: `${IMAGE_DMABOX}/package.json`, mode: 0o644, data: readFileSync(join(inputs.checkout, 'package.json')) });
  for (const p of inputs.policies) put({ type: 'data', path: `etc/dmabox/${p.name}`, mode: 0o644, data: p.text });
  put({ type: 'data', path: 'etc/dmabox/appliance.json', mode: 0o644, data: `${JSON.stringify(inputs.config, null, 2)}\n` });
  for (const f of inputs.files ?? []) put({ type: 'data', path: f.path.replace(/^\/+/, ''), mode: f.mode, data: f.data });
  // No accounts to log in with; the names make ps and error messages readable.
  put({ type: 'data', path: 'etc/passwd', mode: 0o644, data: 'root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' });
  put({ type: 'data', path: 'etc/group', mode: 0o644, data: 'root:x:0:\nnogroup:x:65534:\n' });
  put({ type: 'data', path: 'etc/os-release', mode: 0o644, data: `NAME="dmabox appliance"\nID=dmabox\n` });
  const sorted = [...entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { entries: sorted, hostFiles: [...hostFiles].sort(), npm };
}

/** Files under dist/ that run in the image (no tests, benchmarks, scripts or source maps). */
function distFiles(checkout: string): { rel: string; source: string }[] {
  const dist = join(checkout, 'dist');
  if (!existsSync(join(dist, 'cli', 'main.js'))) throw new ApplianceError('ERR_APPLIANCE_INPUT', `${dist} holds no build`, { fix: 'run npm run build first' });
  return walkFiles(dist)
    .filter((f) => f.endsWith('.js') && !DIST_SKIPPED.has(relative(dist, f).split('/')[0]!))
    .map((f) => ({ rel: relative(checkout, f), source: f }));
}

interface LockEntry {
  version?: string;
  integrity?: string;
  dev?: boolean;
  devOptional?: boolean;
  link?: boolean;
  resolved?: string;
}

/** The production npm packages that are installed, and their files (workspaces: package.json + dist/). */
function npmPackages(checkout: string): { npm: Rootfs['npm']; files: { rel: string; source: string }[] } {
  const lock = JSON.parse(readFileSync(join(checkout, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const npm: Rootfs['npm'] = [];
  const files: { rel: string; source: string }[] = [];
  for (const [key, e] of Object.entries(lock.packages).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!key.startsWith('node_modules/') || e.dev || e.devOptional) continue;
    const installed = join(checkout, key);
    if (!existsSync(installed)) continue; // an optional package for another platform
    const name = key.slice('node_modules/'.length);
    if (e.link) {
      const target = join(checkout, e.resolved!);
      const pkg = JSON.parse(readFileSync(join(target, 'package.json'), 'utf8')) as { version: string };
      npm.push({ name, version: pkg.version, integrity: `workspace ${e.resolved} (in the dmabox commit)` });
      files.push({ rel: `${key}/package.json`, source: join(target, 'package.json') });
      for (const f of walkFiles(join(target, 'dist')))
        if (f.endsWith('.js')) files.push({ rel: `${key}/dist/${relative(join(target, 'dist'), f)}`, source: f });
      continue;
    }
    if (!e.integrity)
      throw new ApplianceError('ERR_APPLIANCE_INPUT', `package-lock.json has no integrity hash for ${key}`, {
        fix: 'run npm install to refresh the lock file',
      });
    npm.push({ name, version: e.version ?? '?', integrity: e.integrity });
    for (const f of walkFiles(installed)) {
      // Another platform's prebuilt binary (koffi ships musl beside glibc) is never loaded here.
      if (/\/musl_[^/]+\//.test(f) || basename(f).endsWith('.md')) continue;
      files.push({ rel: relative(checkout, f), source: f });
    }
  }
  return { npm, files };
}

function walkFiles(d: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(d).sort()) {
    const p = join(d, name);
    const st = statSync(p);
    if (st.isDirectory()) {
      if (name === 'node_modules') continue; // nested installs are lock entries of their own
      out.push(...walkFiles(p));
    } else if (st.isFile()) out.push(p);
  }
  return out;
}
