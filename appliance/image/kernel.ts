/**
 * The guest kernel: Debian's current `linux-image-<KVER>` package, resolved through the
 * `linux-image-amd64` meta-package at set-up time (Debian rotates the ABI number, so it is never
 * hard-coded), fetched with `apt-get download`, unpacked with `dpkg-deb -x` into a cache folder (it is
 * never installed on the host), and given a `modules.dep` with `depmod -b` (the .deb ships none).
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync, renameSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { ApplianceError } from './errors.js';
import { execOk, execTool } from './exec.js';

/** A kernel unpacked in the cache. */
export interface KernelTree {
  /** `linux-image-6.1.0-56-amd64` */
  readonly pkg: string;
  /** `6.1.0-56-amd64`, the name under /lib/modules */
  readonly kver: string;
  /** The unpacked package root (holds boot/ and lib/modules/KVER/). */
  readonly root: string;
  /** The bootable image, root/boot/vmlinuz-KVER. */
  readonly vmlinuz: string;
  /** root/lib/modules/KVER */
  readonly modulesDir: string;
}

const KERNEL_PKG = /^linux-image-(\d+\.\d+\.\d+-\d+-[a-z0-9]+(?:-[a-z0-9]+)*)$/;

/**
 * Parse `apt-cache depends linux-image-amd64` and return the versioned kernel package it depends on.
 * Returns undefined when apt knows no such dependency (empty package lists: run `apt-get update`).
 * Alternatives (`|Depends:`) and virtual names (`<...>`) are skipped; the first concrete
 * `linux-image-X.Y.Z-N-FLAVOUR` wins.
 */
export function parseKernelDepends(output: string): { pkg: string; kver: string } | undefined {
  for (const line of output.split('\n')) {
    const m = /^\s*\|?(?:Pre)?Depends:\s*(\S+)\s*$/.exec(line);
    if (!m) continue;
    const name = m[1]!;
    const k = KERNEL_PKG.exec(name);
    if (k) return { pkg: name, kver: k[1]! };
  }
  return undefined;
}

export interface KernelFetchOptions {
  /** The folder kernels are unpacked into: DIR/KVER/ (created). */
  cacheDir: string;
  /** The meta-package to follow (default `linux-image-amd64`). */
  meta?: string;
  /** Progress messages. */
  log?: (msg: string) => void;
  /** How long apt's answer is trusted before asking again (ms; 0: always ask). */
  resolveMaxAgeMs?: number;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Ask apt which kernel package the meta-package currently points at; runs `apt-get update` once if apt knows nothing. */
export async function resolveKernelPackage(meta = 'linux-image-amd64', log: (m: string) => void = () => {}): Promise<{ pkg: string; kver: string }> {
  const ask = async () => parseKernelDepends((await execTool('apt-cache', ['depends', meta], { timeoutMs: 60_000 })).stdout);
  let found = await ask();
  if (found) return found;
  if (!isRoot()) {
    throw new ApplianceError('ERR_IMAGE_NOT_ROOT', `apt does not know the package '${meta}' (empty package lists) and only root can run 'apt-get update'`, {
      fix: 'run `apt-get update` as root once, then retry',
    });
  }
  log(`apt-cache knows no '${meta}': running apt-get update`);
  await execOk('apt-get', ['update', '-qq'], { what: 'apt-get update', code: 'ERR_IMAGE_KERNEL_RESOLVE', timeoutMs: 300_000 });
  found = await ask();
  if (!found) {
    throw new ApplianceError('ERR_IMAGE_KERNEL_RESOLVE', `'apt-cache depends ${meta}' names no linux-image-X.Y.Z-N-FLAVOUR package even after apt-get update`, {
      fix: 'check /etc/apt/sources.list has Debian main for this release',
    });
  }
  return found;
}

/** The kernels already unpacked in the cache (complete ones only), newest name last. */
export function cachedKernels(cacheDir: string): string[] {
  if (!existsSync(cacheDir)) return [];
  return readdirSync(cacheDir)
    .filter((k) => !k.startsWith('.') && existsSync(join(cacheDir, k, '.complete')))
    .sort();
}

export function kernelTree(cacheDir: string, kver: string): KernelTree {
  const root = join(cacheDir, kver, 'root');
  return {
    pkg: `linux-image-${kver}`,
    kver,
    root,
    vmlinuz: join(root, 'boot', `vmlinuz-${kver}`),
    modulesDir: join(root, 'lib', 'modules', kver),
  };
}

/**
 * Make sure the current Debian kernel is unpacked in the cache and has modules.dep; a rerun with the
 * same kernel version does nothing but ask apt-cache. When apt cannot answer (offline, no lists) and
 * a kernel is already cached, that one is used and the reason is logged.
 */
export async function fetchKernel(options: KernelFetchOptions): Promise<KernelTree> {
  const log = options.log ?? (() => {});
  const meta = options.meta ?? 'linux-image-amd64';
  // apt-cache takes about a second here; its answer changes only when Debian rotates the kernel ABI,
  // so it is remembered for a while (resolveMaxAgeMs, default 12 h) and asked again after that.
  const memo = join(options.cacheDir, 'resolved.json');
  const maxAge = options.resolveMaxAgeMs ?? 12 * 3600_000;
  let resolved: { pkg: string; kver: string } | undefined;
  try {
    const m = JSON.parse(readFileSync(memo, 'utf8')) as { meta: string; pkg: string; kver: string; at: number };
    if (m.meta === meta && Date.now() - m.at < maxAge && existsSync(join(options.cacheDir, m.kver, '.complete'))) resolved = { pkg: m.pkg, kver: m.kver };
  } catch {
    /* no memo yet, or unreadable: ask apt */
  }
  if (resolved) return kernelTree(options.cacheDir, resolved.kver);
  try {
    resolved = await resolveKernelPackage(meta, log);
    mkdirSync(options.cacheDir, { recursive: true });
    writeFileSync(memo, JSON.stringify({ meta, ...resolved, at: Date.now() }));
  } catch (e) {
    const cached = cachedKernels(options.cacheDir);
    if (cached.length === 0) throw e;
    log(`cannot resolve the current kernel (${(e as Error).message.split('\n')[0]}); using the cached ${cached.at(-1)}`);
    return kernelTree(options.cacheDir, cached.at(-1)!);
  }
  const tree = kernelTree(options.cacheDir, resolved.kver);
  const dir = join(options.cacheDir, resolved.kver);
  if (existsSync(join(dir, '.complete'))) return tree;

  log(`fetching ${resolved.pkg} (apt-get download, unpacked into ${dir}, not installed)`);
  // Built in a private folder and renamed into place, so two set-ups running at once never see or
  // remove each other's half-done work; the second to finish drops its copy.
  const work = join(options.cacheDir, `.${resolved.kver}.partial-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  const dl = join(work, 'download');
  mkdirSync(dl, { recursive: true });
  try {
    // APT::Sandbox::User=root: apt's _apt user may not write into a root-owned cache folder.
    await execOk('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', resolved.pkg], {
      cwd: dl,
      what: `downloading ${resolved.pkg}`,
      code: 'ERR_IMAGE_KERNEL_DOWNLOAD',
      fix: 'check the network and the apt sources (`apt-get update`), then retry',
    });
    const deb = readdirSync(dl).find((f) => f.startsWith(`${resolved.pkg}_`) && f.endsWith('.deb'));
    if (!deb) throw new ApplianceError('ERR_IMAGE_KERNEL_DOWNLOAD', `apt-get download ${resolved.pkg} succeeded but left no .deb in ${dl}`);
    const root = join(work, 'root');
    await execOk('dpkg-deb', ['-x', join(dl, deb), root], { what: `unpacking ${deb}` });
    if (!existsSync(join(root, 'boot', `vmlinuz-${resolved.kver}`)))
      throw new ApplianceError('ERR_IMAGE_KERNEL_DOWNLOAD', `${deb} holds no boot/vmlinuz-${resolved.kver}`);
    await execOk('depmod', ['-b', root, resolved.kver], { what: 'depmod', fix: 'install kmod (`apt-get install kmod`)' });
    rmSync(dl, { recursive: true, force: true });
    writeFileSync(join(work, '.complete'), `${deb}\n`);
    if (existsSync(join(dir, '.complete'))) return tree; // another set-up finished first
    rmSync(dir, { recursive: true, force: true }); // a crashed earlier attempt
    renameSync(work, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return tree;
}

/** The kernel's build config (root/boot/config-KVER) as a map CONFIG_X -> 'y' | 'm' | value. */
export function readKernelConfig(tree: KernelTree): Map<string, string> {
  const out = new Map<string, string>();
  const file = join(tree.root, 'boot', `config-${tree.kver}`);
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** The xz stream header (xz file format 1.0.4, §2.1.1.1: magic FD 37 7A 58 5A 00). */
const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

/**
 * The uncompressed kernel (ELF vmlinux) unpacked from the bzImage, cached next to it, for PVH boot:
 * QEMU enters an ELF kernel with a PVH entry note directly, skipping the firmware's kernel loading
 * and the in-guest xz decompression, which under TCG costs seconds. Returns undefined (and the
 * caller boots the bzImage) when the kernel lacks CONFIG_PVH, is not xz-compressed, or `xz` is missing.
 */
/** The ELF kernel inside an xz-compressed bzImage, or why there is none. */
export function vmlinuxFromBzImage(bz: Buffer): Buffer | string {
  const at = bz.indexOf(XZ_MAGIC);
  if (at < 0) return 'no xz stream in the bzImage';
  let elf: Buffer;
  try {
    elf = execFileSync('xz', ['-dc', '--single-stream'], { input: bz.subarray(at), maxBuffer: 512 << 20, stdio: ['pipe', 'pipe', 'pipe'], timeout: 120_000 });
  } catch (e) {
    return `cannot unpack vmlinux with xz (${(e as Error).message.split('\n')[0]})`;
  }
  if (elf.length < 4 || elf.readUInt32BE(0) !== 0x7f454c46) return 'the unpacked kernel is not an ELF file';
  return elf;
}

export function extractVmlinux(tree: KernelTree, log: (m: string) => void = () => {}): string | undefined {
  const out = join(tree.root, 'boot', `vmlinux-${tree.kver}`);
  if (existsSync(out)) return out;
  const config = readKernelConfig(tree);
  if (config.get('CONFIG_PVH') !== 'y' || config.get('CONFIG_KERNEL_XZ') !== 'y') {
    log('kernel has no PVH entry or is not xz-compressed: booting the bzImage');
    return undefined;
  }
  const elf = vmlinuxFromBzImage(readFileSync(tree.vmlinuz));
  if (typeof elf === 'string') {
    log(`${elf}: booting the bzImage`);
    return undefined;
  }
  const partial = `${out}.partial-${process.pid}`;
  writeFileSync(partial, elf);
  renameSync(partial, out);
  return out;
}
