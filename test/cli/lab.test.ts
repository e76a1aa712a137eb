import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseRunArgs, parseSize } from '../../cli/lab.js';

test('sizes: M, G, MiB, GiB, plain MiB', () => {
  assert.is(parseSize('64M'), 64);
  assert.is(parseSize('1G'), 1024);
  assert.is(parseSize('2GiB'), 2048);
  assert.is(parseSize('512'), 512);
  assert.throws(() => parseSize('lots'), /not a size/);
  assert.throws(() => parseSize('0M'), /at least 1 MiB/);
});

test('run: devices, timeout, trace, log; everything after -- is the command, untouched', () => {
  const a = parseRunArgs(['--nvme', '64M', '--nvme=1G', '--e1000e', '--e1000e', '--timeout', '90', '--trace-dmar', '--log', '/tmp/x.log', '--',
    'node', '--nvme', '1M', '--', "it's"]);
  assert.equal(a.nvme, [{ sizeMiB: 64 }, { sizeMiB: 1024 }]);
  assert.is(a.e1000e, 2);
  assert.is(a.timeoutMs, 90_000);
  assert.is(a.dmarTrace, true);
  assert.is(a.verbose, false);
  assert.is(a.logFile, '/tmp/x.log');
  assert.equal(a.command, ['node', '--nvme', '1M', '--', "it's"]);
});

test('defaults: no devices, 600 s, no trace', () => {
  const a = parseRunArgs(['--', 'true']);
  assert.equal([a.nvme, a.e1000e, a.timeoutMs, a.dmarTrace], [[], 0, 600_000, false]);
});

test('mistakes are refused with the usage', () => {
  assert.throws(() => parseRunArgs(['--nvme']), /needs a value/);
  assert.throws(() => parseRunArgs(['--timeout', 'soon', '--', 'x']), /not a positive number/);
  assert.throws(() => parseRunArgs(['--frobnicate', '--', 'x']), /unknown option '--frobnicate'.*\n.*usage/s);
  assert.throws(() => parseRunArgs(['--e1000e']), /no command/);
  assert.throws(() => parseRunArgs(['node', 'x.js']), /unknown option 'node'/);
});

test.run();
