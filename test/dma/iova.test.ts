import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IovaAllocator } from '../../dma/iova.js';
import { DmaError } from '../../dma/errors.js';

const PAGE = 4096;
const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as DmaError).code;
  }
  return 'no error';
};

test('never hands out the page at IOVA 0', () => {
  const a = new IovaAllocator([{ start: 0n, end: 0xffffn }], { pageSize: PAGE });
  const first = a.alloc(PAGE);
  assert.is(first, 0x1000n);
  assert.is(a.freeBytes, 0x10000n - 0x2000n);
});

test('stays inside the reported ranges, skipping the MSI hole', () => {
  const a = new IovaAllocator(
    [
      { start: 0n, end: 0x2fffn },
      { start: 0xfef00000n, end: 0xfef0ffffn },
    ],
    { pageSize: PAGE },
  );
  assert.is(a.alloc(0x2000), 0x1000n);
  // The first range is full now: 0x3000 must not be used (it is outside every range).
  const b = a.alloc(0x1000);
  assert.is(b, 0xfef00000n);
  assert.is(
    code(() => a.alloc(0x10000)),
    'ERR_DMA_IOVA_EXHAUSTED',
  );
});

test('a 39-bit address width clamps a 64-bit range', () => {
  const top = 1n << 39n;
  const a = new IovaAllocator([{ start: top - 0x4000n, end: 0xffff_ffff_ffff_ffffn }], { pageSize: PAGE, addressWidth: 39 });
  const x = a.alloc(0x4000);
  assert.is(x, top - 0x4000n);
  assert.ok(x + 0x4000n <= top);
  assert.is(
    code(() => a.alloc(PAGE)),
    'ERR_DMA_IOVA_EXHAUSTED',
  );
  assert.is(
    code(() => new IovaAllocator([{ start: top, end: top + 0xfffffn }], { pageSize: PAGE, addressWidth: 39 })),
    'ERR_DMA_ARG',
  );
});

test('alignment: a 2 MiB-aligned request skips to the next 2 MiB boundary', () => {
  const a = new IovaAllocator([{ start: 0n, end: (1n << 30n) - 1n }], { pageSize: PAGE });
  a.alloc(PAGE);
  const big = a.alloc(PAGE, 2 << 20);
  assert.is(big % (2n << 20n), 0n);
  assert.is(big, 2n << 20n);
  // The gap before it is still free and used first by a small request.
  assert.is(a.alloc(PAGE), 0x2000n);
  assert.is(
    code(() => a.alloc(PAGE, 3000)),
    'ERR_DMA_ARG',
  );
});

test('sizes round up to whole pages', () => {
  const a = new IovaAllocator([{ start: 0n, end: 0xfffffn }], { pageSize: PAGE });
  const x = a.alloc(1);
  const y = a.alloc(1);
  assert.is(y - x, 0x1000n);
  assert.is(a.allocated, 0x2000n);
});

test('freed neighbours merge back into one run, in any order', () => {
  const a = new IovaAllocator([{ start: 0n, end: 0xfffffn }], { pageSize: PAGE });
  const xs = [a.alloc(PAGE), a.alloc(2 * PAGE), a.alloc(PAGE), a.alloc(3 * PAGE)];
  const sizes = [PAGE, 2 * PAGE, PAGE, 3 * PAGE];
  assert.is(a.freeRuns, 1);
  for (const i of [2, 0, 3, 1]) a.release(xs[i]!, sizes[i]!);
  assert.is(a.freeRuns, 1);
  assert.is(a.allocated, 0n);
  assert.is(a.largestFree, 0x100000n - 0x1000n);
});

test('double release and foreign ranges are refused', () => {
  const a = new IovaAllocator([{ start: 0n, end: 0xfffffn }], { pageSize: PAGE });
  const x = a.alloc(PAGE);
  a.release(x, PAGE);
  assert.is(
    code(() => a.release(x, PAGE)),
    'ERR_DMA_ARG',
  );
  assert.is(
    code(() => a.release(0x200000n, PAGE)),
    'ERR_DMA_ARG',
  );
  assert.is(
    code(() => a.release(0x1800n, PAGE)),
    'ERR_DMA_ARG',
  );
});

test('exhaustion says how much is free', () => {
  const a = new IovaAllocator([{ start: 0n, end: 0x4fffn }], { pageSize: PAGE });
  a.alloc(PAGE);
  a.alloc(PAGE);
  try {
    a.alloc(3 * PAGE);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, DmaError);
    assert.is((e as DmaError).code, 'ERR_DMA_IOVA_EXHAUSTED');
    assert.match((e as Error).message, /free: 8192 bytes/);
  }
});

test('bad construction is refused clearly', () => {
  assert.is(
    code(() => new IovaAllocator([], { pageSize: PAGE })),
    'ERR_DMA_ARG',
  );
  assert.is(
    code(() => new IovaAllocator([{ start: 0n, end: 0xfffn }], { pageSize: PAGE })),
    'ERR_DMA_ARG',
  );
  assert.is(
    code(() => new IovaAllocator([{ start: 0n, end: 0xffffn }], { pageSize: 1000 })),
    'ERR_DMA_ARG',
  );
  assert.is(
    code(
      () =>
        new IovaAllocator(
          [
            { start: 0n, end: 0xffffn },
            { start: 0x8000n, end: 0x1ffffn },
          ],
          { pageSize: PAGE },
        ),
    ),
    'ERR_DMA_ARG',
  );
});

test.run();
