/**
 * Setting up the lab on this host: the Debian packages (installed when missing, as
 * scripts/setup-host.sh does), the current Debian kernel unpacked in the cache, and the lab's
 * initramfs. Everything lives under `<repo>/.cache/lab/` (git-ignored); a rerun with the same kernel
 * version and the same /init reuses it and takes well under a second.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplianceError } from '../image/errors.js';
import { execOk, execTool } from '../image/exec.js';
import { buildInitramfs, kernelModules } from '../image/initramfs.js';
import { extractVmlinux, fetchKernel, type KernelTree } from '../image/kernel.js';
import { LAB_MODULES, LAB_VFIO_IDS, labInitScript } from './init-script.js';

/** The repository root (this file is appliance/lab/setup.ts, or dist/appliance/lab/setup.js). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'appliance'))) return dir;
    dir = dirname(dir);
  }
  throw new ApplianceError('ERR_LAB_CHECKOUT', `cannot find the dmabox checkout above ${fileURLToPath(import.meta.url)}`, {
    fix: 'run the lab from a dmabox checkout (its package.json and appliance/ next to the build), after npm run build',
  });
}

export function labCacheDir(): string {
  return join(repoRoot(), '.cache', 'lab');
}

/** Debian packages the lab needs, and the file each provides that we check for. */
export const LAB_PACKAGES: readonly { pkg: string; file: string }[] = [
  { pkg: 'qemu-system-x86', file: '/usr/bin/qemu-system-x86_64' },
  { pkg: 'busybox-static', file: '/bin/busybox' },
  { pkg: 'cpio', file: '/usr/bin/cpio' },
  { pkg: 'kmod', file: '/usr/sbin/depmod' },
  { pkg: 'xz-utils', file: '/usr/bin/xz' },
];

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function installed(pkg: string): boolean {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Status}', pkg], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .includes('install ok installed');
  } catch {
    return false;
  }
}

/** Install the lab's Debian packages that are missing (root only; otherwise a clear error saying what to run). */
export async function ensurePackages(log: (m: string) => void = () => {}): Promise<void> {
  const missing = LAB_PACKAGES.filter((p) => !installed(p.pkg) || !existsSync(p.file)).map((p) => p.pkg);
  if (missing.length === 0) return;
  if (!isRoot()) {
    throw new ApplianceError('ERR_IMAGE_NOT_ROOT', `the lab needs Debian packages that are not installed: ${missing.join(' ')}; only root can install them`, {
      fix: `as root: apt-get update && apt-get install -y ${missing.join(' ')}  (or: npm run setup)`,
    });
  }
  log(`installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const first = await execTool('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, timeoutMs: 900_000 });
  if (first.code !== 0) {
    await execOk('apt-get', ['update', '-qq'], { what: 'apt-get update', env, timeoutMs: 300_000 });
    await execOk('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
      what: `installing ${missing.join(' ')}`,
      env,
      timeoutMs: 900_000,
    });
  }
}

export interface LabImage {
  kernel: KernelTree;
  /** What QEMU boots: the uncompressed ELF vmlinux (PVH entry, seconds faster under TCG) when it could be unpacked, else the bzImage. */
  bootKernel: string;
  /** The initramfs file. */
  initrd: string;
  /** Modules the /init loads, in order. */
  modules: readonly string[];
  /** True when nothing had to be fetched or built. */
  cached: boolean;
  /** How long set-up took (ms). */
  ms: number;
}

export interface SetupOptions {
  cacheDir?: string;
  log?: (msg: string) => void;
}

/** Make the lab bootable: packages, kernel, initramfs. Idempotent; fast once cached. */
export async function setupLab(options: SetupOptions = {}): Promise<LabImage> {
  const t0 = performance.now();
  const log = options.log ?? (() => {});
  const cacheDir = options.cacheDir ?? labCacheDir();
  await ensurePackages(log);
  const kernel = await fetchKernel({ cacheDir: join(cacheDir, 'kernel'), log });
  const bootKernel = extractVmlinux(kernel, log) ?? kernel.vmlinuz;
  const loadOrder = kernelModules(kernel, LAB_MODULES).map((m) => m.path.replace(/\.(xz|zst|gz)$/, ''));
  const init = labInitScript({ kver: kernel.kver, modules: loadOrder, vfioIds: LAB_VFIO_IDS });
  const image = buildInitramfs({ kernel, modules: LAB_MODULES, init, cacheDir: join(cacheDir, 'initrd'), name: 'lab' });
  if (!image.cached) log(`built ${image.path} (${image.modules.length} modules)`);
  return { kernel, bootKernel, initrd: image.path, modules: image.modules.map((m) => m.name), cached: image.cached, ms: performance.now() - t0 };
}
