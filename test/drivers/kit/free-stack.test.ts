/** The kit's one free stack of indices: order, exhaustion, misuse, and no allocation per take/give. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FreeIndexStack } from '../../../drivers/kit/free-stack.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'no error';
};

test('a fresh stack hands out 0, 1, 2 ...; then the index given back last comes out first', () => {
  const s = new FreeIndexStack(4, 'slot');
  assert.equal([s.take(), s.take(), s.take()], [0, 1, 2]);
  assert.is(s.available, 1);
  s.give(0);
  s.give(2);
  assert.equal([s.take(), s.take(), s.take()], [2, 0, 3]);
  assert.is(s.take(), -1, 'empty: -1, not a throw');
  assert.ok(s.isOut(3));
});

test('giving back twice, or an index never taken or out of range, is ERR_KIT_POOL_FREE and changes nothing', () => {
  const s = new FreeIndexStack(3, 'PRP list slot');
  const i = s.take();
  s.give(i);
  assert.is(
    code(() => s.give(i)),
    'ERR_KIT_POOL_FREE',
  );
  assert.is(
    code(() => s.give(2)),
    'ERR_KIT_POOL_FREE',
    'never taken',
  );
  for (const bad of [3, -1, 1.5, NaN])
    assert.is(
      code(() => s.give(bad)),
      'ERR_KIT_POOL_FREE',
      String(bad),
    );
  assert.is(s.available, 3);
  try {
    s.give(i);
  } catch (e) {
    assert.match((e as Error).message, /PRP list slot 0 given back twice/);
  }
});

test('capacity must be a positive integer: ERR_KIT_ARG', () => {
  for (const bad of [0, -1, 2.5, 2 ** 33])
    assert.is(
      code(() => new FreeIndexStack(bad, 'x')),
      'ERR_KIT_ARG',
      String(bad),
    );
});

test('take/give allocate nothing on the heap', () => {
  const s = new FreeIndexStack(1024, 'slot');
  const run = (n: number) => {
    for (let k = 0; k < n; k++) s.give(s.take());
  };
  run(100000);
  if (global.gc) global.gc();
  const before = process.memoryUsage().heapUsed;
  run(1000000);
  const grown = process.memoryUsage().heapUsed - before;
  assert.ok(grown < 1_000_000, `heap grew ${grown} bytes`);
});

test.run();
