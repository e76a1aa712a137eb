/**
 * The allocation map and its tracker: ranges marked and described, merging, the cap (smallest
 * forgotten), and that a trim or write-zeroes racing an overlapping write is never recorded.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AllocationMap, AllocationTracker, type TrackedRange } from '../../linkback/allocation-map.js';
import { EXTENT_HOLE as H, EXTENT_ZERO as Z, ExtentList } from '../../linkback/block-device.js';

function describe(m: AllocationMap, offset: number, length: number, max = 64): [number, number][] {
  const out = new ExtentList(max);
  m.describe(offset, length, out);
  return Array.from({ length: out.count }, (_, i) => [out.lengths[i]!, out.flags[i]!]);
}

function op(offset: number, length: number): TrackedRange {
  return { offset, length, tainted: false, prevTracked: null, nextTracked: null };
}

test('an empty map describes everything as data', () => {
  assert.equal(describe(new AllocationMap(8), 0, 1 << 20), [[1 << 20, 0]]);
});

test('marked ranges, the data between them, and a range split by a later write', () => {
  const m = new AllocationMap(8);
  m.mark(4096, 8192, H | Z);
  m.mark(65536, 4096, H);
  assert.equal(describe(m, 0, 131072), [
    [4096, 0],
    [8192, H | Z],
    [53248, 0],
    [4096, H],
    [61440, 0],
  ]);
  m.mark(8192, 512, 0); // a write in the middle of the zeroes
  assert.equal(describe(m, 4096, 8192), [
    [4096, H | Z],
    [512, 0],
    [3584, H | Z],
  ]);
  assert.is(m.size, 3);
  // A query starting inside a range, and one ending inside one.
  assert.equal(describe(m, 10240, 2048), [[2048, H | Z]]);
  assert.equal(describe(m, 60000, 6000), [
    [5536, 0],
    [464, H],
  ]);
});

test('touching ranges of the same flags merge; different flags stay apart; overwrites replace', () => {
  const m = new AllocationMap(8);
  m.mark(0, 512, Z);
  m.mark(512, 512, Z);
  m.mark(1024, 512, H | Z);
  assert.is(m.size, 2);
  m.mark(256, 1024, H | Z); // covers the end of the first and the start of the second
  assert.equal(describe(m, 0, 2048), [
    [256, Z],
    [1280, H | Z],
    [512, 0],
  ]);
  m.mark(0, 4096, 0);
  assert.is(m.size, 0);
});

test('over the cap, the smallest ranges are forgotten (reported as data), never a wrong flag', () => {
  const m = new AllocationMap(4);
  m.mark(0, 4096, Z);
  m.mark(10000, 512, Z); // smallest
  m.mark(20000, 8192, Z);
  m.mark(40000, 2048, Z);
  m.mark(60000, 1024, Z); // fifth: the 512-byte range goes
  assert.is(m.size, 4);
  assert.is(m.forgotten, 1);
  assert.equal(describe(m, 10000, 512), [[512, 0]]);
  assert.equal(describe(m, 60000, 1024), [[1024, Z]]);
  for (let i = 0; i < 1000; i++) m.mark(100000 + i * 1024, 512, H);
  assert.is(m.size, 4, 'a flood of small ranges stays within the cap');
});

test('describe stops when the list is full', () => {
  const m = new AllocationMap(100);
  for (let i = 0; i < 50; i++) m.mark(i * 1024, 512, Z);
  const got = describe(m, 0, 50 * 1024, 10);
  assert.is(got.length, 10);
  assert.is(
    got.reduce((a, [n]) => a + n, 0),
    5 * 1024,
  );
});

test('tracker: a write marks data at once; a zeroing is recorded when it completes alone', () => {
  const m = new AllocationMap(16);
  const t = new AllocationTracker(m);
  const z = op(0, 8192);
  t.zeroStarted(z);
  assert.equal(describe(m, 0, 8192), [[8192, 0]], 'nothing is claimed before the device is done');
  t.zeroEnded(z, true, H | Z);
  assert.equal(describe(m, 0, 8192), [[8192, H | Z]]);
  const w = op(4096, 512);
  t.writeStarted(w);
  assert.equal(describe(m, 4096, 512), [[512, 0]], 'data from the moment the write is sent');
  t.writeEnded(w);
  const failed = op(16384, 512);
  t.zeroStarted(failed);
  t.zeroEnded(failed, false, Z);
  assert.equal(describe(m, 16384, 512), [[512, 0]], 'a failed zeroing records nothing');
});

test('tracker: a zeroing overlapping a write or another zeroing in flight is not recorded', () => {
  const m = new AllocationMap(16);
  const t = new AllocationTracker(m);
  // A write in flight when the zeroing starts.
  const w = op(0, 4096);
  t.writeStarted(w);
  const z1 = op(0, 65536);
  t.zeroStarted(z1);
  t.writeEnded(w);
  t.zeroEnded(z1, true, H | Z);
  assert.equal(describe(m, 0, 65536), [[65536, 0]]);
  // A write starting while the zeroing is in flight.
  const z2 = op(0, 65536);
  t.zeroStarted(z2);
  const w2 = op(8192, 512);
  t.writeStarted(w2);
  t.zeroEnded(z2, true, H | Z);
  t.writeEnded(w2);
  assert.equal(describe(m, 0, 65536), [[65536, 0]]);
  // Two overlapping zeroings: neither is recorded. A disjoint one is.
  const a = op(0, 8192);
  const b = op(4096, 8192);
  const c = op(1 << 20, 4096);
  t.zeroStarted(a);
  t.zeroStarted(b);
  t.zeroStarted(c);
  t.zeroEnded(b, true, Z);
  t.zeroEnded(a, true, H | Z);
  t.zeroEnded(c, true, H);
  assert.equal(describe(m, 0, 12288), [[12288, 0]]);
  assert.equal(describe(m, 1 << 20, 4096), [[4096, H]]);
  // A write elsewhere does not stop a zeroing from being recorded.
  const z3 = op(0, 4096);
  t.zeroStarted(z3);
  const far = op(1 << 21, 512);
  t.writeStarted(far);
  t.zeroEnded(z3, true, Z);
  t.writeEnded(far);
  assert.equal(describe(m, 0, 4096), [[4096, Z]]);
});

test.run();
