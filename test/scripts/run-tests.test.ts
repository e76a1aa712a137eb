import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkCounts, parseUvuSummary } from '../../scripts/run-tests.js';

test('parseUvuSummary reads uvu totals through colour codes', () => {
  const out = '\x1b[1mx\x1b[22m\n  Total:     12\x1b[31m\n  Passed:    10\x1b[39m\n  Skipped:   \x1b[33m3\x1b[39m\n  Duration:  1ms\n';
  assert.equal(parseUvuSummary(out), { passed: 10, failed: 2, skipped: 3 });
});

test('parseUvuSummary says undefined when the run died before its summary', () => {
  assert.is(parseUvuSummary('TypeError: boom\n'), undefined);
});

test('a check (eslint, prettier --check) counts as one test: passed on exit 0, failed otherwise', () => {
  assert.equal(checkCounts('x', 0), { passed: 1, failed: 0, skipped: 0 });
  const errors: string[] = [];
  const original = console.error;
  console.error = (s: string) => errors.push(s);
  try {
    assert.equal(checkCounts('lint: eslint', 1), { passed: 0, failed: 1, skipped: 0 });
  } finally {
    console.error = original;
  }
  assert.equal(errors, ['lint: eslint: failed (exit 1): counted as one failure']);
});

test('a test the skip helper blocks counts as skipped, not passed, in what the runner parses', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-skip-'));
  try {
    // The probe imports uvu and the helper by URL, as this compiled test sees them, so both share one uvu.
    const uvu = import.meta.resolve('uvu');
    const helper = new URL('../helpers/skip.js', import.meta.url).href;
    const file = join(dir, 'probe.test.mjs');
    writeFileSync(
      file,
      [
        `import { test } from ${JSON.stringify(uvu)};`,
        `import { testIf, needsPath } from ${JSON.stringify(helper)};`,
        `const gated = testIf(needsPath('/nonexistent/dmabox-probe', 'nothing provides it'));`,
        `gated('needs the path', () => { throw new Error('must not run'); });`,
        `gated('needs it too', () => { throw new Error('must not run'); });`,
        `test('runs', () => {});`,
        `test.run();`,
      ].join('\n'),
    );
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' }, timeout: 30_000 });
    assert.is(r.status, 0, r.stderr);
    assert.equal(parseUvuSummary(r.stdout), { passed: 1, failed: 0, skipped: 2 });
    assert.match(r.stdout, /skipped: needs the path: needs \/nonexistent\/dmabox-probe \(nothing provides it\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
