import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseUvuSummary } from '../../scripts/run-tests.js';

test('parseUvuSummary reads uvu totals through colour codes', () => {
  const out = '\x1b[1mx\x1b[22m\n  Total:     12\x1b[31m\n  Passed:    10\x1b[39m\n  Skipped:   \x1b[33m3\x1b[39m\n  Duration:  1ms\n';
  assert.equal(parseUvuSummary(out), { passed: 10, failed: 2, skipped: 3 });
});

test('parseUvuSummary says undefined when the run died before its summary', () => {
  assert.is(parseUvuSummary('TypeError: boom\n'), undefined);
});

test.run();
