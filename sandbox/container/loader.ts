/**
 * Loading the driver's code inside the container: the image the manager handed over on fd 4
 * (sandbox/abi/code.ts) is read before confinement (`readCodeBytes`, then `decodeCode`) and
 * evaluated only after (`loadDriver`), so no driver code, built-in or external, runs unconfined,
 * and the container opens no file to get it.
 *
 * Each file becomes a `vm.SourceTextModule` (node --experimental-vm-modules) whose imports
 * resolve only within the image: a relative specifier resolved against the importing file's path
 * must name a file of the image; anything else (`node:fs`, a package, an absolute path, a file
 * that is not in the image) is refused at link time with ERR_CONTAINER_IMPORT naming the import,
 * and a dynamic `import()` is held to the same rule when it runs. The modules run in the
 * container's own realm: the linker decides what a driver's code is made of, and the seccomp
 * profile and the IOMMU decide what it can do (a vm context is not a security boundary, and none
 * is pretended here).
 */
import { readSync } from 'node:fs';
import vm from 'node:vm';
import { posix } from 'node:path';
import { DRIVER_CONTRACT, DRIVER_KINDS, type DriverKind, type DriverModule } from '../../drivers/contract/driver.js';
import { CODE_HEADER_BYTES, decodeCodeHeader, type CodeImage } from '../abi/code.js';
import { ContainerError } from './errors.js';

/** The code image's bytes, exactly as many as its header says, from an inherited fd (pread: the fd's offset is not used). */
export function readCodeBytes(fd: number): Buffer {
  const head = Buffer.alloc(CODE_HEADER_BYTES);
  readFully(fd, head, 0);
  const h = decodeCodeHeader(head);
  const all = Buffer.alloc(h.bytes);
  readFully(fd, all, 0);
  return all;
}

function readFully(fd: number, into: Buffer, position: number): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  if (done < into.length) {
    throw new ContainerError('ERR_CONTAINER_DRIVER', `the driver code on fd ${fd} ends after ${done} of ${into.length} bytes`, {
      fix: 'the container and the manager must come from the same build',
    });
  }
}

const SCHEME = 'driver:///';

/** The identifier a file of the image has in stack traces and import.meta.url. */
function identifier(path: string): string {
  return `${SCHEME}${path}`;
}

interface Loaded {
  readonly modules: Map<string, vm.SourceTextModule>;
  readonly pathOf: Map<vm.Module, string>;
}

function refuse(from: string, specifier: string, why: string): ContainerError {
  return new ContainerError(
    'ERR_CONTAINER_IMPORT',
    `driver code ${from} imports '${specifier.slice(0, 200)}': ${why}; a driver may import only its own files`,
    {
      fix: "import only the driver contract (drivers/contract), the kit (drivers/kit), spec/ and the driver's own files, by relative path; everything else reaches the driver through its start(ctx)",
    },
  );
}

/** The file of the image `specifier` names from `from`, or a refusal. */
function resolveIn(l: Loaded, from: string, specifier: string): vm.SourceTextModule {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) {
    throw refuse(from, specifier, specifier.startsWith('node:') ? 'a Node module' : specifier.startsWith('/') ? 'an absolute path' : 'a package or builtin');
  }
  const path = posix.normalize(posix.join(posix.dirname(from), specifier));
  const m = path.startsWith('../') ? undefined : l.modules.get(path);
  if (!m) throw refuse(from, specifier, "not a file of the driver's code");
  return m;
}

/** An image's entry module, evaluated, not yet checked against the contract. */
export interface EvaluatedDriver {
  readonly namespace: Record<string, unknown>;
  readonly path: string;
}

/**
 * Evaluate the image's entry module (after confinement) and check it against the driver contract:
 * its contract version, its name, its kind (it must be `kind`, the device's) and `start`.
 */
export async function loadDriver(image: CodeImage, kind: DriverKind): Promise<DriverModule> {
  return checkDriver(await evaluateDriver(image), kind);
}

/** Evaluate the image's entry module and every file it imports (after confinement): link errors are ERR_CONTAINER_IMPORT. */
export async function evaluateDriver(image: CodeImage): Promise<EvaluatedDriver> {
  const l: Loaded = { modules: new Map(), pathOf: new Map() };
  const dynamicImport = async (specifier: string, referrer: vm.Module | vm.Script): Promise<vm.Module> => {
    const from = l.pathOf.get(referrer as vm.Module) ?? '(driver code)';
    const m = resolveIn(l, from, specifier);
    if (m.status === 'unlinked') await m.link(linker);
    if (m.status === 'linked') await m.evaluate();
    return m;
  };
  for (const f of image.files) {
    const m = new vm.SourceTextModule(f.source, {
      identifier: identifier(f.path),
      initializeImportMeta: (meta) => {
        meta.url = identifier(f.path);
      },
      importModuleDynamically: dynamicImport as never,
    });
    l.modules.set(f.path, m);
    l.pathOf.set(m, f.path);
  }
  const linker = (specifier: string, referencing: vm.Module): vm.Module => resolveIn(l, l.pathOf.get(referencing) ?? '(driver code)', specifier);
  const entryPath = image.files[image.entry]!.path;
  const entry = l.modules.get(entryPath)!;
  await entry.link(linker);
  await entry.evaluate();
  return { namespace: entry.namespace as Record<string, unknown>, path: entryPath };
}

/** An evaluated driver checked against the contract and the device's kind (ERR_CONTAINER_DRIVER). */
export function checkDriver(evaluated: EvaluatedDriver, kind: DriverKind): DriverModule {
  const { namespace: ns, path } = evaluated;
  const bad = (what: string, fix: string): ContainerError => new ContainerError('ERR_CONTAINER_DRIVER', `driver module ${path}: ${what}`, { fix });
  if (ns.contract !== DRIVER_CONTRACT) {
    throw bad(
      `contract ${JSON.stringify(ns.contract)}; this container serves driver contract ${DRIVER_CONTRACT}`,
      `export const contract = ${DRIVER_CONTRACT} and build the driver against this dmabox's drivers/contract`,
    );
  }
  if (typeof ns.name !== 'string' || !/^[ -~]{1,16}$/.test(ns.name))
    throw bad('no name of 1 to 16 printable ASCII characters', "export const name = 'my-driver'");
  if (typeof ns.kind !== 'string' || !(DRIVER_KINDS as readonly string[]).includes(ns.kind))
    throw bad(`kind ${JSON.stringify(ns.kind)} is none of ${DRIVER_KINDS.join(', ')}`, "export const kind = 'block' (a disk) or 'net' (a NIC)");
  if (ns.kind !== kind)
    throw bad(`declares kind '${ns.kind}', and this sandbox's device needs a ${kind} driver`, "name a driver of the device's kind in the policy");
  if (typeof ns.start !== 'function') throw bad('exports no start function', 'export async function start(ctx) { ... return device; }');
  return ns as unknown as DriverModule;
}
