/**
 * The trusted-code count (scripts/tcb.ts): on a made-up tree, which file is trusted, shared or
 * untrusted and how the lines add up; on the repository (built, as the unit suite runs after the
 * build), that `dmabox up` reaches the linkback starters but no other CLI command and none of the
 * in-process driver adapters.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeTcb, formatTcb, outputDirs } from '../../scripts/tcb.js';

function tree(files: Record<string, string>): { root: string; remove(): void } {
  const root = mkdtempSync(join(tmpdir(), 'dmabox-tcb-'));
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  return { root, remove: () => rmSync(root, { recursive: true, force: true }) };
}

/** A source and its emitted JavaScript (the same imports; types erased). */
function both(path: string, ts: string, js: string = ts): Record<string, string> {
  return { [path]: ts, [`dist/${path.replace(/\.ts$/, '.js')}`]: js };
}

const fixture = {
  'package.json': JSON.stringify({ name: 'x', workspaces: ['sys'] }),
  'tsconfig.json': '{ // comments are allowed\n "compilerOptions": { "rootDir": ".", "outDir": "dist" } }',
  'sys/package.json': JSON.stringify({ name: 'linux-sys', exports: { '.': { source: './src/index.ts', default: './dist/index.js' } } }),
  'sys/tsconfig.json': JSON.stringify({ compilerOptions: { rootDir: 'src', outDir: 'dist' } }),
  'sys/src/index.ts': "const koffi = require('koffi');\nexport const a = 1;\n",
  'sys/dist/index.js': "const koffi = require('koffi');\nexport const a = 1;\n",
  ...both('cli/main.ts', "import './common.js';\nconst c = { up: () => import('./up.js'), lab: () => import('./lab.js') };\n"),
  ...both('cli/common.ts', '// comment\nexport const x = 1;\n'),
  ...both(
    'cli/up.ts',
    "import type { T } from '../shared/types.js';\nimport { m } from '../manager/m.js';\nexport const u = m;\n",
    "import { m } from '../manager/m.js';\nexport const u = m;\n",
  ),
  ...both('cli/lab.ts', 'export const lab = 1;\n'),
  ...both('manager/m.ts', "import 'linux-sys';\nimport '../shared/abi.js';\nexport const m = 1;\n\n\nexport const n = 2;\n"),
  ...both('shared/abi.ts', 'export const abi = 1;\n'),
  ...both('shared/types.ts', 'export type T = number;\n'),
  ...both('sandbox/container/main.ts', "import '../../shared/abi.js';\nimport 'linux-sys';\nexport const c = 1;\n"),
  ...both('drivers/toy/sandbox.ts', "import './impl.js';\n"),
  ...both('drivers/toy/impl.ts', 'export const a = 1;\nexport const b = 2;\n'),
  ...both('drivers/contract/platform.ts', 'export const p = 1;\n'),
};

test('trusted from `up`, untrusted from the container and the driver modules, shared counted as trusted', () => {
  const t = tree(fixture);
  try {
    assert.equal(outputDirs(t.root), [
      ['sys/dist', 'sys/src'],
      ['dist', '.'],
    ]);
    const r = computeTcb(t.root);
    const side = Object.fromEntries(r.files.map((f) => [f.path, `${f.side} ${f.loc}`]));
    assert.equal(side, {
      'cli/common.ts': 'trusted 1',
      'cli/main.ts': 'trusted 2',
      'cli/up.ts': 'trusted 3',
      'drivers/toy/impl.ts': 'untrusted 2',
      'drivers/toy/sandbox.ts': 'untrusted 1',
      'manager/m.ts': 'trusted 4',
      'sandbox/container/main.ts': 'untrusted 3',
      'shared/abi.ts': 'shared 1',
      'sys/src/index.ts': 'shared 2',
    });
    assert.equal(r.roots, { trusted: ['cli/main.ts up'], untrusted: ['sandbox/container/main.ts', 'drivers/toy/sandbox.ts'] });
    assert.equal(r.total, { trusted: 13, shared: 3, untrusted: 6, managerOnly: 10 });
    assert.equal(
      r.folders.find((f) => f.folder === 'sys/src/'),
      { folder: 'sys/src/', manager: 0, shared: 2, untrusted: 0 },
    );
    assert.equal(r.external, { trusted: ['koffi'], untrusted: ['koffi'] });
    const text = formatTcb(r);
    assert.match(text, /^total\s+10\s+3\s+13\s+6$/m);
    assert.match(text, /SUD \(Boyd-Wickizer and Zeldovich, USENIX ATC 2010\): about 4,000 trusted lines/);
  } finally {
    t.remove();
  }
});

test('without a build it says so', () => {
  const t = tree(fixture);
  try {
    rmSync(join(t.root, 'dist'), { recursive: true });
    assert.throws(() => computeTcb(t.root), /dist\/cli\/main\.js is missing: run `npm run build` first/);
  } finally {
    t.remove();
  }
});

test('the repository: `dmabox up` reaches the manager and both linkback starters, not the other commands nor the in-process adapters', () => {
  const r = computeTcb();
  const trusted = new Set(r.files.filter((f) => f.side !== 'untrusted').map((f) => f.path));
  const untrusted = new Set(r.files.filter((f) => f.side === 'untrusted').map((f) => f.path));
  for (const f of ['cli/main.ts', 'cli/up.ts', 'sandbox/manager/supervisor.ts', 'linkback/sandbox-nbd.ts', 'linkback/tap/sandbox-link.ts', 'sys/src/index.ts'])
    assert.ok(trusted.has(f), `${f} is trusted`);
  for (const f of ['cli/lab.ts', 'cli/doctor.ts', 'cli/demo.ts']) assert.not.ok(trusted.has(f) || untrusted.has(f), `${f} is not loaded by dmabox up`);
  assert.equal(
    [...trusted].filter((f) => f.startsWith('linkback/in-process/')),
    [],
    'dmabox up never loads linkback/in-process (the exception in scripts/architecture-rules.ts relies on it)',
  );
  assert.ok(untrusted.has('sandbox/container/main.ts'));
  assert.not.ok(
    [...untrusted].some((f) => f.startsWith('sandbox/manager/')),
    'the container loads nothing of the manager',
  );
  assert.is(r.total.trusted, r.total.managerOnly + r.total.shared);
  assert.is(
    r.folders.reduce((n, f) => n + f.manager + f.shared + f.untrusted, 0),
    r.total.trusted + r.total.untrusted,
  );
  assert.equal(r.unresolved, []);
});

test('the repository: the spawner, privileged after set-up, on a line of its own; it loads no manager, container, driver or model code', () => {
  const r = computeTcb();
  assert.ok(r.spawner, 'the spawner is counted');
  assert.ok(r.spawner.files.includes('sandbox/spawner/main.ts') && r.spawner.files.includes('sandbox/spawner/server.ts'));
  for (const f of r.spawner.files) assert.match(f, /^(sandbox\/spawner|sandbox\/abi|common|sys\/src)\//, f);
  assert.ok(r.spawner.lines > 0 && r.spawner.lines < 2000, `${r.spawner.lines} lines`);
  assert.match(formatTcb(r), /^privileged after set-up: the spawner process \(sandbox\/spawner\/main\.ts\), [\d,]+ lines in \d+ files/m);
});

test.run();
