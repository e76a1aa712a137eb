import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockDeviceError, BlockGeometryError, blockErrorKind, type BlockErrorKind } from '../../linkback/block-device.js';
import { MemoryBlockDevice } from '../../linkback/memory-block-device.js';

async function rejectsWith(p: Promise<unknown>, kind: string): Promise<BlockDeviceError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, BlockDeviceError);
    assert.is((e as BlockDeviceError).kind, kind);
    assert.is((e as BlockDeviceError).code, `ERR_BLOCK_${kind}`);
    return e as BlockDeviceError;
  }
  throw new Error(`expected a ${kind} rejection`);
}

test('a 1 GiB device costs nothing until written and reads zeroes', async () => {
  const d = new MemoryBlockDevice({ size: 1 << 30 });
  assert.is(d.allocatedBytes, 0);
  const b = new Uint8Array(4096).fill(0xaa);
  await d.read((1 << 30) - 4096, b);
  assert.ok(b.every((x) => x === 0));
  assert.is(d.allocatedBytes, 0);
});

test('writes spanning chunks read back exactly; only touched chunks are allocated', async () => {
  const d = new MemoryBlockDevice({ size: 1 << 20, chunkSize: 4096 });
  const data = new Uint8Array(3 * 4096 + 1024).map((_, i) => (i * 7 + 3) & 0xff);
  await d.write(4096 - 512, data, false);
  assert.is(d.allocatedBytes, 5 * 4096);
  const back = new Uint8Array(data.length + 1024);
  await d.read(4096 - 1024, back);
  assert.ok(back.subarray(0, 512).every((x) => x === 0));
  assert.equal(back.subarray(512, 512 + data.length), data);
  assert.ok(back.subarray(512 + data.length).every((x) => x === 0));
});

test('trim and write-zeroes release whole chunks and zero partial ones; NO_HOLE keeps them', async () => {
  const d = new MemoryBlockDevice({ size: 1 << 20, chunkSize: 4096 });
  await d.write(0, new Uint8Array(16384).fill(1), false);
  assert.is(d.allocatedBytes, 16384);
  await d.trim(512, 8192, false); // zeroes 512..4096, frees chunk 1, zeroes 8192..8704
  assert.is(d.allocatedBytes, 3 * 4096);
  const b = new Uint8Array(16384);
  await d.read(0, b);
  assert.ok(b.subarray(0, 512).every((x) => x === 1));
  assert.ok(b.subarray(512, 8704).every((x) => x === 0));
  assert.ok(b.subarray(8704).every((x) => x === 1));
  await d.writeZeroes(8192, 8192, false, true);
  assert.is(d.allocatedBytes, 3 * 4096, 'NO_HOLE keeps chunks allocated');
  await d.writeZeroes(20480, 4096, false, true);
  assert.is(d.allocatedBytes, 4 * 4096, 'NO_HOLE provisions a hole');
  await d.writeZeroes(0, 16384, false, false);
  assert.is(d.allocatedBytes, 4096);
  await d.read(0, b);
  assert.ok(b.every((x) => x === 0));
});

test('out of range, misaligned, read-only and thin-provisioning errors carry their kind', async () => {
  const d = new MemoryBlockDevice({ size: 8192 });
  await rejectsWith(d.read(4096, new Uint8Array(8192)), 'EINVAL');
  await rejectsWith(d.write(4096, new Uint8Array(8192), false), 'ENOSPC');
  await rejectsWith(d.write(100, new Uint8Array(512), false), 'EINVAL');
  await rejectsWith(d.read(0, new Uint8Array(100)), 'EINVAL');
  const ro = new MemoryBlockDevice({ size: 8192, readOnly: true });
  await rejectsWith(ro.write(0, new Uint8Array(512), false), 'EPERM');
  await rejectsWith(ro.trim(0, 512, false), 'EPERM');
  const thin = new MemoryBlockDevice({ size: 1 << 20, chunkSize: 4096, maxAllocatedBytes: 8192 });
  await thin.write(0, new Uint8Array(8192).fill(9), false);
  await rejectsWith(thin.write(8192, new Uint8Array(512), false), 'ENOSPC');
  await thin.write(4096, new Uint8Array(512), false); // within an allocated chunk: fine
  await rejectsWith(thin.writeZeroes(8192, 4096, false, true), 'ENOSPC'); // NO_HOLE needs a chunk
  await thin.writeZeroes(8192, 4096, false, false); // a hole costs nothing
  assert.is(thin.allocatedBytes, 8192);
  const keep = new Uint8Array(8192);
  await thin.read(0, keep);
  assert.is(keep[0], 9, 'a failed write changed nothing');
});

/** A completion that records how it ended, and checks it ends once. */
function completion() {
  const c = {
    ends: 0,
    error: undefined as unknown,
    complete(): void {
      c.ends++;
    },
    fail(err: unknown): void {
      c.ends++;
      c.error = err;
    },
  };
  return c;
}

test("readTo and writeFrom: at an index of the caller's array, across chunks, ended once and at once; errors through the completion", async () => {
  const d = new MemoryBlockDevice({ size: 1 << 20, chunkSize: 4096, maxAllocatedBytes: 3 * 4096 });
  const src = new Uint8Array(100 + 8192).fill(0x11);
  src.fill(0x22, 100 + 4096);
  const w = completion();
  d.writeFrom(2048, src, 100, 8192, false, w);
  assert.is(w.ends, 1, 'ended before writeFrom returned');
  assert.is(w.error, undefined);
  assert.is(d.allocatedBytes, 3 * 4096, 'the three chunks the range touches');
  const back = new Uint8Array(8192);
  await d.read(2048, back);
  assert.ok(back.subarray(0, 4096).every((x) => x === 0x11) && back.subarray(4096).every((x) => x === 0x22));
  const into = new Uint8Array(28 + 4096 + 512).fill(0xee);
  const r = completion();
  d.readTo(6144, into, 28, 4096 + 512, r);
  assert.is(r.ends, 1);
  assert.ok(
    into.subarray(28, 28 + 4096).every((x) => x === 0x22),
    'written data (device bytes 6144 to 10240)',
  );
  assert.ok(
    into.subarray(28 + 4096, 28 + 4096 + 512).every((x) => x === 0),
    'past the write: zeroes',
  );
  assert.ok(
    into.subarray(0, 28).every((x) => x === 0xee),
    'nothing before the index',
  );
  const fails: [string, (c: ReturnType<typeof completion>) => void][] = [
    ['EINVAL', (c) => d.readTo(1 << 20, into, 0, 512, c)],
    ['EINVAL', (c) => d.readTo(0, into, into.length - 100, 512, c)],
    ['ENOSPC', (c) => d.writeFrom(1 << 20, src, 0, 512, false, c)],
    ['ENOSPC', (c) => d.writeFrom(64 * 4096, src, 0, 4096, false, c)], // a fourth chunk: past the allocation limit
    ['EINVAL', (c) => d.writeFrom(0, src, 0, 100, false, c)],
  ];
  for (const [kind, call] of fails) {
    const c = completion();
    call(c);
    assert.is(c.ends, 1);
    assert.instance(c.error, BlockDeviceError);
    assert.is((c.error as BlockDeviceError).kind, kind);
  }
  const ro = new MemoryBlockDevice({ size: 1 << 20, readOnly: true });
  const c = completion();
  ro.writeFrom(0, src, 0, 512, false, c);
  assert.is((c.error as BlockDeviceError).kind, 'EPERM');
});

test('bad geometry is refused with a clear error', () => {
  assert.throws(
    () => new MemoryBlockDevice({ size: 1000 }),
    (e: unknown) => e instanceof BlockGeometryError && e.code === 'ERR_BLOCK_GEOMETRY' && /1000/.test(e.message),
  );
  assert.throws(() => new MemoryBlockDevice({ size: 4096, blockSize: 768 }), /power of two/);
  assert.throws(() => new MemoryBlockDevice({ size: 4096, chunkSize: 256 }), /chunk size/);
});

test('blockErrorKind maps foreign errors to EIO and keeps ours', () => {
  assert.is(blockErrorKind(new BlockDeviceError('ENOSPC', 'x')), 'ENOSPC');
  assert.is(blockErrorKind(new Error('boom')), 'EIO');
  assert.is(blockErrorKind({ kind: 'EPERM' }), 'EPERM');
  assert.is(blockErrorKind({ kind: 'EWHAT' }), 'EIO');
  assert.is(blockErrorKind(undefined), 'EIO');
});

test('each failure kind has its code ERR_BLOCK_<KIND>, and a foreign error with any kind maps back to it', () => {
  const kinds: BlockErrorKind[] = ['EPERM', 'EIO', 'ENOMEM', 'EINVAL', 'ENOSPC', 'EDQUOT', 'EFBIG', 'EOVERFLOW', 'ENOTSUP', 'ESHUTDOWN'];
  for (const k of kinds) {
    const e = new BlockDeviceError(k, 'x');
    assert.is(e.code, `ERR_BLOCK_${k}`);
    assert.is(e.name, 'BlockDeviceError');
    assert.is(blockErrorKind({ kind: k }), k);
  }
});

test.run();
