/** The per-connection buffer pool (linkback/nbd/buffer-pool.ts): reuse by exact size, and both bounds. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BufferPool } from '../../../linkback/nbd/buffer-pool.js';

test('a buffer given back is taken again for its size only', () => {
  const pool = new BufferPool(1 << 20, 1 << 16);
  const a = pool.take(4096);
  assert.is(a.length, 4096);
  pool.give(a);
  assert.ok(pool.take(512) !== a, 'another size gets a new buffer');
  assert.is(pool.take(4096), a);
  assert.ok(pool.take(4096) !== a, 'taken once');
});

test('none larger than maxEach is kept, nor more than maxBytes in all', () => {
  const pool = new BufferPool(3 * 4096, 4096);
  const big = pool.take(8192);
  pool.give(big);
  assert.ok(pool.take(8192) !== big, 'over maxEach: not kept');
  const bufs = [pool.take(4096), pool.take(4096), pool.take(4096), pool.take(4096)];
  for (const b of bufs) pool.give(b);
  const again = [pool.take(4096), pool.take(4096), pool.take(4096), pool.take(4096)];
  assert.is(again.filter((b) => bufs.includes(b)).length, 3, 'three kept, the fourth went past maxBytes');
});

test.run();
