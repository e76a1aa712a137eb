import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/cli/main.js, run as the `dmabox` command is. */
const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');
const dmabox = (...argv: string[]) => spawnSync(process.execPath, [MAIN, ...argv], { encoding: 'utf8', timeout: 30_000 });

test('a usage error thrown by a subcommand is printed with its code and exits 2', () => {
  const r = dmabox('bind', 'not-an-address');
  assert.is(r.status, 2, r.stderr);
  assert.is(r.stderr, "dmabox bind: ERR_CLI_USAGE: 'not-an-address' is not a PCI address\n  fix: give it as 0000:00:01.0 (see `dmabox devices`)\n");
});

test('any other coded error exits 1 with its code, message and fix', () => {
  const r = dmabox('bind', 'ffff:ff:1f.7');
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /^dmabox bind: ERR_VFIO_SYSFS: sysfs: no PCI function ffff:ff:1f.7 .*\n {2}fix: /);
});

test('an unknown command prints the usage and exits 2', () => {
  const r = dmabox('frobnicate');
  assert.is(r.status, 2);
  assert.match(r.stderr, /unknown command 'frobnicate'[\s\S]*usage: dmabox <command>/);
});

test.run();
