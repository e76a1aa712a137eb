/**
 * `dmabox appliance build SPEC --out DIR`: a bootable image whose only job is to run the spec's
 * policies. Outputs in DIR:
 *   kernel         the Debian kernel (bzImage), as packaged
 *   initrd         stage 1 (stage1.ts): busybox, veritysetup and its libraries, the modules
 *   root.img       SquashFS root (rootfs.ts) + its dm-verity hash tree (image.ts)
 *   cmdline        the kernel command line, with the root hash
 *   manifest.json  every input pinned (Debian packages with versions and the archive's SHA-256 of
 *                  each .deb, npm packages with their integrity hashes, the dmabox commit) and every
 *                  output's SHA-256
 *   appliance.lock the inputs alone; `--lock FILE` compares a build against one and refuses changes
 * Reproducible: times come from SOURCE_DATE_EPOCH (default: the commit's time), modes and owners
 * are fixed, salts derive from the inputs; two builds of one commit give the same bytes.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { splitHostPort } from '../../policies/addresses.js';
import { loadPolicyFiles } from '../../policies/loader.js';
import { ApplianceError } from '../image/errors.js';
import { buildInitramfs, kernelModules } from '../image/initramfs.js';
import { fetchKernel, type KernelTree } from '../image/kernel.js';
import { which } from '../lab/launch.js';
import { addVerity, makeSquashfs, type Verity } from './image.js';
import { IMAGE_DMABOX, rootfsEntries, sharedLibraries } from './rootfs.js';
import { loadApplianceSpec, type ApplianceSpec } from './spec.js';
import { APPLIANCE_MODULES, CMDLINE_HASHOFFSET, CMDLINE_ROOT, CMDLINE_ROOTHASH, stage1Script } from './stage1.js';
import { stageRootfs } from './image.js';

export const MANIFEST_FORMAT = 'dmabox-appliance/1';
/** The test-only control's TCP port in a --test image (`kill SANDBOX` kills that sandbox's container). */
export const TEST_CONTROL_PORT = 10810;
export const LOCK_FORMAT = 'dmabox-appliance-lock/1';
/** The root device the image's QEMU machine and stage 1 agree on (virtio block, first disk). */
export const ROOT_DEVICE = '/dev/vda';
/** PID 1 in the root filesystem. */
export const PID1 = ['/usr/bin/node', `/${IMAGE_DMABOX}/dist/cli/main.js`, 'appliance', 'init'];
/** Stage 1's programs, with their libraries. */
const STAGE1_PROGRAMS = ['/usr/sbin/veritysetup'];

export interface DebianInput {
  package: string;
  version: string;
  /** The archive's SHA-256 of the .deb (apt's lists), or null when apt's lists do not know this version. */
  sha256: string | null;
}

export interface LockedInputs {
  kernel: DebianInput;
  debian: DebianInput[];
  npm: { name: string; version: string; integrity: string }[];
}

export interface BuildOptions {
  spec: string;
  out: string;
  checkout: string;
  /** A lock to hold the inputs to (absent file: written). */
  lock?: string;
  /** Where the kernel is cached (the lab's cache). */
  kernelCache: string;
  /** Build a test image: PID 1 also serves the test-only control (kill a container) on TEST_CONTROL_PORT. */
  test?: boolean;
  log?: (m: string) => void;
}

export interface BuildResult {
  dir: string;
  manifest: Manifest;
  ms: number;
}

export interface Manifest {
  format: string;
  name: string;
  /** Built with --test: the image serves the test-only control. Never ship one. */
  test: boolean;
  dmabox: { commit: string; dirty: boolean };
  sourceDateEpoch: number;
  inputs: LockedInputs & { spec: string; policies: Record<string, string>; files: Record<string, string> };
  verity: Verity;
  cmdline: string;
  /** Every sandbox the image runs, with its linkback. */
  sandboxes: { name: string; linkback: string }[];
  /** The NBD exports the image serves on TCP, for clients (and `dmabox appliance test`). */
  exports: { sandbox: string; export: string; port: number; tls: string }[];
  outputs: Record<string, { sha256: string; bytes: number }>;
}

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
const fileSha = (p: string): string => sha256(readFileSync(p));

function git(checkout: string, args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { cwd: checkout, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** The Debian package that owns each file, with its installed version and the archive's .deb hash. */
export function debianInputs(files: readonly string[]): DebianInput[] {
  const owners = new Set<string>();
  for (const f of files) {
    // Merged /usr: dpkg knows each file by the path its package ships (/sbin/x or /usr/sbin/x).
    const candidates = [f, f.startsWith('/usr/') ? f.slice(4) : `/usr${f}`];
    let owner: string | undefined;
    for (const c of new Set(candidates)) {
      try {
        owner = execFileSync('dpkg', ['-S', c], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
          .split(':')[0]!
          .trim();
        break;
      } catch {
        /* another spelling of the path */
      }
    }
    if (!owner)
      throw new ApplianceError('ERR_APPLIANCE_INPUT', `${f} belongs to no Debian package`, {
        fix: 'only packaged programs and libraries go into an image: install it with apt-get',
      });
    owners.add(owner);
  }
  return [...owners].sort().map(debianPackage);
}

function debianPackage(pkg: string): DebianInput {
  const version = execFileSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' }).trim();
  return { package: pkg, version, sha256: archiveSha(pkg, version) };
}

/** The SHA-256 apt's lists give for PKG at VERSION (the .deb as the archive ships it). */
function archiveSha(pkg: string, version: string): string | null {
  try {
    const show = execFileSync('apt-cache', ['show', `${pkg.replace(/:.*$/, '')}=${version}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return /^SHA256: ([0-9a-f]{64})$/m.exec(show)?.[1] ?? null;
  } catch {
    return null;
  }
}

function kernelInput(kernel: KernelTree): DebianInput {
  const show = (() => {
    try {
      return execFileSync('apt-cache', ['show', kernel.pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return '';
    }
  })();
  const version = /^Version: (\S+)$/m.exec(show)?.[1] ?? kernel.kver;
  return { package: kernel.pkg, version, sha256: /^SHA256: ([0-9a-f]{64})$/m.exec(show)?.[1] ?? null };
}

/** Differences between locked and current inputs, one line each (empty: the same). */
export function compareInputs(locked: LockedInputs, now: LockedInputs): string[] {
  const lines: string[] = [];
  const deb = (d: DebianInput): string => `${d.version}${d.sha256 ? ` (sha256 ${d.sha256.slice(0, 12)})` : ''}`;
  const cmpList = <T extends { version: string }>(what: string, key: (x: T) => string, a: readonly T[], b: readonly T[], show: (x: T) => string): void => {
    const am = new Map(a.map((x) => [key(x), x]));
    const bm = new Map(b.map((x) => [key(x), x]));
    for (const [k, x] of am) {
      const y = bm.get(k);
      if (!y) lines.push(`${what} ${k}: ${show(x)} is locked, but the build no longer uses it`);
      else if (show(x) !== show(y)) lines.push(`${what} ${k}: ${show(x)} locked, ${show(y)} now`);
    }
    for (const [k, y] of bm) if (!am.has(k)) lines.push(`${what} ${k}: ${show(y)} is new (not in the lock)`);
  };
  cmpList(
    'kernel',
    (_: DebianInput) => 'package',
    [locked.kernel],
    [now.kernel],
    (d) => `${d.package} ${deb(d)}`,
  );
  cmpList('debian', (d: DebianInput) => d.package, locked.debian, now.debian, deb);
  cmpList(
    'npm',
    (n: LockedInputs['npm'][number]) => n.name,
    locked.npm,
    now.npm,
    (n) => `${n.version} ${n.integrity}`,
  );
  return lines;
}

export async function buildAppliance(options: BuildOptions): Promise<BuildResult> {
  const t0 = performance.now();
  const log = options.log ?? (() => {});
  const spec: ApplianceSpec = loadApplianceSpec(options.spec);
  const loaded = loadPolicyFiles(spec.policies).policies; // throws PolicyError with every problem and its line
  for (const lp of loaded) {
    if (lp.policy.unconfined)
      throw new ApplianceError('ERR_APPLIANCE_SPEC', `policy '${lp.policy.name}' (${lp.file}) is unconfined; an appliance runs every driver sandboxed`, {
        fix: 'remove unconfined: true',
      });
    if ('sim' in lp.policy.device)
      throw new ApplianceError('ERR_APPLIANCE_SPEC', `policy '${lp.policy.name}' (${lp.file}) drives a simulated device; an appliance drives real ones`, {
        fix: 'name the device by id or pci address',
      });
  }
  const checkout = options.checkout;
  const commit = git(checkout, ['rev-parse', 'HEAD']) ?? 'unknown';
  const dirty = (git(checkout, ['status', '--porcelain', '--untracked-files=no']) ?? '') !== '';
  const epochText = process.env['SOURCE_DATE_EPOCH'] ?? git(checkout, ['log', '-1', '--format=%ct']);
  const epoch = epochText !== undefined && /^\d+$/.test(epochText) ? Number(epochText) : 0;
  log(`building '${spec.name}' from ${commit.slice(0, 12)}${dirty ? ' (with uncommitted changes)' : ''}, SOURCE_DATE_EPOCH=${epoch}`);

  const kernel = await fetchKernel({ cacheDir: options.kernelCache, log });
  const policies = loaded.map((lp, i) => ({ name: `${String(i).padStart(2, '0')}-${basename(lp.file)}`, text: readFileSync(lp.file, 'utf8') }));
  const config = {
    format: MANIFEST_FORMAT,
    name: spec.name,
    onFatal: spec.onFatal,
    allowUnconfinedDma: spec.allowUnconfinedDma,
    testControl: options.test === true,
    policies: policies.map((p) => `/etc/dmabox/${p.name}`),
  };
  const files = spec.files.map((f) => ({ path: f.path, mode: f.mode, data: readFileSync(f.from) }));
  const rootfs = rootfsEntries({ checkout, policies, config, files });

  // Stage 1's programs and their libraries, at the paths ldd gives (the initramfs has no merged /usr).
  const stage1Files: Record<string, { data: Uint8Array; mode: number }> = {};
  const stage1Host: string[] = [];
  for (const program of STAGE1_PROGRAMS) {
    if (!existsSync(program))
      throw new ApplianceError('ERR_APPLIANCE_INPUT', `${program} is missing on this host`, { fix: 'install cryptsetup-bin (scripts/setup-host.sh)' });
    for (const f of [program, ...sharedLibraries(program)]) {
      stage1Host.push(f);
      stage1Files[f] = { data: readFileSync(f), mode: 0o755 };
    }
  }
  const inputs: LockedInputs = {
    kernel: kernelInput(kernel),
    debian: debianInputs([...rootfs.hostFiles, ...stage1Host, '/bin/busybox']),
    npm: rootfs.npm,
  };
  if (options.lock) {
    if (existsSync(options.lock)) {
      const locked = JSON.parse(readFileSync(options.lock, 'utf8')) as { format?: string; inputs?: LockedInputs };
      if (locked.format !== LOCK_FORMAT || !locked.inputs)
        throw new ApplianceError('ERR_APPLIANCE_LOCK', `${options.lock} is not an appliance lock (format ${JSON.stringify(locked.format)})`, {
          fix: 'use the appliance.lock a build wrote',
        });
      const diff = compareInputs(locked.inputs, inputs);
      if (diff.length > 0)
        throw new ApplianceError('ERR_APPLIANCE_LOCK', `the build's inputs differ from ${options.lock}:\n  ${diff.join('\n  ')}`, {
          fix: 'install the locked versions, or build without --lock (then review and commit the new appliance.lock)',
        });
      log(`inputs match ${options.lock}`);
    }
  }

  const work = mkdtempSync(join(tmpdir(), 'dmabox-appliance-'));
  try {
    const staging = join(work, 'root');
    stageRootfs(rootfs.entries, staging);
    const rootImg = join(work, 'root.img');
    log(`mksquashfs: ${rootfs.entries.length} entries`);
    await makeSquashfs(staging, rootImg, epoch);
    // The verity salt and UUID: from everything that went into the filesystem, so they are fixed by it.
    const seed = sha256(`${fileSha(rootImg)} ${spec.name} verity`) + sha256(`${commit} ${spec.name} uuid`);
    const verity = await addVerity(rootImg, seed);
    const cmdline = [
      'console=ttyS0',
      `panic=${spec.onFatal === 'reboot' ? 1 : 0}`,
      'intel_iommu=on',
      'iommu.strict=1',
      'iommu.passthrough=0',
      'init_on_alloc=1',
      'slab_nomerge',
      'vsyscall=none',
      'debugfs=off',
      'rdinit=/init',
      `${CMDLINE_ROOT}=${ROOT_DEVICE}`,
      `${CMDLINE_ROOTHASH}=${verity.rootHash}`,
      `${CMDLINE_HASHOFFSET}=${verity.hashOffset}`,
      ...spec.kernelArgs,
    ].join(' ');
    const modules = kernelModules(kernel, APPLIANCE_MODULES).map((m) => m.path.replace(/\.(xz|zst|gz)$/, ''));
    const init = stage1Script({ kver: kernel.kver, modules, onFatal: spec.onFatal, init: PID1 });
    const initrd = buildInitramfs({ kernel, modules: APPLIANCE_MODULES, init, files: stage1Files, cacheDir: join(work, 'initrd'), name: 'appliance' });

    mkdirSync(options.out, { recursive: true });
    const outputs: Manifest['outputs'] = {};
    const place = (from: string, name: string): void => {
      const to = join(options.out, name);
      copyFileSync(from, `${to}.partial`);
      renameSync(`${to}.partial`, to);
      outputs[name] = { sha256: fileSha(to), bytes: statSync(to).size };
    };
    place(kernel.vmlinuz, 'kernel');
    place(initrd.path, 'initrd');
    place(rootImg, 'root.img');
    writeFileSync(join(work, 'cmdline'), `${cmdline}\n`);
    place(join(work, 'cmdline'), 'cmdline');
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      name: spec.name,
      test: options.test === true,
      dmabox: { commit, dirty },
      sourceDateEpoch: epoch,
      inputs: {
        ...inputs,
        spec: fileSha(spec.file),
        policies: Object.fromEntries(policies.map((p) => [p.name, sha256(p.text)])),
        files: Object.fromEntries(files.map((f) => [f.path, sha256(f.data)])),
      },
      verity,
      cmdline,
      sandboxes: loaded.map((lp) => ({ name: lp.policy.name, linkback: lp.policy.linkback ? Object.keys(lp.policy.linkback)[0]! : 'none' })),
      exports: loaded.flatMap((lp) => {
        const l = lp.policy.linkback;
        if (!l || !('nbd' in l) || !('address' in l.nbd)) return [];
        return [{ sandbox: lp.policy.name, export: l.nbd.export, port: splitHostPort(l.nbd.address).port, tls: l.nbd.tls }];
      }),
      outputs,
    };
    writeFileSync(join(options.out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const lockText = `${JSON.stringify({ format: LOCK_FORMAT, inputs }, null, 2)}\n`;
    writeFileSync(join(options.out, 'appliance.lock'), lockText);
    if (options.lock && !existsSync(options.lock)) {
      mkdirSync(dirname(options.lock), { recursive: true });
      writeFileSync(options.lock, lockText);
      log(`wrote ${options.lock}`);
    }
    return { dir: options.out, manifest, ms: performance.now() - t0 };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * What differs between two builds, for a reproducibility check: one entry per output whose SHA-256
 * differs, explained by diffoscope when it is installed (its text report, cut to `maxLines`), else
 * by the sizes and the first differing byte, and for root.img the files whose listing differs
 * (unsquashfs -lln on both, up to the data's start).
 */
export function explainDifference(a: string, b: string, maxLines = 80): string[] {
  const ma = JSON.parse(readFileSync(join(a, 'manifest.json'), 'utf8')) as Manifest;
  const mb = JSON.parse(readFileSync(join(b, 'manifest.json'), 'utf8')) as Manifest;
  const out: string[] = [];
  const names = [...new Set([...Object.keys(ma.outputs), ...Object.keys(mb.outputs)])].sort();
  const diffoscope = which('diffoscope') !== undefined;
  for (const name of names) {
    if (ma.outputs[name]?.sha256 === mb.outputs[name]?.sha256) continue;
    const pa = join(a, name);
    const pb = join(b, name);
    if (!existsSync(pa) || !existsSync(pb)) {
      out.push(`${name}: only in ${existsSync(pa) ? a : b}`);
      continue;
    }
    if (diffoscope) {
      let text: string;
      try {
        text = execFileSync('diffoscope', ['--text', '-', pa, pb], {
          encoding: 'utf8',
          maxBuffer: 64 << 20,
          timeout: 600_000,
          stdio: ['ignore', 'pipe', 'ignore'],
        });
      } catch (e) {
        text = String((e as { stdout?: unknown }).stdout ?? ''); // diffoscope exits 1 when it found differences
      }
      out.push(`${name} (diffoscope):\n${text.split('\n').slice(0, maxLines).join('\n')}`);
      continue;
    }
    const da = readFileSync(pa);
    const db = readFileSync(pb);
    let at = 0;
    while (at < da.length && at < db.length && da[at] === db[at]) at++;
    out.push(`${name}: ${da.length} and ${db.length} bytes, first difference at byte ${at} (install diffoscope for a full report)`);
    if (name === 'root.img') {
      const list = (p: string, m: Manifest): string[] => {
        try {
          return execFileSync('unsquashfs', ['-lln', '-o', '0', p], { encoding: 'utf8', maxBuffer: 64 << 20 }).split('\n');
        } catch {
          return [`(unsquashfs could not list ${p}; hash tree at ${m.verity.hashOffset})`];
        }
      };
      const la = new Set(list(pa, ma));
      const lb = list(pb, mb);
      const changed = lb.filter((l) => !la.has(l)).slice(0, maxLines);
      if (changed.length) out.push(`root.img entries that differ (as in ${b}):\n  ${changed.join('\n  ')}`);
    }
  }
  return out;
}
