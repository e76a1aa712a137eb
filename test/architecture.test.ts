/**
 * The architecture check over the repository's own sources: every file under a rule, every import
 * resolved, no forbidden edge (scripts/architecture-rules.ts). A forbidden edge fails here, so CI
 * fails on it; the failure lists each edge as `from -> to (rule)`. `npm run arch` prints the same.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkEdges, formatReport } from '../scripts/architecture.js';
import { listSources, sourceGraph } from '../scripts/import-graph.js';

const files = listSources();
const edges = sourceGraph(files);
const report = checkEdges(files, edges);
const problems = formatReport(report).join('\n');

test('the import graph is the project: the packages, the CLI dispatch, the linkback registry, type imports', () => {
  assert.ok(files.includes('sys/src/index.ts') && files.includes('vfio/src/index.ts') && files.includes('test/architecture.test.ts'));
  const has = (from: string, to: string, kind: string): boolean =>
    edges.some((e) => e.from === from && e.to.type === 'file' && e.to.path === to && e.kind === kind);
  assert.ok(has('cli/main.ts', 'cli/up.ts', 'dynamic import'), 'cli/main.ts -> cli/up.ts (dynamic import)');
  assert.ok(has('linkback/registry.ts', 'linkback/sandbox-nbd.ts', 'dynamic import'), 'linkback/registry.ts -> linkback/sandbox-nbd.ts (dynamic import)');
  assert.ok(
    edges.some((e) => e.from.startsWith('vfio/src/') && e.specifier === 'linux-sys' && e.to.type === 'file' && e.to.path === 'sys/src/index.ts'),
    'vfio-bindings -> linux-sys, by package name',
  );
  assert.ok(
    edges.some((e) => e.kind === 'import type'),
    'type-only imports are edges too',
  );
});

test('every source file falls under an architecture rule', () => {
  assert.equal(report.uncovered, [], `files no rule covers:\n${problems}`);
});

test('every import names a file, a package or a Node module', () => {
  assert.equal(report.unresolved, [], `unresolved imports:\n${problems}`);
});

test('no forbidden import edge', () => {
  if (report.violations.length > 0) assert.unreachable(`${report.violations.length} forbidden import edge(s):\n${problems}`);
});

test.run();
