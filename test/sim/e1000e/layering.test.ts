/**
 * The 82574L model's boundaries, checked on its sources: it imports spec/ and sim/, never drivers/
 * (nor the sandbox, vfio or dma/); the simulator's error codes it and the wire use are SimCodes,
 * documented in sim/README.md with their meaning and fix.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sources, importsOf, codeTable, unionOf, usedCodes, read } from '../../drivers/e1000e/source.js';

const FILES = [...sources('sim/e1000e'), ...sources('sim/net'), 'sim/wire.ts'];

test('the model, the wire and the peer import spec/ and sim/ only', () => {
  assert.ok(FILES.length >= 10, 'found the model\'s sources');
  for (const f of FILES) {
    for (const dep of importsOf(f)) assert.ok(/^(spec|sim)\//.test(dep), `${f} imports ${dep}`);
  }
});

test('no bare Error, RangeError or DmaboxError; SimError codes only, each documented in sim/README.md', () => {
  for (const f of FILES) {
    assert.not.match(read(f), /new (Range|Type)?Error\(|new DmaboxError\(/, f);
  }
  const union = unionOf('sim/errors.ts', 'SimCode');
  const table = codeTable('sim/README.md');
  assert.equal([...table.keys()].sort(), union.slice().sort(), 'sim/README.md documents exactly the SimCode union');
  for (const code of usedCodes(FILES, 'ERR_')) assert.ok(union.includes(code), `${code} is a SimCode`);
  for (const [code, row] of table) assert.ok(row.meaning.length > 20 && row.fix.length > 10, `${code} has a meaning and a fix`);
});

test.run();
