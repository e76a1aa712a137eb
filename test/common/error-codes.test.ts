/**
 * Every error code the source can produce is documented exactly once, in a `| code | meaning | fix |`
 * table of a README, with a meaning and a fix; every documented code still exists; no code is
 * built at run time or claimed by two code sets; and library code constructs no error without a
 * code of its own class (the base class, or a bare Error, RangeError or TypeError) nor declares a
 * class over the base without its closed code set. The lists printed on failure name each code with
 * where it is (scripts/error-codes.ts does the work; `node dist/scripts/error-codes.js` prints the
 * whole report).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkErrorCodes, formatBare, formatUndocumented, TABLE_HEADER, type Site } from '../../scripts/error-codes.js';

/** The checkout: this file runs as dist/test/common/error-codes.test.js. */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const report = checkErrorCodes(root);
const at = (s: Site): string => `${s.file}:${s.line}`;
const list = (title: string, items: readonly string[]): string => `${title}: ${items.length}\n${items.join('\n')}\n`;

test('the check runs on the checkout: its sources and READMEs are there and hold codes and tables', () => {
  assert.ok(
    existsSync(join(root, 'package.json')) && JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).name === 'dmabox',
    `no dmabox checkout at ${root}`,
  );
  assert.ok(report.source.size >= 100, `only ${report.source.size} codes found in the source`);
  assert.ok(report.tables >= 5, `only ${report.tables} ${TABLE_HEADER} tables found`);
  assert.ok(
    report.source.has('ERR_DMA_ARG') && report.rows.some((r) => r.code === 'ERR_DMA_ARG' && r.file === 'dma/README.md'),
    'dma/ codes and table not seen',
  );
});

test('every code in the source is documented in a | code | meaning | fix | table', () => {
  assert.ok(
    report.undocumented.length === 0,
    `${report.undocumented.length} code(s) in the source are in no ${TABLE_HEADER} table (by folder, each with where it first appears):\n${formatUndocumented(report.undocumented)}\n`,
  );
});

test('every documented code exists in the source', () => {
  assert.ok(
    report.stale.length === 0,
    list(
      'documented codes the source no longer has',
      report.stale.map((d) => `  ${d.code} (${at(d)})`),
    ),
  );
});

test('no code is documented twice', () => {
  assert.ok(
    report.duplicated.length === 0,
    list(
      'codes documented more than once',
      report.duplicated.map((rs) => `  ${rs[0]!.code}: ${rs.map(at).join(', ')}`),
    ),
  );
});

test('every row has a code, a meaning and a fix', () => {
  assert.ok(
    report.malformed.length === 0,
    list(
      'malformed rows',
      report.malformed.map((p) => `  ${at(p)}: ${p.problem}`),
    ),
  );
});

test('no code is built at run time', () => {
  assert.ok(
    report.dynamic.length === 0,
    list(
      'codes built at run time',
      report.dynamic.map((p) => `  ${at(p)}: ${p.problem}`),
    ),
  );
});

test('no code belongs to two code sets', () => {
  assert.ok(
    report.shared.length === 0,
    list(
      'codes declared by two code sets',
      report.shared.map((s) => `  ${s.code}: ${s.sets.map((x) => `${x.name} (${at(x)})`).join(', ')}`),
    ),
  );
});

test('library code constructs no error without a code of its own class, and declares no class with an open code set', () => {
  assert.ok(report.bare.length === 0, `${report.bare.length} construction(s) or class(es), by file and line:\n${formatBare(report.bare)}\n`);
});

test.run();
