/**
 * The driver's module graph as the mutator needs it: the module a policy names and every file it
 * reaches by static relative import (found with es-module-lexer, as the manager's code image is,
 * sandbox/manager/driver-code.ts), each with its source, the offsets of its import specifiers and
 * declarations, and its path relative to the graph's common folder (how a mutation names a file).
 */
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve, sep } from 'node:path';
import { init, parse } from 'es-module-lexer';
import { MutateError } from './errors.js';

export interface GraphImport {
  /** Offsets of the specifier's text (inside the quotes). */
  readonly s: number;
  readonly e: number;
  /** Offsets of the whole import declaration. */
  readonly ss: number;
  readonly se: number;
  /** Absolute path of the imported file. */
  readonly file: string;
}

export interface GraphFile {
  readonly path: string;
  /** Relative to the graph's root, with `/`. */
  readonly rel: string;
  readonly source: string;
  readonly imports: readonly GraphImport[];
}

export interface DriverGraph {
  readonly entry: string;
  readonly root: string;
  readonly files: ReadonlyMap<string, GraphFile>;
}

/** Specifiers of `source` that are static relative imports, resolved against `file`. */
export async function relativeImports(source: string, file: string): Promise<GraphImport[]> {
  await init();
  let imports;
  try {
    [imports] = parse(source, file);
  } catch (e) {
    throw new MutateError('ERR_MUTATE_SCAN', `${file} is not an ES module this mutator can read (${(e as Error).message.split('\n')[0]})`, {
      fix: 'mutate the built JavaScript module the policy names (npm run build)',
    });
  }
  const out: GraphImport[] = [];
  for (const imp of imports) {
    if (imp.type !== 'static' && imp.type !== 'reexport-star') continue;
    const spec = imp.specifier;
    if (!spec.startsWith('./') && !spec.startsWith('../')) continue;
    out.push({ s: imp.start, e: imp.end, ss: imp.importStart, se: imp.importEnd, file: resolve(dirname(file), spec) });
  }
  return out;
}

export async function readGraph(entry: string): Promise<DriverGraph> {
  const sources = new Map<string, { source: string; imports: GraphImport[] }>();
  const queue = [entry];
  while (queue.length) {
    const file = queue.shift()!;
    if (sources.has(file)) continue;
    let source: string;
    try {
      source = readFileSync(file, 'utf8');
    } catch (e) {
      throw new MutateError('ERR_MUTATE_SCAN', `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)}), reached from ${entry}`, {
        fix: 'run npm run build; check the module path in the policy',
      });
    }
    const imports = await relativeImports(source, file);
    sources.set(file, { source, imports });
    for (const i of imports) queue.push(i.file);
  }
  let root = dirname(entry);
  for (const f of sources.keys()) while (root !== dirname(root) && !f.startsWith(root + sep)) root = dirname(root);
  const files = new Map<string, GraphFile>();
  for (const [path, v] of sources) files.set(path, { path, rel: relative(root, path).split(sep).join('/'), ...v });
  return { entry, root, files };
}

/** `*` matches within one path segment, `**` across segments; matched against a path relative to the driver module's folder. */
export function globMatch(pattern: string, path: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else re += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(path);
}
