/**
 * Kernel modules for a thin initramfs: resolve the modules asked for and everything they depend on,
 * from the kernel's own `modules.dep` (written by depmod) and `modules.builtin`, in an order in which
 * `insmod` can load them one by one (dependencies first).
 *
 * Module names compare with '-' and '_' as the same character, as the kernel does (`vfio_pci` is
 * the file `vfio-pci.ko`).
 */
import { ApplianceError } from './errors.js';

/** VFIO type1 and vfio-pci with what they need, in load order: what the lab and an appliance both load. */
export const VFIO_MODULES: readonly string[] = ['irqbypass', 'vfio', 'vfio_iommu_type1', 'vfio_virqfd', 'vfio_pci_core', 'vfio_pci'];

export interface ModuleIndex {
  /** Normalised name -> path relative to /lib/modules/KVER (`kernel/drivers/vfio/vfio.ko`). */
  readonly paths: Map<string, string>;
  /** Normalised name -> normalised names of its direct dependencies. */
  readonly deps: Map<string, string[]>;
  /** Normalised names of modules built into the kernel image. */
  readonly builtin: Set<string>;
}

/** `vfio-pci`, `kernel/drivers/vfio/vfio-pci.ko.xz` -> `vfio_pci` */
export function moduleName(pathOrName: string): string {
  const base = pathOrName.slice(pathOrName.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/** Parse the text of modules.dep (`path: dep dep`) and modules.builtin (one path a line). */
export function parseModuleIndex(modulesDep: string, modulesBuiltin = ''): ModuleIndex {
  const paths = new Map<string, string>();
  const deps = new Map<string, string[]>();
  for (const [i, raw] of modulesDep.split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const colon = line.indexOf(':');
    if (colon < 0)
      throw new ApplianceError('ERR_IMAGE_MODULE_INDEX', `modules.dep line ${i + 1} has no ':': '${line}'`, {
        fix: 'rerun depmod -b ROOT KVER on the unpacked kernel',
      });
    const path = line.slice(0, colon).trim();
    const name = moduleName(path);
    paths.set(name, path);
    deps.set(
      name,
      line
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(moduleName),
    );
  }
  const builtin = new Set(
    modulesBuiltin
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .map(moduleName),
  );
  return { paths, deps, builtin };
}

/**
 * The modules to load for `wanted`, dependencies first, each once; built-in ones are left out.
 * A module that is neither a module nor built in is an error naming it.
 */
export function resolveModules(index: ModuleIndex, wanted: readonly string[]): { name: string; path: string }[] {
  const order: { name: string; path: string }[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (name: string, chain: string[]): void => {
    if (done.has(name) || index.builtin.has(name)) return;
    const path = index.paths.get(name);
    if (path === undefined) {
      throw new ApplianceError(
        'ERR_IMAGE_MODULE_MISSING',
        `kernel module '${name}' is neither in modules.dep nor built in${chain.length ? ` (needed by ${chain.join(' <- ')})` : ''}`,
        { fix: 'check the kernel flavour has this driver (CONFIG_... =m or =y), or drop the module from the list' },
      );
    }
    if (visiting.has(name))
      throw new ApplianceError('ERR_IMAGE_MODULE_INDEX', `modules.dep has a dependency cycle through '${name}'`, {
        fix: 'rerun depmod -b ROOT KVER on the unpacked kernel; a cycle that stays is a broken kernel package',
      });
    visiting.add(name);
    for (const d of index.deps.get(name) ?? []) visit(d, [name, ...chain]);
    visiting.delete(name);
    done.add(name);
    order.push({ name, path });
  };
  for (const w of wanted) visit(moduleName(w), []);
  return order;
}
