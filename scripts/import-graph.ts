/**
 * The project's import graph, read with TypeScript's parser (the TypeScript 6 API that the lint
 * uses; the build's TypeScript 7 has no JavaScript API). Shared by the architecture check
 * (scripts/architecture.ts, over the TypeScript sources) and the trusted-code count
 * (scripts/tcb.ts, over the JavaScript that tsc emitted, which is what Node loads).
 *
 * An edge is one module specifier in one file: a static `import` (also `import type`), an
 * `export ... from`, an `import x = require()`, an `import('literal')` call, a `require('literal')`
 * call (through `createRequire`) or an `import('x')` type. A specifier resolves to a project file, a workspace package's entry (linux-sys,
 * vfio-bindings: by their package.json `exports`), a `node:` module, another package, or nothing
 * (a relative path to no file: reported, never dropped).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The repository root: the nearest folder above this file whose package.json declares workspaces. */
export const REPO_ROOT = (() => {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && 'workspaces' in (JSON.parse(readFileSync(pkg, 'utf8')) as object)) return dir;
    if (dirname(dir) === dir) throw new Error('scripts/import-graph: no package.json with workspaces above this file: run it inside the dmabox repository');
  }
})();

/** How a file refers to another. */
export type ImportKind = 'import' | 'import type' | 'export from' | 'dynamic import' | 'import type()' | 'require';

export interface ImportRef {
  specifier: string;
  kind: ImportKind;
  /** 1-based line of the specifier. */
  line: number;
}

/** What a specifier resolved to. Paths are repository-relative with forward slashes. */
export type Target =
  { type: 'file'; path: string } | { type: 'builtin'; name: string } | { type: 'package'; name: string } | { type: 'unresolved'; specifier: string };

export interface Edge {
  from: string;
  to: Target;
  kind: ImportKind;
  line: number;
  specifier: string;
}

/** Every module specifier `text` (a TypeScript or JavaScript file) names, in source order. */
export function parseImports(fileName: string, text: string): ImportRef[] {
  const kind = fileName.endsWith('.js') || fileName.endsWith('.mjs') ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, kind);
  const out: ImportRef[] = [];
  const add = (node: ts.Node, kind: ImportKind): void => {
    if (!ts.isStringLiteralLike(node)) return; // `import(variable)` names no file: not an edge
    out.push({ specifier: node.text, kind, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      add(node.moduleSpecifier, importIsTypeOnly(node) ? 'import type' : 'import');
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      add(node.moduleSpecifier, 'export from');
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node.isTypeOnly ? 'import type' : 'import');
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments.length > 0) {
      add(node.arguments[0]!, 'dynamic import');
    } else if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'require' && node.arguments.length === 1) {
      add(node.arguments[0]!, 'require');
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, 'import type()');
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

function importIsTypeOnly(node: ts.ImportDeclaration): boolean {
  const clause = node.importClause;
  if (!clause) return false; // `import 'x'`: loaded for its effects
  if (clause.phaseModifier === ts.SyntaxKind.TypeKeyword) return true;
  const named = clause.namedBindings;
  return !clause.name && named !== undefined && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
}

/** A workspace package: where its sources and its emitted JavaScript are. */
export interface Workspace {
  name: string;
  dir: string;
  /** Entry for TypeScript sources (the `source` export condition). */
  sourceEntry: string;
  /** Entry for the emitted JavaScript (the `default` export condition). */
  distEntry: string;
}

const toPosix = (p: string): string => p.split(sep).join('/');

/** The npm workspaces of the root package.json that export a `source` entry. */
export function readWorkspaces(root: string = REPO_ROOT): Workspace[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { workspaces?: string[] };
  const out: Workspace[] = [];
  for (const dir of pkg.workspaces ?? []) {
    const wp = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as { name: string; exports?: { '.'?: { source?: string; default?: string } } };
    const entry = wp.exports?.['.'];
    if (!entry?.source || !entry.default) continue;
    out.push({ name: wp.name, dir, sourceEntry: posix.join(dir, entry.source), distEntry: posix.join(dir, entry.default) });
  }
  return out;
}

const BUILTINS = new Set(builtinModules);

/** The package name of a bare specifier (`@scope/name/sub` -> `@scope/name`). */
function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

export interface ResolveOptions {
  root?: string;
  /** `source`: specifiers name .js files whose sources are .ts beside them; `dist`: emitted JavaScript. */
  mode: 'source' | 'dist';
  workspaces?: Workspace[];
}

/** Resolve `spec`, written in repository file `from`, the way Node (dist) or tsc with NodeNext (source) would. */
export function resolveSpecifier(from: string, spec: string, opts: ResolveOptions): Target {
  const root = opts.root ?? REPO_ROOT;
  if (spec.startsWith('node:')) return { type: 'builtin', name: spec };
  if (spec.startsWith('.') || spec.startsWith('/')) {
    const base = spec.startsWith('/') ? toPosix(relative(root, spec)) : posix.normalize(posix.join(posix.dirname(from), spec));
    const candidates = opts.mode === 'source' ? sourceCandidates(base) : [base, `${base}.js`, posix.join(base, 'index.js')];
    for (const c of candidates) if (isFile(join(root, c))) return { type: 'file', path: c };
    return { type: 'unresolved', specifier: spec };
  }
  if (BUILTINS.has(spec) || BUILTINS.has(spec.split('/')[0]!)) return { type: 'builtin', name: `node:${spec}` };
  const name = packageName(spec);
  const ws = (opts.workspaces ?? readWorkspaces(root)).find((w) => w.name === name);
  if (ws) {
    if (spec !== name) return { type: 'unresolved', specifier: spec }; // workspaces export only '.'
    return { type: 'file', path: opts.mode === 'source' ? ws.sourceEntry : ws.distEntry };
  }
  return { type: 'package', name };
}

function sourceCandidates(base: string): string[] {
  for (const [js, tsExt] of [
    ['.js', '.ts'],
    ['.mjs', '.mts'],
    ['.cjs', '.cts'],
  ] as const) {
    if (base.endsWith(js)) return [base.slice(0, -js.length) + tsExt, base];
  }
  return [base, `${base}.ts`, posix.join(base, 'index.ts')];
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

const SKIP_DIRS = new Set(['node_modules', 'dist', 'coverage', '.cache', '.git']);

/** Every TypeScript source of the repository (no declaration files), repository-relative, sorted. */
export function listSources(root: string = REPO_ROOT): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      if (e.name.startsWith('.') && e.isDirectory()) continue;
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name)) walk(p);
      } else if (e.isFile() && /\.(ts|mts|cts)$/.test(e.name) && !/\.d\.(ts|mts|cts)$/.test(e.name)) {
        out.push(p);
      }
    }
  };
  walk('');
  return out.sort();
}

/** The edges out of each of `files` (repository-relative TypeScript sources). */
export function sourceGraph(files: readonly string[], root: string = REPO_ROOT): Edge[] {
  const workspaces = readWorkspaces(root);
  const edges: Edge[] = [];
  for (const from of files) {
    for (const ref of parseImports(from, readFileSync(join(root, from), 'utf8'))) {
      edges.push({
        from,
        to: resolveSpecifier(from, ref.specifier, { root, mode: 'source', workspaces }),
        kind: ref.kind,
        line: ref.line,
        specifier: ref.specifier,
      });
    }
  }
  return edges;
}

/**
 * The files Node can load starting from `entries` (emitted JavaScript, repository-relative),
 * following static imports, re-exports and `import('literal')` calls, with the edges taken.
 * `follow(from, ref)` may refuse an edge (a dispatch table's other branches).
 */
export function reachable(
  entries: readonly string[],
  opts: { root?: string; follow?: (from: string, ref: ImportRef) => boolean } = {},
): { files: Set<string>; external: Set<string>; unresolved: Edge[] } {
  const root = opts.root ?? REPO_ROOT;
  const workspaces = readWorkspaces(root);
  const files = new Set<string>();
  const external = new Set<string>();
  const unresolved: Edge[] = [];
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const ref of parseImports(file, readFileSync(join(root, file), 'utf8'))) {
      if (ref.kind === 'import type' || ref.kind === 'import type()') continue; // erased: never loaded
      if (opts.follow && !opts.follow(file, ref)) continue;
      const to = resolveSpecifier(file, ref.specifier, { root, mode: 'dist', workspaces });
      if (to.type === 'file') queue.push(to.path);
      else if (to.type === 'unresolved') unresolved.push({ from: file, to, kind: ref.kind, line: ref.line, specifier: ref.specifier });
      else external.add(to.type === 'builtin' ? to.name : to.name);
    }
  }
  return { files, external, unresolved };
}
