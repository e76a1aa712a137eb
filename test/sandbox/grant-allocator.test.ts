/**
 * The container's DMA allocator: served only from windows of exactly the asked permission, IOVA
 * alignment honoured, reserved ranges (the block ring's data areas) never handed out, a clear
 * error naming the missing access, freed ranges merged and reused.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GrantAllocator, type Grant } from '../../sandbox/container/dma.js';
import { DEVICE_READS, DEVICE_READS_WRITES, DEVICE_WRITES } from '../../drivers/contract/platform.js';

function grant(id: number, iova: bigint, size: number, read: boolean, write: boolean): Grant {
  return { id, iova, size, perm: { read, write }, bytes: new Uint8Array(size).fill(0xee) };
}

test('each allocation comes from a window with exactly its permission, zeroed', () => {
  const a = new GrantAllocator([grant(0, 0x1000n, 0x10000, true, false), grant(1, 0x20000n, 0x10000, false, true)]);
  const r = a.alloc(100, DEVICE_READS);
  const w = a.alloc(4096, DEVICE_WRITES);
  assert.ok(r.iova >= 0x1000n && r.iova < 0x11000n);
  assert.ok(w.iova >= 0x20000n && w.iova < 0x30000n);
  assert.is(r.size, 4096, 'page-rounded');
  assert.ok(
    r.bytes.every((b) => b === 0),
    'zeroed',
  );
  assert.equal(r.perm, { read: true, write: false });
  try {
    a.alloc(4096, DEVICE_READS_WRITES);
    assert.unreachable('no read-write window: refused, never served from a narrower or wider one');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_CONTAINER_DMA_EXHAUSTED');
    assert.match((e as Error).message, /access 'read-write'/);
  }
});

test('IOVA alignment, reserved ranges, exhaustion, free and merge', () => {
  const a = new GrantAllocator([grant(0, 0x3000n, 0x40000, true, false)], [{ grant: 0, bytes: 0x10000 }]);
  const first = a.alloc(4096, DEVICE_READS);
  assert.ok(first.iova >= 0x13000n, 'the reserved first 64 KiB are never handed out');
  const big = a.alloc(0x10000, DEVICE_READS, { align: 0x10000 });
  assert.is(big.iova % 0x10000n, 0n);
  assert.throws(() => a.alloc(0x40000, DEVICE_READS), /no granted window/);
  a.free(big);
  a.free(first);
  assert.is(a.liveCount, 0);
  assert.is(a.available(DEVICE_READS), 0x30000, 'freed ranges merged back');
  const again = a.alloc(0x30000, DEVICE_READS);
  assert.is(again.iova, 0x13000n);
  assert.throws(() => a.free({ ...again }), /did not hand out/);
});

test.run();
