/**
 * Reading the repository's own sources from a test (compiled in dist/test or run from the sources):
 * the import rules and the error-code tables of the e1000e areas are checked on the text.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

let dir = dirname(fileURLToPath(import.meta.url));
while (!readdirSync(dir).includes('package.json')) dir = dirname(dir);
/** The repository root. */
export const ROOT = dir;

/** The .ts files of a folder (relative to the root), not descending. */
export function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(folder, f));
}

export function read(file: string): string {
  return readFileSync(join(ROOT, file), 'utf8');
}

/** Every module a file imports (static `from '...'` and dynamic `import('...')`), as root-relative paths. */
export function importsOf(file: string): string[] {
  const text = read(file);
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import\()\s*'(\.[^']+)'/g)) {
    out.push(relative(ROOT, join(ROOT, dirname(file), m[1]!)).replace(/\.js$/, '.ts'));
  }
  return out;
}

/** The codes of a README's `| code | meaning | fix |` table: code, meaning and fix of each row. */
export function codeTable(readme: string): Map<string, { meaning: string; fix: string }> {
  const lines = read(readme).split('\n');
  const at = lines.findIndex((l) => l.trim() === '| code | meaning | fix |');
  const rows = new Map<string, { meaning: string; fix: string }>();
  if (at < 0) return rows;
  for (const l of lines.slice(at + 2)) {
    const m = /^\| `([A-Z0-9_]+)` \| (.+?) \| (.+?) \|$/.exec(l.trim());
    if (m === null) break;
    rows.set(m[1]!, { meaning: m[2]!, fix: m[3]! });
  }
  return rows;
}

/** The string literals of a union type `export type NAME = | 'A' | 'B';` in a file. */
export function unionOf(file: string, name: string): string[] {
  const m = new RegExp(`export type ${name} =([^;]+);`).exec(read(file));
  return m === null ? [] : [...m[1]!.matchAll(/'([A-Z0-9_]+)'/g)].map((x) => x[1]!);
}

/** Every `'PREFIX...'` string literal in the given files: the codes that code uses (throws, or hands to a helper that throws). */
export function usedCodes(files: string[], prefix: string): Set<string> {
  const out = new Set<string>();
  for (const f of files) for (const m of read(f).matchAll(/'(ERR_[A-Z0-9_]+)'/g)) if (m[1]!.startsWith(prefix)) out.add(m[1]!);
  return out;
}
