/**
 * The 82574L model's boundaries, checked on its sources: it imports spec/ and sim/, never drivers/
 * (nor the sandbox, vfio or dma/); the simulator's error codes it and the wire use are declared in
 * sim/errors.ts and documented in sim/README.md with their meaning and fix.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sources, importsOf, codeTable, usedCodes, read } from '../../drivers/e1000e/source.js';

const FILES = [...sources('sim/e1000e'), ...sources('sim/net'), 'sim/wire.ts'];

test('the model, the wire and the peer import spec/ and sim/ only', () => {
  assert.ok(FILES.length >= 10, "found the model's sources");
  for (const f of FILES) {
    for (const dep of importsOf(f)) assert.ok(/^(spec|sim)\//.test(dep), `${f} imports ${dep}`);
  }
});

test('no bare Error, RangeError or DmaboxError; only SimError codes, each with its meaning and fix in sim/README.md', () => {
  for (const f of FILES) {
    assert.not.match(read(f), /new (Range|Type)?Error\(|new DmaboxError\(/, f);
  }
  const declared = [...usedCodes(['sim/errors.ts'], 'ERR_SIM_')];
  const table = codeTable('sim/README.md');
  const used = usedCodes(FILES, 'ERR_');
  assert.ok(used.size > 0, 'the model, the wire and the peer refuse bad arguments');
  for (const code of used) {
    assert.ok(declared.includes(code), `${code} is declared in sim/errors.ts`);
    const row = table.get(code);
    assert.ok(row !== undefined && row.meaning.length > 20 && row.fix.length > 10, `${code} has a row with a meaning and a fix in sim/README.md`);
  }
});

test.run();
