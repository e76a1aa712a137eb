import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandScript, shellQuote } from '../../../appliance/lab/command.js';
import { refused } from '../refused.js';

test('words are quoted only when needed', () => {
  assert.is(shellQuote('dist/test/lab'), 'dist/test/lab');
  assert.is(shellQuote(''), "''");
  assert.is(shellQuote('a b'), "'a b'");
  assert.is(shellQuote("it's"), `'it'\\''s'`);
});

test('the script, run by /bin/sh, gives the program exactly the argv, cwd and env asked for', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'dmabox-cmd-')));
  try {
    const argv = [
      'node',
      '-e',
      'process.stdout.write(JSON.stringify([process.cwd(), process.argv.slice(1), process.env.X, process.env.DMABOX_LAB]))',
      "it's",
      'two words',
      '\\.test\\.js$',
      '$HOME',
      '',
    ];
    const file = join(dir, 'cmd.sh');
    writeFileSync(file, commandScript({ argv, cwd: dir, env: { X: 'a "b" $c', DMABOX_LAB: '1', PATH: process.env.PATH ?? '' } }));
    const [cwd, args, x, lab] = JSON.parse(execFileSync('/bin/sh', [file], { cwd: '/' }).toString()) as [string, string[], string, string];
    assert.is(cwd, dir);
    assert.equal(args, argv.slice(3));
    assert.is(x, 'a "b" $c');
    assert.is(lab, '1');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a missing working directory exits 126; bad input is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-cmd-'));
  try {
    const file = join(dir, 'cmd.sh');
    writeFileSync(file, commandScript({ argv: ['true'], cwd: '/nonexistent/dmabox', env: {} }));
    let status = 0;
    try {
      execFileSync('/bin/sh', [file], { stdio: 'ignore' });
    } catch (e) {
      status = (e as { status: number }).status;
    }
    assert.is(status, 126);
  } finally {
    rmSync(dir, { recursive: true });
  }
  assert.throws(() => commandScript({ argv: [], cwd: '/', env: {} }), refused('ERR_LAB_OPTIONS', /empty/));
  assert.throws(() => commandScript({ argv: ['x'], cwd: 'rel', env: {} }), refused('ERR_LAB_OPTIONS', /absolute/));
  assert.throws(() => commandScript({ argv: ['x'], cwd: '/', env: { 'A-B': '1' } }), refused('ERR_LAB_OPTIONS', /not valid/));
});

test.run();
