/** The import graph (scripts/import-graph.ts): what counts as an edge, and how specifiers resolve, on small made-up trees. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { listSources, parseImports, reachable, readWorkspaces, resolveSpecifier, sourceGraph } from '../../scripts/import-graph.js';

/** A made-up repository: path -> contents. */
function tree(files: Record<string, string>): { root: string; remove(): void } {
  const root = mkdtempSync(join(tmpdir(), 'dmabox-graph-'));
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  return { root, remove: () => rmSync(root, { recursive: true, force: true }) };
}

const PACKAGES = {
  'package.json': JSON.stringify({ name: 'x', workspaces: ['sys'] }),
  'sys/package.json': JSON.stringify({
    name: 'linux-sys',
    exports: { '.': { source: './src/index.ts', types: './dist/index.d.ts', default: './dist/index.js' } },
  }),
  'sys/src/index.ts': 'export const A = 1;\n',
};

test('every kind of edge, with its line; comments, strings and computed imports are not edges', () => {
  const text = [
    "import { a } from './a.js';",
    "import type { B } from './b.js';",
    "import { type C, type D } from './c.js';",
    "import { type E, f } from './e.js';",
    "import './side.js';",
    "export { g } from './g.js';",
    "export type { H } from './h.js';",
    'const m = await import("./dyn.js");',
    'const n = await import(`./tpl.js`);',
    'const o = await import(name);',
    "// import('./comment.js')",
    'const s = "import(\'./string.js\')";',
    "type T = typeof import('./typeof.js');",
    "const k = require('koffi');",
    "import fs = require('node:fs');",
  ].join('\n');
  const refs = parseImports('x.ts', text).map((r) => `${r.line} ${r.kind} ${r.specifier}`);
  assert.equal(refs, [
    '1 import ./a.js',
    '2 import type ./b.js',
    '3 import type ./c.js',
    '4 import ./e.js',
    '5 import ./side.js',
    '6 export from ./g.js',
    '7 export from ./h.js',
    '8 dynamic import ./dyn.js',
    '9 dynamic import ./tpl.js',
    '13 import type() ./typeof.js',
    '14 require koffi',
    '15 import node:fs',
  ]);
});

test('resolution: .js names the .ts beside it, workspaces by their exports, Node modules, packages, and nothing', () => {
  const t = tree({ ...PACKAGES, 'cli/up.ts': '', 'cli/lib/index.ts': '', 'data/x.json': '{}' });
  try {
    const o = { root: t.root, mode: 'source' as const };
    assert.equal(resolveSpecifier('cli/main.ts', './up.js', o), { type: 'file', path: 'cli/up.ts' });
    assert.equal(resolveSpecifier('cli/main.ts', './lib', o), { type: 'file', path: 'cli/lib/index.ts' });
    assert.equal(resolveSpecifier('cli/main.ts', '../data/x.json', o), { type: 'file', path: 'data/x.json' });
    assert.equal(resolveSpecifier('cli/main.ts', 'linux-sys', o), { type: 'file', path: 'sys/src/index.ts' });
    assert.equal(resolveSpecifier('cli/main.ts', 'linux-sys', { root: t.root, mode: 'dist' }), { type: 'file', path: 'sys/dist/index.js' });
    assert.equal(resolveSpecifier('cli/main.ts', 'linux-sys/internal', o), { type: 'unresolved', specifier: 'linux-sys/internal' });
    assert.equal(resolveSpecifier('cli/main.ts', 'node:fs', o), { type: 'builtin', name: 'node:fs' });
    assert.equal(resolveSpecifier('cli/main.ts', 'fs/promises', o), { type: 'builtin', name: 'node:fs/promises' });
    assert.equal(resolveSpecifier('cli/main.ts', '@scope/pkg/sub', o), { type: 'package', name: '@scope/pkg' });
    assert.equal(resolveSpecifier('cli/main.ts', './gone.js', o), { type: 'unresolved', specifier: './gone.js' });
    assert.equal(readWorkspaces(t.root), [{ name: 'linux-sys', dir: 'sys', sourceEntry: 'sys/src/index.ts', distEntry: 'sys/dist/index.js' }]);
  } finally {
    t.remove();
  }
});

test('sources: every .ts but declarations, dist, node_modules and hidden folders; edges per file', () => {
  const t = tree({
    ...PACKAGES,
    'a/x.ts': "import { A } from 'linux-sys';\nimport './y.js';\n",
    'a/y.ts': '',
    'a/z.d.ts': '',
    'dist/a/x.ts': '',
    'node_modules/p/i.ts': '',
    '.cache/c.ts': '',
    'sys/dist/index.d.ts': '',
  });
  try {
    const files = listSources(t.root);
    assert.equal(files, ['a/x.ts', 'a/y.ts', 'sys/src/index.ts']);
    const edges = sourceGraph(files, t.root).map((e) => `${e.from} -> ${e.to.type === 'file' ? e.to.path : e.to.type}`);
    assert.equal(edges, ['a/x.ts -> sys/src/index.ts', 'a/x.ts -> a/y.ts']);
  } finally {
    t.remove();
  }
});

test('reachable: what Node loads, from emitted JavaScript; type imports are not loaded; `follow` can refuse an edge', () => {
  const t = tree({
    ...PACKAGES,
    'sys/dist/index.js': "import { x } from './x.js';\nconst k = createRequire(import.meta.url)('koffi');\nconst r = require('yaml');\n",
    'sys/dist/x.js': 'export const x = 1;\n',
    'dist/main.js': "import 'linux-sys';\nimport './b.js';\nconst up = () => import('./up.js');\nconst lab = () => import('./lab.js');\n",
    'dist/b.js': "import { readFileSync } from 'node:fs';\nexport {};\n",
    'dist/up.js': "export * from './c.js';\n",
    'dist/c.js': '',
    'dist/lab.js': "import './never.js';\n",
  });
  try {
    const all = reachable(['dist/main.js'], { root: t.root });
    assert.equal([...all.files].sort(), ['dist/b.js', 'dist/c.js', 'dist/lab.js', 'dist/main.js', 'dist/up.js', 'sys/dist/index.js', 'sys/dist/x.js']);
    assert.equal(
      all.unresolved.map((e) => e.specifier),
      ['./never.js'],
    );
    assert.equal([...all.external].sort(), ['node:fs', 'yaml'], 'require() of a literal is followed; a computed require is not');
    const upOnly = reachable(['dist/main.js'], {
      root: t.root,
      follow: (from, ref) => from !== 'dist/main.js' || ref.kind !== 'dynamic import' || ref.specifier === './up.js',
    });
    assert.not.ok(upOnly.files.has('dist/lab.js'));
    assert.ok(upOnly.files.has('dist/c.js'));
  } finally {
    t.remove();
  }
});

test('reachable skips type-only imports (they are erased before Node runs)', () => {
  const t = tree({
    ...PACKAGES,
    'src/a.ts': "import type { T } from './t.js';\nimport { type U } from './u.js';\nimport { v } from './v.js';\n",
    'src/v.ts': '',
  });
  try {
    const r = reachable(['src/a.ts'], { root: t.root });
    assert.equal([...r.files].sort(), ['src/a.ts']);
    assert.equal(
      r.unresolved.map((e) => e.specifier),
      ['./v.js'],
      'dist mode resolves .js literally',
    );
  } finally {
    t.remove();
  }
});

test.run();
