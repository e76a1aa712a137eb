/**
 * Holes as real clients see them, over a memory export: `nbdinfo --map` and `qemu-img map` before
 * and after writes, write-zeroes and trims (made with qemu-io); `nbdcopy` and `qemu-img convert`
 * copy out sparsely (the destination's allocated blocks, the bytes the server read) with equal
 * contents; and the same operations on `nbdkit memory` give the same zero / data answers.
 * Tools missing here: each test is skipped and says which.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { firstBlocker, needsCommand, testIf } from '../../helpers/skip.js';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import { suiteServer } from './helpers.js';
import { OPS, expected, flagsAt, nbdinfoMap } from './maps.js';
import { MiB, must, until } from '../sandbox/helpers.js';

const t = suite('nbd holes with real clients');
const SIZE = 64 * MiB;
const blocker = firstBlocker(
  needsCommand('nbdinfo', 'libnbd-bin'),
  needsCommand('nbdcopy', 'libnbd-bin'),
  needsCommand('qemu-img', 'qemu-utils'),
  needsCommand('qemu-io', 'qemu-utils'),
  needsCommand('nbdkit', 'nbdkit'),
);
const test = testIf(blocker, t);

const served = suiteServer(t, () => ({ exports: [{ name: 'mem', device: new MemoryBlockDevice({ size: SIZE }) }] }));
const uri = (): string => `nbd+unix:///mem?socket=${served.sock}`;

test(`nbdinfo --map and qemu-img map: hole before, data after writes, zero after write-zeroes, hole after trim`, async () => {
  assert.equal(await nbdinfoMap(uri()), [{ offset: 0, length: SIZE, type: 3, description: 'hole,zero' }]);
  await must('qemu-io', ['-f', 'raw', ...OPS.flatMap((c) => ['-c', c]), uri()]);
  const map = await nbdinfoMap(uri());
  assert.is(flagsAt(map, 0), 0, 'written: data');
  assert.is(flagsAt(map, 4 * MiB) & 2, 2, 'write-zeroes: zero');
  assert.is(flagsAt(map, 6 * MiB), 3, 'write-zeroes with unmap: hole and zero');
  assert.is(flagsAt(map, 8 * MiB), 3, 'trim on the memory disk: hole that reads as zeroes');
  assert.is(flagsAt(map, 8256 * 1024), 0, 'written into the trimmed range: data');
  assert.is(flagsAt(map, 8260 * 1024), 3);
  assert.is(flagsAt(map, 12 * MiB), 0);
  assert.is(flagsAt(map, 32 * MiB), 3, 'never written');
  const q = JSON.parse(await must('qemu-img', ['map', '--output=json', '-f', 'raw', uri()])) as {
    start: number;
    length: number;
    zero: boolean;
    data: boolean;
  }[];
  const at = (o: number) => q.find((x) => x.start <= o && o < x.start + x.length)!;
  assert.equal([at(0).data, at(0).zero], [true, false]);
  assert.is(at(4 * MiB).zero, true);
  assert.equal([at(6 * MiB).data, at(6 * MiB).zero], [false, true]);
  assert.equal([at(8 * MiB).data, at(8 * MiB).zero], [false, true]);
  assert.equal([at(32 * MiB).data, at(32 * MiB).zero], [false, true]);
});

test(`nbdcopy and qemu-img convert copy out sparsely, contents equal`, async () => {
  const want = expected(SIZE);
  for (const [tool, args] of [
    ['nbdcopy', (out: string) => [uri(), out]],
    ['qemu-img', (out: string) => ['convert', '-f', 'raw', '-O', 'raw', uri(), out]],
  ] as [string, (out: string) => string[]][]) {
    const out = join(served.dir, `${tool}.raw`);
    const before = served.server.stats().exports['mem']!;
    await must(tool, args(out));
    const after = served.server.stats().exports['mem']!;
    const got = readFileSync(out);
    assert.is(got.length, SIZE);
    assert.ok(got.equals(want), `${tool}: contents equal`);
    const allocated = statSync(out).blocks * 512;
    assert.ok(allocated <= 16 * MiB, `${tool}: ${allocated} bytes allocated in the copy (at most the 16 MiB of data)`);
    const read = after.bytesRead - before.bytesRead;
    assert.ok(read <= 16 * MiB, `${tool}: read ${read} bytes of a ${SIZE}-byte export (holes are skipped)`);
    assert.ok(after.blockStatus > before.blockStatus, `${tool} asked for block status`);
  }
});

test(`nbdcopy from a sparse file into the export keeps the holes`, async () => {
  const src = join(served.dir, 'nbdcopy.raw'); // the copy of the previous test: 16 MiB data, holes after
  const dst = `nbd+unix:///mem?socket=${served.sock}`;
  await must('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 32M 8M', dst]); // data the copy must zero
  await must('nbdcopy', ['--flush', src, dst]);
  const map = await nbdinfoMap(dst);
  assert.is(flagsAt(map, 0), 0);
  assert.is(flagsAt(map, 32 * MiB) & 2, 2, 'the zeroes nbdcopy wrote over old data are known');
  assert.is(flagsAt(map, 48 * MiB), 3);
  const back = join(served.dir, 'back.raw');
  await must('nbdcopy', [dst, back]);
  assert.ok(readFileSync(back).equals(expected(SIZE)));
});

test(`the same operations on nbdkit memory: the same zero / data answers`, async () => {
  const sock = join(served.dir, 'nbdkit.sock');
  const kitProc = spawn('nbdkit', ['-f', '-U', sock, 'memory', String(SIZE)], { stdio: 'ignore' });
  const kit = `nbd+unix:///?socket=${sock}`;
  try {
    await until('nbdkit to listen', () => existsSync(sock), 10_000);
    await must('qemu-io', ['-f', 'raw', ...OPS.flatMap((c) => ['-c', c]), kit]);
    const theirs = await nbdinfoMap(kit);
    const ours = await nbdinfoMap(uri());
    // Probe every 64 KiB: "reads as zeroes" (bit 1) must agree wherever the disks hold the same
    // thing (both servers are exact at that granularity for these operations).
    const disagree: number[] = [];
    for (let o = 0; o < SIZE; o += 64 * 1024) if ((flagsAt(theirs, o) & 2) !== (flagsAt(ours, o) & 2)) disagree.push(o);
    assert.equal(disagree, [], `nbdkit: ${JSON.stringify(theirs)}\nours: ${JSON.stringify(ours)}`);
  } finally {
    if (kitProc.exitCode === null && kitProc.signalCode === null) {
      const exited = once(kitProc, 'exit');
      kitProc.kill('SIGTERM');
      await exited;
    }
  }
});

t.run();
