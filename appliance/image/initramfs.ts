/**
 * A thin initramfs: static busybox, the kernel modules asked for (with their dependencies), an
 * /init script, and any extra files. The lab's /init mounts the host's root and chroots into it, so
 * the image never holds the project and never needs rebuilding when code changes; a secure appliance
 * image is the same builder with a different /init and more files.
 *
 * The image is cached by content: its file name carries a hash of the kernel version, the module
 * list, the busybox binary, the /init text and the extra files, so a rerun with the same inputs
 * reuses it and any change builds a new one.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { buildCpio, type CpioEntry } from './cpio.js';
import { ApplianceError } from './errors.js';
import type { KernelTree } from './kernel.js';
import { parseModuleIndex, resolveModules } from './modules.js';

/** Bumped when the layout this file produces changes, so old cached images are not reused. */
const LAYOUT_VERSION = 1;

export interface InitramfsSpec {
  kernel: KernelTree;
  /** Modules to include and load (dependencies are added); names as in `lsmod` (vfio_pci). */
  modules: readonly string[];
  /** The /init script text (starts with `#!/bin/busybox sh`). */
  init: string;
  /** The static busybox binary (default /bin/busybox from Debian's busybox-static). */
  busybox?: string;
  /** Extra regular files: path in the image -> contents (mode 0644), or contents and mode. */
  files?: Record<string, string | Uint8Array | { data: Uint8Array; mode: number }>;
  /** Where images are cached. */
  cacheDir: string;
  /** A short name for the image file (`lab`). */
  name: string;
}

export interface Initramfs {
  readonly path: string;
  /** Modules in load order, paths relative to /lib/modules/KVER inside the image. */
  readonly modules: readonly { name: string; path: string }[];
  readonly key: string;
  /** True when the image was already in the cache. */
  readonly cached: boolean;
}

/** The modules in load order (reads modules.dep and modules.builtin of the kernel tree). */
export function kernelModules(kernel: KernelTree, wanted: readonly string[]): { name: string; path: string }[] {
  const depFile = join(kernel.modulesDir, 'modules.dep');
  if (!existsSync(depFile))
    throw new ApplianceError('ERR_IMAGE_MODULE_MISSING', `${depFile} is missing`, { fix: `run depmod -b ${kernel.root} ${kernel.kver}` });
  const builtinFile = join(kernel.modulesDir, 'modules.builtin');
  const index = parseModuleIndex(readFileSync(depFile, 'utf8'), existsSync(builtinFile) ? readFileSync(builtinFile, 'utf8') : '');
  return resolveModules(index, wanted);
}

/** A module file as insmod can load it: compressed ones are decompressed on the host. */
function moduleBytes(file: string): Buffer {
  if (file.endsWith('.ko')) return readFileSync(file);
  const tool = file.endsWith('.xz') ? ['xz', '-dc'] : file.endsWith('.zst') ? ['zstd', '-dc'] : file.endsWith('.gz') ? ['gzip', '-dc'] : undefined;
  if (!tool) throw new ApplianceError('ERR_IMAGE_MODULE_INDEX', `module file ${file} is neither .ko nor compressed with xz, zstd or gzip`);
  return execFileSync(tool[0]!, [...tool.slice(1), file], { maxBuffer: 64 << 20 });
}

/** Build (or reuse from the cache) the image described by `spec`. */
export function buildInitramfs(spec: InitramfsSpec): Initramfs {
  const busybox = spec.busybox ?? '/bin/busybox';
  if (!existsSync(busybox)) {
    throw new ApplianceError('ERR_IMAGE_TOOL_MISSING', `${busybox} is missing`, { fix: 'install busybox-static (`apt-get install busybox-static`)' });
  }
  const modules = kernelModules(spec.kernel, spec.modules);
  const busyboxBytes = readFileSync(busybox);
  const files = Object.entries(spec.files ?? {}).sort(([a], [b]) => a.localeCompare(b));

  const h = createHash('sha256');
  h.update(`layout ${LAYOUT_VERSION}\nkernel ${spec.kernel.kver}\nmodules ${modules.map((m) => m.path).join(' ')}\n`);
  h.update(busyboxBytes);
  h.update(`\ninit\n${spec.init}`);
  for (const [p, d] of files) {
    h.update(`\nfile ${p}${typeof d === 'object' && 'mode' in d ? ` ${d.mode.toString(8)}` : ''}\n`);
    h.update(typeof d === 'object' && 'mode' in d ? d.data : d);
  }
  const key = h.digest('hex').slice(0, 16);
  mkdirSync(spec.cacheDir, { recursive: true });
  const path = join(spec.cacheDir, `${spec.name}-${spec.kernel.kver}-${key}.cpio`);
  // Compressed modules are stored decompressed: insmod in the image loads the plain .ko.
  const loadList = modules.map((m) => ({ name: m.name, path: m.path.replace(/\.(xz|zst|gz)$/, '') }));
  if (existsSync(path)) return { path, modules: loadList, key, cached: true };

  const entries: CpioEntry[] = [];
  const dirs = new Set<string>();
  const dir = (p: string): void => {
    const parts = p.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        entries.push({ type: 'dir', path: d });
      }
    }
  };
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'run', 'tmp', 'mnt', 'etc', 'root']) dir(d);
  // The kernel opens /dev/console for /init before devtmpfs is mounted: it must be in the image.
  entries.push({ type: 'chardev', path: 'dev/console', major: 5, minor: 1 });
  entries.push({ type: 'file', path: 'bin/busybox', data: busyboxBytes, mode: 0o755 });
  const modRoot = `lib/modules/${spec.kernel.kver}`;
  for (const [i, m] of modules.entries()) {
    const rel = loadList[i]!.path;
    dir(`${modRoot}/${rel.slice(0, rel.lastIndexOf('/'))}`);
    entries.push({ type: 'file', path: `${modRoot}/${rel}`, data: moduleBytes(join(spec.kernel.modulesDir, m.path)) });
  }
  for (const [p, d] of files) {
    const rel = p.replace(/^\/+/, '');
    if (rel.includes('/')) dir(rel.slice(0, rel.lastIndexOf('/')));
    if (typeof d === 'object' && 'mode' in d) entries.push({ type: 'file', path: rel, data: d.data, mode: d.mode });
    else entries.push({ type: 'file', path: rel, data: d, mode: 0o644 });
  }
  entries.push({ type: 'file', path: 'init', data: spec.init, mode: 0o755 });

  const tmp = `${path}.partial-${process.pid}`;
  writeFileSync(tmp, buildCpio(entries));
  renameSync(tmp, path);
  return { path, modules: loadList, key, cached: false };
}
