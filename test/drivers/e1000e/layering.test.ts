/**
 * The driver's boundaries, checked on its sources: what it may import (the driver contract, the
 * driver kit, spec/ and common/errors), and its closed set of error codes, each used and each
 * documented once in drivers/e1000e/README.md with its meaning and fix.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sources, importsOf, codeTable, unionOf, usedCodes, read } from './source.js';

const FILES = [...sources('drivers/e1000e'), 'drivers/kit/packet-pool.ts'];
const ALLOWED = [/^drivers\/contract\//, /^drivers\/kit\//, /^drivers\/e1000e\//, /^spec\//, /^common\/errors\.ts$/];

test('the driver imports only the driver contract, the driver kit, spec/ and common/errors', () => {
  assert.ok(FILES.length >= 7, "found the driver's sources");
  for (const f of FILES) {
    for (const dep of importsOf(f)) {
      assert.ok(
        ALLOWED.some((r) => r.test(dep)),
        `${f} imports ${dep}`,
      );
    }
  }
});

test('library code throws no bare Error, RangeError or DmaboxError', () => {
  for (const f of FILES) {
    const text = read(f);
    assert.not.match(text, /new (Range|Type)?Error\(/, `${f}`);
    assert.not.match(text, /new DmaboxError\(/, `${f}`);
  }
});

test('E1000eCode: every code is used, and documented once in the README with its meaning and fix', () => {
  const union = unionOf('drivers/e1000e/errors.ts', 'E1000eCode');
  assert.ok(union.length > 0, 'found the union');
  const used = usedCodes(
    FILES.filter((f) => !f.endsWith('errors.ts')),
    'ERR_E1000E_',
  );
  assert.equal([...used].sort(), union.slice().sort(), 'the codes the driver uses are exactly the union');
  const table = codeTable('drivers/e1000e/README.md');
  assert.equal([...table.keys()].sort(), union.slice().sort(), 'the README table lists exactly the union');
  for (const [code, row] of table) {
    assert.ok(row.meaning.length > 20 && row.fix.length > 10, `${code} has a meaning and a fix`);
  }
});

test.run();
