import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, type Io } from '../../cli/policy.js';

let root = dirname(fileURLToPath(import.meta.url));
while (!readdirSync(root).includes('package.json')) root = dirname(root);

function capture(): Io & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    out: (s: string) => {
      io.stdout += s;
    },
    err: (s: string) => {
      io.stderr += s;
    },
  };
  return io;
}

test('policy check: ok on the examples, exit 0', async () => {
  const io = capture();
  const code = await run(['check', join(root, 'policies/examples/demo.yaml')], io);
  assert.is(code, 0);
  assert.match(io.stdout, /^ok .*demo\.yaml: demo-nvme, demo-e1000e\n$/);
});

test('policy check: every problem on stderr, exit 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-cli-policy-'));
  const f = join(dir, 'bad.yaml');
  writeFileSync(f, 'version: 1\nname: x\ndevice: sim:nvme\ndriver: nvme\nwindows:\n  - size: big\n  - size: 3\n');
  const io = capture();
  assert.is(await run(['check', f], io), 1);
  assert.is(io.stdout, '');
  assert.ok(io.stderr.includes(`${f}:6: windows[0].size: expected a size like '64MiB' or a number of bytes, got 'big'`), io.stderr);
  assert.ok(io.stderr.includes(`${f}:7: windows[1].size: expected at least 4KiB, got 3B`), io.stderr);
  assert.ok(io.stderr.endsWith('2 problems\n'), 'check starts nothing, so it does not say it started nothing');
});

test('policy show: defaults visible; --json gives bytes and milliseconds', async () => {
  const io = capture();
  assert.is(await run(['show', join(root, 'policies/examples/sim-e1000e.yaml')], io), 0);
  assert.ok(io.stdout.includes('mac: 52:54:00:12:34:56'));
  assert.ok(io.stdout.includes('seccomp: driver'));
  assert.ok(io.stdout.includes('window: 1m'));
  const j = capture();
  assert.is(await run(['show', '--json', join(root, 'policies/examples/sim-e1000e.yaml')], j), 0);
  assert.is(JSON.parse(j.stdout)[0].container.memory, 256 * 2 ** 20);
});

test('policy show warns loudly about unconfined policies', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-cli-policy-'));
  const f = join(dir, 'u.yaml');
  writeFileSync(f, 'version: 1\nname: x\ndevice: sim:nvme\ndriver: nvme\nwindows: [{ size: 1MiB }]\nunconfined: true\n');
  const io = capture();
  assert.is(await run(['show', f], io), 0);
  assert.match(io.stderr, /^WARNING .*u\.yaml:6: unconfined: UNCONFINED/);
});

test('usage errors exit 2', async () => {
  assert.is(await run(['check'], capture()), 2);
  assert.is(await run(['frobnicate'], capture()), 2);
  assert.is(await run(['check', '--strict', 'x.yaml'], capture()), 2);
  assert.is(await run(['--help'], capture()), 0);
});

test.run();
