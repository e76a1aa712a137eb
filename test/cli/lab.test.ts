import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CliError } from '../../cli/errors.js';
import { parseRunArgs, parseSize } from '../../cli/lab.js';

/** An assert.throws predicate: a CliError ERR_CLI_USAGE whose message matches. */
const usage =
  (message: RegExp) =>
  (e: unknown): boolean =>
    e instanceof CliError && e.code === 'ERR_CLI_USAGE' && message.test(e.message);

test('sizes: M, G, MiB, GiB, plain MiB', () => {
  assert.is(parseSize('64M'), 64);
  assert.is(parseSize('1G'), 1024);
  assert.is(parseSize('2GiB'), 2048);
  assert.is(parseSize('512'), 512);
  assert.throws(() => parseSize('lots'), usage(/not a size/));
  assert.throws(() => parseSize('0M'), usage(/at least 1 MiB/));
});

test('run: devices, timeout, trace, log; everything after -- is the command, untouched', () => {
  const a = parseRunArgs([
    '--nvme',
    '64M',
    '--nvme=1G',
    '--e1000e',
    '--e1000e',
    '--timeout',
    '90',
    '--trace-dmar',
    '--device-errors',
    '--log',
    '/tmp/x.log',
    '--',
    'node',
    '--nvme',
    '1M',
    '--',
    "it's",
  ]);
  assert.equal(a.nvme, [{ sizeMiB: 64 }, { sizeMiB: 1024 }]);
  assert.is(a.e1000e, 2);
  assert.is(a.timeoutMs, 90_000);
  assert.is(a.dmarTrace, true);
  assert.is(a.deviceErrors, true);
  assert.is(a.verbose, false);
  assert.is(a.logFile, '/tmp/x.log');
  assert.equal(a.command, ['node', '--nvme', '1M', '--', "it's"]);
});

test('defaults: no devices, 600 s, no trace', () => {
  const a = parseRunArgs(['--', 'true']);
  assert.equal([a.nvme, a.e1000e, a.timeoutMs, a.dmarTrace, a.deviceErrors], [[], 0, 600_000, false, false]);
});

test('mistakes are refused with the usage', () => {
  assert.throws(() => parseRunArgs(['--nvme']), usage(/needs a value/));
  assert.throws(() => parseRunArgs(['--timeout', 'soon', '--', 'x']), usage(/not a positive number/));
  assert.throws(() => parseRunArgs(['--frobnicate', '--', 'x']), usage(/unknown option '--frobnicate'.*\n.*usage/s));
  assert.throws(() => parseRunArgs(['--e1000e']), usage(/no command/));
  assert.throws(() => parseRunArgs(['node', 'x.js']), usage(/unknown option 'node'/));
});

test.run();
