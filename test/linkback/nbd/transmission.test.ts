/**
 * The transmission phase over a real unix socket: commands, pipelining and out-of-order replies,
 * when writes are acknowledged, and the error for every request the protocol says to refuse.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockDeviceError } from '../../../linkback/block-device.js';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import type { NbdEvent } from '../../../linkback/nbd/server.js';
import * as P from '../../../linkback/nbd/protocol.js';
import { GatedDevice, RawClient, pattern, suiteServer } from './helpers.js';

const t = suite('nbd transmission');
const MiB = 1 << 20;
const gated = new GatedDevice(4 * MiB);
const noFua = new GatedDevice(4 * MiB, { fua: false, trim: false, writeZeroes: false, multiConn: false });
noFua.gate = false;
const failing = new MemoryBlockDevice({ size: 4 * MiB, chunkSize: 65536, maxAllocatedBytes: 65536 });
const events: NbdEvent[] = [];
const served = suiteServer(t, () => ({
  exports: [
    { name: 'mem', device: new MemoryBlockDevice({ size: 16 * MiB }) },
    { name: 'gated', device: gated },
    { name: 'nofua', device: noFua },
    { name: 'ro', device: new MemoryBlockDevice({ size: MiB }), readOnly: true },
    { name: 'small', device: new MemoryBlockDevice({ size: 4 * MiB }), maxPayload: 64 * 1024 },
    { name: 'thin', device: failing },
  ],
  onEvent: (e) => events.push(e),
}));
const { sock } = served;

t('write then read back, across lengths and offsets; FUA and flush succeed', async () => {
  const c = await RawClient.connect(sock);
  await c.open('mem');
  const a = pattern(MiB + 4096, 1);
  assert.is(await c.writeAt(1, 3 * 512, a), 0);
  assert.is(await c.writeAt(2, 15 * MiB, pattern(MiB, 2), P.NBD_CMD_FLAG_FUA), 0);
  const r = await c.readAt(3, 3 * 512, a.length);
  assert.is(r.error, 0);
  assert.ok(r.data.equals(a));
  assert.ok((await c.readAt(4, 15 * MiB, MiB)).data.equals(pattern(MiB, 2)));
  c.request(P.NBD_CMD_FLUSH, 5, 0, 0);
  assert.equal(await c.reply(), { error: 0, handle: 5, data: Buffer.alloc(0) });
  assert.is((await c.readAt(6, 0, 0)).error, 0, 'a zero-length read');
  c.destroy();
});

t('trim and write-zeroes (with NO_HOLE) read back as zeroes', async () => {
  const c = await RawClient.connect(sock);
  await c.open('mem');
  assert.is(await c.writeAt(1, 0, pattern(256 * 1024, 3)), 0);
  c.request(P.NBD_CMD_TRIM, 2, 0, 128 * 1024);
  assert.is((await c.reply()).error, 0);
  c.request(P.NBD_CMD_WRITE_ZEROES, 3, 128 * 1024, 64 * 1024, { flags: P.NBD_CMD_FLAG_NO_HOLE | P.NBD_CMD_FLAG_FUA });
  assert.is((await c.reply()).error, 0);
  const r = await c.readAt(4, 0, 256 * 1024);
  assert.ok(r.data.subarray(0, 192 * 1024).every((x) => x === 0));
  assert.ok(r.data.subarray(192 * 1024).equals(pattern(256 * 1024, 3).subarray(192 * 1024)));
  c.destroy();
});

t('pipelined requests: all reach the device before any completes; replies follow completion order with handles echoed', async () => {
  gated.gate = true;
  const c = await RawClient.connect(sock);
  await c.open('gated');
  const N = 16;
  const handles = Array.from({ length: N }, (_, i) => 0x1_0000_0000 + i * 977);
  for (let i = 0; i < N; i++) c.request(P.NBD_CMD_READ, handles[i]!, i * 4096, 4096);
  await gated.waitHeld(N);
  assert.is(c.buffered, 0, 'no reply before the device completes');
  // Complete in reverse order.
  for (let i = N - 1; i >= 0; i--) gated.held.splice(i, 1)[0]!.release();
  const order: number[] = [];
  for (let i = 0; i < N; i++) {
    const r = await c.reply(() => 4096);
    assert.is(r.error, 0);
    order.push(r.handle);
  }
  assert.equal(order, [...handles].reverse());
  c.destroy();
});

t('4000 pipelined reads of distinct blocks through reused reply buffers: every one right', async () => {
  const c = await RawClient.connect(sock);
  await c.open('mem');
  const blocks = 64;
  for (let b = 0; b < blocks; b++) assert.is(await c.writeAt(b, 8 * MiB + b * 4096, pattern(4096, 100 + b)), 0);
  // Several rounds of 32 reads in flight, each round sent in one go, replies checked by handle
  // (reply-writer.test.ts checks the reuse rule itself with a socket that holds its writes).
  let handle = 1000,
    wrong = 0,
    n = 0;
  for (let round = 0; round < 125; round++) {
    const want = new Map<number, number>();
    for (let i = 0; i < 32; i++) {
      const b = (round * 7 + i * 13) % blocks;
      want.set(handle, b);
      c.request(P.NBD_CMD_READ, handle++, 8 * MiB + b * 4096, 4096);
    }
    for (let i = 0; i < 32; i++) {
      const r = await c.reply(() => 4096);
      assert.is(r.error, 0);
      if (!r.data.equals(pattern(4096, 100 + want.get(r.handle)!))) wrong++;
      n++;
    }
  }
  assert.is(n, 4000);
  assert.is(wrong, 0);
  c.destroy();
});

t('a write is acknowledged only after the device completes it', async () => {
  gated.gate = true;
  const c = await RawClient.connect(sock);
  await c.open('gated');
  c.request(P.NBD_CMD_WRITE, 7, 8192, 4096, { data: pattern(4096, 7), flags: P.NBD_CMD_FLAG_FUA });
  await gated.waitHeld(1);
  assert.is(gated.held[0]!.op, 'write-fua', 'FUA passed to a device that has it');
  await new Promise((r) => setTimeout(r, 50));
  assert.is(c.buffered, 0, 'no acknowledgement while the device holds the write');
  gated.held.shift()!.release();
  assert.equal((await c.reply()).error, 0);
  gated.gate = false;
  assert.ok((await c.readAt(8, 8192, 4096)).data.equals(pattern(4096, 7)));
  c.destroy();
});

t('FUA on a device without FUA: the server flushes before it replies; no TRIM/ZERO/MULTI_CONN advertised', async () => {
  const c = await RawClient.connect(sock);
  const { flags } = await c.open('nofua');
  assert.is(flags, P.NBD_FLAG_HAS_FLAGS | P.NBD_FLAG_SEND_FLUSH | P.NBD_FLAG_SEND_FUA | P.NBD_FLAG_SEND_CACHE);
  noFua.log.length = 0;
  assert.is(await c.writeAt(1, 0, pattern(4096, 1), P.NBD_CMD_FLAG_FUA), 0);
  assert.equal(noFua.log, ['write@0:start', 'write@0:done', 'flush@0:start', 'flush@0:done']);
  c.request(P.NBD_CMD_TRIM, 2, 0, 4096);
  assert.is((await c.reply()).error, P.NBD_EINVAL, 'TRIM not advertised');
  c.request(P.NBD_CMD_WRITE_ZEROES, 3, 0, 4096);
  assert.is((await c.reply()).error, P.NBD_EINVAL, 'WRITE_ZEROES not advertised');
  c.destroy();
});

t("refused requests get the protocol's error and the stream stays in step", async () => {
  const c = await RawClient.connect(sock);
  const { size } = await c.open('mem');
  const cases: [string, () => void, number][] = [
    ['read past the end', () => c.request(P.NBD_CMD_READ, 1, size - 512, 1024), P.NBD_EINVAL],
    ['read at 2^63', () => c.request(P.NBD_CMD_READ, 1, 2 ** 63, 512), P.NBD_EINVAL],
    ['write past the end', () => c.request(P.NBD_CMD_WRITE, 1, size - 512, 1024, { data: Buffer.alloc(1024, 1) }), P.NBD_ENOSPC],
    ['write-zeroes past the end', () => c.request(P.NBD_CMD_WRITE_ZEROES, 1, size, 512), P.NBD_ENOSPC],
    ['trim past the end', () => c.request(P.NBD_CMD_TRIM, 1, size, 512), P.NBD_EINVAL],
    ['misaligned read', () => c.request(P.NBD_CMD_READ, 1, 100, 512), P.NBD_EINVAL],
    ['misaligned write', () => c.request(P.NBD_CMD_WRITE, 1, 0, 100, { data: Buffer.alloc(100, 1) }), P.NBD_EINVAL],
    ['read over the maximum payload', () => c.request(P.NBD_CMD_READ, 1, 0, 32 * MiB + 512), P.NBD_EINVAL],
    ['unknown command 9', () => c.request(9, 1, 0, 512), P.NBD_EINVAL],
    ['NBD_CMD_CACHE past the end', () => c.request(P.NBD_CMD_CACHE, 1, size - 512, 1024), P.NBD_EINVAL],
    ['NBD_CMD_CACHE with NO_HOLE', () => c.request(P.NBD_CMD_CACHE, 1, 0, 512, { flags: P.NBD_CMD_FLAG_NO_HOLE }), P.NBD_EINVAL],
    ['misaligned NBD_CMD_CACHE', () => c.request(P.NBD_CMD_CACHE, 1, 100, 512), P.NBD_EINVAL],
    ['NBD_CMD_BLOCK_STATUS (not negotiated)', () => c.request(P.NBD_CMD_BLOCK_STATUS, 1, 0, 512), P.NBD_EINVAL],
    ['unknown flag on read', () => c.request(P.NBD_CMD_READ, 1, 0, 512, { flags: 1 << 9 }), P.NBD_EINVAL],
    ['DF without structured replies', () => c.request(P.NBD_CMD_READ, 1, 0, 512, { flags: P.NBD_CMD_FLAG_DF }), P.NBD_EINVAL],
    ['NO_HOLE on a write', () => c.request(P.NBD_CMD_WRITE, 1, 0, 512, { flags: P.NBD_CMD_FLAG_NO_HOLE, data: Buffer.alloc(512, 1) }), P.NBD_EINVAL],
    ['FAST_ZERO on a trim', () => c.request(P.NBD_CMD_TRIM, 1, 0, 512, { flags: P.NBD_CMD_FLAG_FAST_ZERO }), P.NBD_EINVAL],
    ['REQ_ONE on a read', () => c.request(P.NBD_CMD_READ, 1, 0, 512, { flags: P.NBD_CMD_FLAG_REQ_ONE }), P.NBD_EINVAL],
    ['flush with a length', () => c.request(P.NBD_CMD_FLUSH, 1, 0, 512), P.NBD_EINVAL],
  ];
  for (const [what, send, err] of cases) {
    send();
    const r = await c.reply();
    assert.is(r.error, err, what);
    assert.is(r.data.length, 0, `${what}: no data with an error`);
  }
  // The stream is still in step: a plain read after all the refusals works.
  const r = await c.readAt(2, 14 * MiB, 1024);
  assert.is(r.error, 0);
  assert.ok(
    r.data.every((x) => x === 0),
    'never-written data reads as zeroes',
  );
  c.destroy();
  const st = served.server.stats().exports['mem']!;
  assert.ok(st.errors['EINVAL']! >= 13 && st.errors['ENOSPC']! >= 2, JSON.stringify(st.errors));
});

t('read-only export: write, trim and write-zeroes get EPERM; reads work', async () => {
  const c = await RawClient.connect(sock);
  const { flags } = await c.open('ro');
  assert.ok(flags & P.NBD_FLAG_READ_ONLY);
  assert.is(await c.writeAt(1, 0, Buffer.alloc(4096, 1)), P.NBD_EPERM);
  c.request(P.NBD_CMD_TRIM, 2, 0, 4096);
  assert.is((await c.reply()).error, P.NBD_EPERM);
  c.request(P.NBD_CMD_WRITE_ZEROES, 3, 0, 4096);
  assert.is((await c.reply()).error, P.NBD_EPERM);
  const r = await c.readAt(4, 0, 4096);
  assert.is(r.error, 0);
  assert.ok(
    r.data.every((x) => x === 0),
    'the refused write changed nothing',
  );
  c.destroy();
});

t('a write over the maximum payload (but under 32 MiB) is skipped and refused; the next request works', async () => {
  const c = await RawClient.connect(sock);
  await c.open('small');
  assert.is(await c.writeAt(1, 0, pattern(128 * 1024, 5)), P.NBD_EINVAL);
  c.request(P.NBD_CMD_READ, 2, 0, 128 * 1024);
  assert.is((await c.reply()).error, P.NBD_EINVAL, 'read over 64 KiB refused too');
  const r = await c.readAt(3, 0, 64 * 1024);
  assert.is(r.error, 0);
  assert.ok(
    r.data.every((x) => x === 0),
    'the refused write changed nothing',
  );
  assert.is(await c.writeAt(4, 0, pattern(64 * 1024, 6)), 0);
  c.destroy();
});

t('device failures map to NBD errors and are reported through the hook', async () => {
  const c = await RawClient.connect(sock);
  await c.open('thin');
  assert.is(await c.writeAt(1, 0, pattern(65536, 1)), 0);
  events.length = 0;
  assert.is(await c.writeAt(2, 65536, pattern(4096, 2)), P.NBD_ENOSPC, 'thin device out of space');
  const ev = events.find((e) => e.type === 'device-error');
  assert.ok(ev && ev.type === 'device-error' && ev.kind === 'ENOSPC' && ev.command === 'write' && ev.offset === 65536);
  c.destroy();

  gated.gate = true;
  const g = await RawClient.connect(sock);
  await g.open('gated');
  g.request(P.NBD_CMD_READ, 3, 0, 4096);
  g.request(P.NBD_CMD_FLUSH, 4, 0, 0);
  await gated.waitHeld(2);
  gated.held.shift()!.fail(new Error('controller timeout'));
  gated.held.shift()!.fail(new BlockDeviceError('ESHUTDOWN', 'driver restarting'));
  const a = await g.reply(() => 4096);
  const b = await g.reply();
  assert.equal([a.handle, a.error, a.data.length], [3, P.NBD_EIO, 0], 'a failed read carries no data');
  assert.equal([b.handle, b.error], [4, P.NBD_ESHUTDOWN]);
  assert.ok(served.server.stats().exports['gated']!.deviceErrors >= 2);
  g.destroy();
});

t('NBD_CMD_DISC: outstanding requests are answered, then the server closes', async () => {
  gated.gate = true;
  const c = await RawClient.connect(sock);
  await c.open('gated');
  c.request(P.NBD_CMD_WRITE, 1, 0, 4096, { data: pattern(4096, 9) });
  c.request(P.NBD_CMD_READ, 2, 4096, 4096);
  await gated.waitHeld(2);
  c.request(P.NBD_CMD_DISC, 3, 0, 0);
  await new Promise((r) => setTimeout(r, 50));
  assert.not.ok(c.closed, 'still open while requests are in flight');
  for (const h of gated.held.splice(0)) h.release();
  const got = [await c.reply((h) => (h === 2 ? 4096 : 0)), await c.reply((h) => (h === 2 ? 4096 : 0))].map((r) => [r.handle, r.error]);
  assert.equal(got.sort(), [
    [1, 0],
    [2, 0],
  ]);
  assert.ok(await c.waitClosed());
  gated.gate = false;
});

t('counters: requests and bytes per export', async () => {
  const before = served.server.stats().exports['mem']!;
  const c = await RawClient.connect(sock);
  await c.open('mem');
  await c.writeAt(1, 0, pattern(8192, 1));
  await c.readAt(2, 0, 8192);
  await c.readAt(3, 0, 4096);
  c.destroy();
  await c.waitClosed();
  await new Promise((r) => setTimeout(r, 20));
  const s = served.server.stats();
  const after = s.exports['mem']!;
  assert.is(after.writes - before.writes, 1);
  assert.is(after.reads - before.reads, 2);
  assert.is(after.bytesWritten - before.bytesWritten, 8192);
  assert.is(after.bytesRead - before.bytesRead, 12288);
  assert.is(after.connectionsTotal - before.connectionsTotal, 1);
  assert.is(after.connectionsActive, 0);
});

t.run();
