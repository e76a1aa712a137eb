import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEVICE_READS_WRITES } from '../../../drivers/contract/platform.js';
import { IommuDmaAllocator } from '../../../dma/allocator.js';
import { HeapMemoryProvider } from '../../../dma/memory.js';
import { BufferPool } from '../../../drivers/kit/pool.js';
import { RecordingBackend } from '../../dma/fake-backend.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'no error';
};

function window(size: number) {
  const dma = new IommuDmaAllocator({ backend: new RecordingBackend(), memory: new HeapMemoryProvider() });
  return dma.alloc(size, DEVICE_READS_WRITES);
}

test('buffers come out in address order, with computed offsets and IOVAs', () => {
  const w = window(64 * 1024);
  const pool = new BufferPool(w, 2048, { offset: 4096 });
  assert.is(pool.count, 30);
  const a = pool.alloc(),
    b = pool.alloc();
  assert.is(a, 0);
  assert.is(b, 1);
  assert.is(pool.offset(b), 4096 + 2048);
  assert.is(pool.iova(b), Number(w.iova) + 4096 + 2048);
  assert.is(pool.iovaBig(b), w.iova + 6144n);
  const dv = new DataView(new ArrayBuffer(16));
  pool.writeIova(dv, 8, b);
  assert.is(dv.getBigUint64(8, true), w.iova + 6144n);
  pool.bytes(b)[0] = 9;
  assert.is(w.bytes[6144], 9);
  assert.is(pool.bytes(b).length, 2048);
});

test('exhaustion returns -1 on the hot path, throws from allocOrThrow', () => {
  const pool = new BufferPool(window(8192), 4096);
  assert.is(pool.alloc(), 0);
  assert.is(pool.alloc(), 1);
  assert.is(pool.alloc(), -1);
  assert.is(pool.available, 0);
  assert.is(
    code(() => pool.allocOrThrow()),
    'ERR_KIT_POOL_EXHAUSTED',
  );
  pool.free(0);
  assert.is(pool.allocOrThrow(), 0);
});

test('double free and foreign indices are detected', () => {
  const pool = new BufferPool(window(8192), 1024);
  const i = pool.alloc();
  pool.free(i);
  assert.is(
    code(() => pool.free(i)),
    'ERR_KIT_POOL_FREE',
  );
  assert.is(
    code(() => pool.free(8)),
    'ERR_KIT_POOL_FREE',
  );
  assert.is(
    code(() => pool.free(-1)),
    'ERR_KIT_POOL_FREE',
  );
  assert.is(
    code(() => pool.free(1.5)),
    'ERR_KIT_POOL_FREE',
  );
  assert.is(pool.available, 8);
});

test('LIFO reuse: the buffer freed last comes back first (cache-warm)', () => {
  const pool = new BufferPool(window(8192), 1024);
  const xs = [pool.alloc(), pool.alloc(), pool.alloc()];
  pool.free(xs[0]!);
  pool.free(xs[2]!);
  assert.is(pool.alloc(), xs[2]);
  assert.is(pool.alloc(), xs[0]);
});

test('geometry errors are explained', () => {
  const w = window(8192);
  assert.is(
    code(() => new BufferPool(w, 0)),
    'ERR_KIT_ARG',
  );
  assert.is(
    code(() => new BufferPool(w, 4096, { count: 3 })),
    'ERR_KIT_ARG',
  );
  assert.is(
    code(() => new BufferPool(w, 4096, { offset: 8192 })),
    'ERR_KIT_ARG',
  );
});

test('alloc/free allocate nothing on the heap', () => {
  const pool = new BufferPool(window(1 << 20), 2048);
  const run = (n: number) => {
    for (let k = 0; k < n; k++) {
      const i = pool.alloc();
      pool.free(i);
    }
  };
  run(100000);
  if (global.gc) global.gc();
  const before = process.memoryUsage().heapUsed;
  run(1000000);
  const grown = process.memoryUsage().heapUsed - before;
  // A million alloc/free pairs that allocated even 8 bytes each would grow the heap by ~8 MB.
  assert.ok(grown < 1_000_000, `heap grew ${grown} bytes`);
});

test.run();
