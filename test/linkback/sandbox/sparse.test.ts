/**
 * Holes through the sandboxed NVMe driver (a real container, the simulated controller in the
 * manager) exported by linkback/service.ts: the export's allocation map is all the server knows
 * (the driver reports none), so `nbdinfo --map` shows data until the client zeroes or trims, then
 * holes and zeroes; a SIGKILLed and restarted driver container leaves the map as it was; `nbdcopy`
 * and `qemu-img convert` then copy out sparsely with the same contents as a full read.
 * Tools missing here: each test is skipped and says which.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { firstBlocker, needsCommand, testIf } from '../../helpers/skip.js';
import { startService, type Service } from '../../../linkback/service.js';
import type { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { OPS, flagsAt, nbdinfoMap } from '../nbd/maps.js';
import { MiB, must, nbdPolicy, tempDir, until } from './helpers.js';

const t = suite('sandboxed NVMe over NBD: holes');
const SIZE = 64 * MiB;
const blocker = firstBlocker(
  needsCommand('nbdinfo', 'libnbd-bin'),
  needsCommand('nbdcopy', 'libnbd-bin'),
  needsCommand('qemu-img', 'qemu-utils'),
  needsCommand('qemu-io', 'qemu-utils'),
);
const test = testIf(blocker, t);
const tmp = tempDir();
const sock = join(tmp.dir, 'disk.sock');
const uri = `nbd+unix:///disk?socket=${sock}`;
let service: Service | undefined;
let sandbox: Supervisor;

t.before(async () => {
  if (blocker) return;
  service = await startService([nbdPolicy('disk', sock, { capacity: '64MiB' })], { controlPath: null }, () => {});
  sandbox = service.manager.sandboxes[0]!;
  assert.is(sandbox.state, 'running');
});

t.after(async () => {
  await service?.stop();
  tmp.remove();
});

const exportStats = () => (service!.linkbacks[0]!.status() as { exports: Record<string, { bytesRead: number; blockStatus: number }> }).exports['disk']!;

test(`nbdinfo --map: data while nothing is known, holes and zeroes after write-zeroes and trim`, async () => {
  assert.equal(await nbdinfoMap(uri), [{ offset: 0, length: SIZE, type: 0, description: 'data' }], 'the driver reports nothing: all data');
  await must('qemu-io', ['-f', 'raw', '-c', `write -z -u 0 ${SIZE}`, ...OPS.flatMap((c) => ['-c', c]), uri]);
  const map = await nbdinfoMap(uri);
  assert.is(flagsAt(map, 0), 0, 'written: data');
  assert.is(flagsAt(map, 4 * MiB), 2, 'write-zeroes without unmap: zero, allocated');
  assert.is(flagsAt(map, 6 * MiB), 3, 'write-zeroes with unmap: hole and zero');
  assert.is(flagsAt(map, 8 * MiB), 1, 'trim: a hole whose contents the NVMe device does not promise');
  assert.is(flagsAt(map, 8256 * 1024), 0, 'written into the trimmed range: data');
  assert.is(flagsAt(map, 32 * MiB), 3, 'zeroed at the start, never written since');
});

test(`a SIGKILLed driver container restarts; the map is the same`, async () => {
  const before = await nbdinfoMap(uri);
  const restarts = sandbox.restarts;
  process.kill(sandbox.pid!, 'SIGKILL');
  await until('the restart', () => sandbox.restarts === restarts + 1 && sandbox.state === 'running', 60_000);
  assert.equal(await nbdinfoMap(uri), before);
});

test(`nbdcopy and qemu-img convert copy sparsely; contents equal a full read`, async () => {
  const full = join(tmp.dir, 'full.raw');
  await must('nbdcopy', ['--no-extents', uri, full]);
  const want = readFileSync(full);
  for (const [tool, args] of [
    ['nbdcopy', (out: string) => [uri, out]],
    ['qemu-img', (out: string) => ['convert', '-f', 'raw', '-O', 'raw', uri, out]],
  ] as [string, (out: string) => string[]][]) {
    const out = join(tmp.dir, `${tool}.raw`);
    const before = exportStats();
    await must(tool, args(out));
    const after = exportStats();
    assert.ok(readFileSync(out).equals(want), `${tool}: contents equal a full read`);
    const allocated = statSync(out).blocks * 512;
    assert.ok(allocated <= 17 * MiB, `${tool}: ${allocated} bytes allocated (16 MiB of data, and the 1 MiB trimmed hole at most)`);
    const read = after.bytesRead - before.bytesRead;
    assert.ok(read <= 17 * MiB, `${tool}: read ${read} bytes of ${SIZE}`);
    assert.ok(after.blockStatus > before.blockStatus, `${tool} asked for block status`);
  }
});

t.run();
