/**
 * `dmabox appliance`'s argument handling: every usage error names what is missing, `init` refuses
 * to run anywhere but as PID 1 of an image, and `compare` exits 1 when outputs differ, 0 when they are the same.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../cli/appliance.js';
import { CliError } from '../../cli/errors.js';

async function usage(argv: string[], want: RegExp): Promise<void> {
  try {
    await run(argv);
    assert.unreachable(`accepted ${argv.join(' ')}`);
  } catch (e) {
    assert.instance(e, CliError, String(e));
    assert.is((e as CliError).code, 'ERR_CLI_USAGE');
    assert.match((e as Error).message, want);
  }
}

test('usage errors: each says what is missing', async () => {
  await usage(['build', 'a.yaml'], /build needs SPEC and --out DIR/);
  await usage(['build', 'a.yaml', 'b.yaml', '--out', 'x'], /one SPEC only/);
  await usage(['build', '--frobnicate'], /unknown option --frobnicate/);
  await usage(['run'], /run needs the image folder/);
  await usage(['run', 'x', '--port', '99999'], /--port needs a port number/);
  await usage(['test', 'x'], /test needs the image folder and --psk FILE/);
  await usage(['compare', 'x'], /compare needs two image folders/);
  await usage(['init'], /PID 1 of an appliance image, not a command for a host/);
  await usage(['explode'], /unknown appliance command 'explode'/);
  assert.is(await run(['--help']), 0);
  assert.is(await run([]), 2);
});

test('compare: two folders whose outputs differ exit 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-compare-'));
  try {
    const folders = [join(dir, 'a'), join(dir, 'b')];
    for (const [i, d] of folders.entries()) {
      mkdirSync(d);
      writeFileSync(join(d, 'cmdline'), `line ${i}\n`);
      const manifest = { outputs: { cmdline: { sha256: String(i).repeat(64), bytes: 7 } }, verity: { hashOffset: 0 } };
      writeFileSync(join(d, 'manifest.json'), JSON.stringify(manifest));
    }
    assert.is(await run(['compare', folders[0]!, folders[1]!]), 1);
    assert.is(await run(['compare', folders[0]!, folders[0]!]), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
