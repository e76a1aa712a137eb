/**
 * Which driver a policy names, and its code as the container gets it (sandbox/abi/code.ts).
 *
 * A policy names a built-in driver (`driver: nvme`, `driver: e1000e`: modules of this build,
 * drivers/<name>/sandbox.js) or an external module (`driver: { module: ./my-driver.js }`, resolved
 * by the policy loader to an absolute path). Either way the manager reads the module and every
 * file it reaches by static relative import (found with es-module-lexer, never a regex) into one
 * image, once per sandbox start, and hands each container a fresh copy. The manager never
 * evaluates driver code: it only reads it. Imports of anything else (a `node:` module, a package,
 * an absolute path) are left in the code, and the container's linker refuses them by name.
 *
 * Project files come from the build (dist/). Run from the sources (tsx), a built-in driver's
 * module is taken from dist/ all the same (`npm run build` first); an external module must be
 * JavaScript.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, parse } from 'es-module-lexer';
import type { DriverKind } from '../../drivers/contract/driver.js';
import type { Policy } from '../../policies/types.js';
import { CODE_MAX_BYTES, CODE_MAX_FILES, encodeCode, validCodePath, type CodeFile } from '../abi/code.js';
import { SandboxError } from './errors.js';

/** The built-in drivers: name -> kind and module (relative to the build's root). */
export const BUILTIN_DRIVERS: Readonly<Record<string, { kind: DriverKind; module: string }>> = {
  nvme: { kind: 'block', module: 'drivers/nvme/sandbox.js' },
  e1000e: { kind: 'net', module: 'drivers/e1000e/sandbox.js' },
};

export interface DriverRef {
  /** For HELLO and logs: the built-in name, or the module's file name (cut to 16 characters). */
  name: string;
  /** The kind a built-in driver has; undefined for a module (it declares its own, checked in the container against the device's). */
  kind: DriverKind | undefined;
  /** Absolute path of the module. */
  entry: string;
  /** How the policy names it: `nvme`, `module:/abs/path.js`. */
  label: string;
}

/** The injector's container entry, relative to the build's root (campaigns/README.md). */
export const CAMPAIGN_INJECTOR = 'campaigns/inject/container.js';

/**
 * A fault-injection campaign's plan for one sandbox (campaigns/inject/plan.ts, as data): given to a
 * Supervisor by the campaign runner only; the manager of `dmabox up` never passes one (manager.ts
 * strips it), and no policy field can ask for it.
 */
export interface CampaignInjection {
  readonly plan: Readonly<Record<string, number | string | readonly string[]>>;
}

/** The root of the build this module runs from (dist/ when built; the sources' dist/ under tsx). */
function buildRoot(): string {
  const here = fileURLToPath(import.meta.url);
  const root = resolve(dirname(here), '..', '..');
  return here.endsWith('.ts') ? join(root, 'dist') : root;
}

export function driverRef(policy: Policy): DriverRef {
  const d = policy.driver;
  if (d.module !== undefined) {
    const file =
      basename(d.module)
        .replace(/\.m?js$/, '')
        .replace(/[^ -~]/g, '_')
        .slice(0, 16) || 'driver';
    return { name: file, kind: undefined, entry: d.module, label: `module:${d.module}` };
  }
  const b = d.name === undefined ? undefined : BUILTIN_DRIVERS[d.name];
  if (!b || d.name === undefined)
    throw new SandboxError('ERR_SANDBOX_DRIVER', `policy ${policy.name}: no built-in driver '${d.name ?? ''}'`, {
      fix: `name one of ${Object.keys(BUILTIN_DRIVERS).join(', ')}, or a driver module (driver: { module: ./file.js })`,
    });
  return { name: d.name, kind: b.kind, entry: join(buildRoot(), b.module), label: d.name };
}

function isRelative(s: string): boolean {
  return s.startsWith('./') || s.startsWith('../');
}

/**
 * The driver's code image: the module and every file it reaches by static relative import, with
 * paths relative to their common folder. Throws SandboxError (ERR_SANDBOX_DRIVER) naming the file
 * when one cannot be read or lexed.
 */
export async function bundleDriver(ref: DriverRef, campaign?: CampaignInjection): Promise<Uint8Array> {
  await init();
  // A campaign's image: a generated entry module that starts the driver through the fault
  // injector (campaigns/inject/container.js). Only a supervisor given `campaign` asks for it.
  const virtual = new Map<string, string>();
  let entry = ref.entry;
  if (campaign) {
    entry = join(buildRoot(), 'campaign-entry.js');
    const rel = (to: string) => {
      const r = relative(dirname(entry), to).split(sep).join('/');
      return r.startsWith('.') ? r : `./${r}`;
    };
    virtual.set(
      entry,
      [
        `import * as driver from '${rel(ref.entry)}';`,
        `import { startInjected } from '${rel(join(buildRoot(), CAMPAIGN_INJECTOR))}';`,
        'export const contract = driver.contract;',
        'export const name = driver.name;',
        'export const kind = driver.kind;',
        `const plan = ${JSON.stringify(campaign.plan)};`,
        'export function start(ctx) { return startInjected(driver, ctx, plan); }',
        '',
      ].join('\n'),
    );
  }
  if (!ref.entry.endsWith('.js') && !ref.entry.endsWith('.mjs')) {
    throw new SandboxError('ERR_SANDBOX_DRIVER', `driver module ${ref.entry}: not JavaScript`, {
      fix: 'build the driver (npm run build) and name the .js file',
    });
  }
  const sources = new Map<string, string>();
  const queue = [entry];
  let bytes = 0;
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (sources.has(file)) continue;
    let source: string | undefined;
    let why = 'not a regular file';
    try {
      source = virtual.get(file);
      if (source === undefined && statSync(file).isFile()) source = readFileSync(file, 'utf8');
    } catch (e) {
      why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    }
    if (source === undefined) {
      const from = [...sources.keys()].find((f) => f !== file);
      throw new SandboxError(
        'ERR_SANDBOX_DRIVER',
        `driver ${ref.label}: cannot read ${file} (${why})${file === ref.entry ? '' : `, imported by the driver's code${from ? ` (first from ${from})` : ''}`}`,
        {
          fix: ref.kind ? 'run npm run build' : 'check the module path in the policy and that every file it imports exists',
        },
      );
    }
    bytes += source.length;
    if (sources.size >= CODE_MAX_FILES || bytes > CODE_MAX_BYTES) {
      throw new SandboxError('ERR_SANDBOX_DRIVER', `driver ${ref.label}: more than ${CODE_MAX_FILES} files or ${CODE_MAX_BYTES} bytes of code`, {
        fix: 'a driver module should reach only the contract, the kit, spec/ and its own files',
      });
    }
    sources.set(file, source);
    let imports;
    try {
      [imports] = parse(source, file);
    } catch (e) {
      throw new SandboxError(
        'ERR_SANDBOX_DRIVER',
        `driver ${ref.label}: ${file} is not an ES module this manager can read (${(e as Error).message.split('\n')[0]})`,
      );
    }
    for (const imp of imports) {
      if (imp.type !== 'static' && imp.type !== 'reexport-star') continue;
      const spec = imp.specifier;
      if (typeof spec === 'string' && isRelative(spec)) queue.push(resolve(dirname(file), spec));
    }
  }
  const files = [...sources.keys()];
  let root = dirname(files[0]!);
  for (const f of files) while (root !== dirname(root) && !f.startsWith(root + sep)) root = dirname(root);
  const list: CodeFile[] = files.map((f) => ({ path: relative(root, f).split(sep).join('/'), source: sources.get(f)! }));
  const bad = list.find((f) => !validCodePath(f.path));
  if (bad)
    throw new SandboxError('ERR_SANDBOX_DRIVER', `driver ${ref.label}: file ${bad.path} has a name the code image cannot carry`, {
      fix: 'name driver files with letters, digits, . _ - @ + and end them in .js or .mjs',
    });
  return encodeCode({ name: ref.name, files: list, entry: 0 });
}

/** Whether a built-in driver's module exists in the build (false under tsx without a build). */
export function builtinAvailable(name: string): boolean {
  const b = BUILTIN_DRIVERS[name];
  return b !== undefined && existsSync(join(buildRoot(), b.module));
}
