/**
 * NBD_CMD_BLOCK_STATUS over `base:allocation`: holes and zeroes after trim and write-zeroes, data
 * after a write, REQ_ONE, bounded replies, refusals, and the map surviving a device replacement.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import { MAX_EXTENTS } from '../../../linkback/nbd/export.js';
import * as P from '../../../linkback/nbd/protocol.js';
import { GatedDevice, RawClient, pattern, suiteServer } from './helpers.js';

const t = suite('nbd block status');
const MiB = 1 << 20;
const H = P.NBD_STATE_HOLE;
const Z = P.NBD_STATE_ZERO;
const plain = new GatedDevice(4 * MiB);
plain.gate = false;
const gated = new GatedDevice(4 * MiB);
const tiny = new GatedDevice(4 * MiB);
tiny.gate = false;
const served = suiteServer(t, () => ({
  exports: [
    { name: 'mem', device: new MemoryBlockDevice({ size: 8 * MiB }) },
    { name: 'plain', device: plain },
    { name: 'gated', device: gated },
    { name: 'tiny-map', device: tiny, allocationMapRanges: 4 },
  ],
}));
const { sock } = served;

async function ok(c: RawClient, type: number, handle: number, offset: number, length: number, flags = 0): Promise<void> {
  c.request(type, handle, offset, length, { flags });
  const m = await c.chunks();
  assert.is(m.at(-1)!.error, 0, `request ${type} at ${offset}`);
}

t('memory device: never written is hole+zero; written chunks are data; zeroed and trimmed ranges holes again', async () => {
  const c = await RawClient.connect(sock);
  const { size } = await c.openStructured('mem');
  assert.equal((await c.blockStatus(1, 0, size)).extents, [[size, H | Z]]);
  assert.is(await c.writeAt(2, 0, pattern(256 * 1024, 1)), 0);
  await ok(c, P.NBD_CMD_WRITE_ZEROES, 3, 64 * 1024, 8192, P.NBD_CMD_FLAG_NO_HOLE);
  await ok(c, P.NBD_CMD_TRIM, 4, 128 * 1024, 64 * 1024);
  const r = await c.blockStatus(5, 0, 512 * 1024);
  assert.equal(r.extents, [
    [64 * 1024, 0],
    [8192, Z],
    [56 * 1024, 0],
    [64 * 1024, H | Z],
    [64 * 1024, 0],
    [256 * 1024, H | Z],
  ]);
  c.destroy();
});

t('a device without its own knowledge: what went through the export, and nothing else', async () => {
  const c = await RawClient.connect(sock);
  const { size } = await c.openStructured('plain');
  assert.equal((await c.blockStatus(1, 0, size)).extents, [[size, 0]], 'unknown is data');
  await ok(c, P.NBD_CMD_WRITE_ZEROES, 2, 0, MiB);
  await ok(c, P.NBD_CMD_WRITE_ZEROES, 3, MiB, 4096, P.NBD_CMD_FLAG_NO_HOLE);
  await ok(c, P.NBD_CMD_TRIM, 4, 2 * MiB, MiB);
  assert.is(await c.writeAt(5, 4096, pattern(512, 2)), 0);
  assert.equal((await c.blockStatus(6, 0, size)).extents, [
    [4096, H | Z],
    [512, 0],
    [MiB - 4608, H | Z],
    [4096, Z],
    [MiB - 4096, 0],
    [MiB, H],
    [MiB, 0],
  ]);
  c.destroy();
});

t('REQ_ONE: exactly one extent, never longer than asked; an extent never runs past the request', async () => {
  const c = await RawClient.connect(sock);
  await c.openStructured('plain');
  await ok(c, P.NBD_CMD_TRIM, 1, 0, 4 * MiB);
  assert.is(await c.writeAt(2, MiB, pattern(4096, 3)), 0);
  assert.equal((await c.blockStatus(3, 0, 4 * MiB, P.NBD_CMD_FLAG_REQ_ONE)).extents, [[MiB, H]]);
  assert.equal((await c.blockStatus(4, 0, 8192, P.NBD_CMD_FLAG_REQ_ONE)).extents, [[8192, H]]);
  assert.equal((await c.blockStatus(5, MiB - 4096, 16384)).extents, [
    [4096, H],
    [4096, 0],
    [8192, H],
  ]);
  c.destroy();
});

t(`at most ${MAX_EXTENTS} extents per reply; the client goes on from where it stopped`, async () => {
  const c = await RawClient.connect(sock);
  await c.openStructured('plain');
  await ok(c, P.NBD_CMD_WRITE_ZEROES, 1, 0, 4 * MiB);
  // Writes every other 1 KiB: 2 * 1500 alternating extents in the first 3000 KiB.
  for (let i = 0; i < 1500; i++) c.request(P.NBD_CMD_WRITE, 100 + i, i * 2048, 1024, { data: pattern(1024, i) });
  for (let i = 0; i < 1500; i++) assert.is((await c.reply()).error, 0);
  const first = await c.blockStatus(2, 0, 4 * MiB);
  assert.is(first.extents.length, MAX_EXTENTS);
  const covered = first.extents.reduce((a, [n]) => a + n, 0);
  assert.is(covered, (MAX_EXTENTS / 2) * 2048);
  const next = await c.blockStatus(3, covered, 4 * MiB - covered);
  assert.equal(next.extents[0], [1024, 0]);
  assert.is(next.extents.length, MAX_EXTENTS);
  const tail = await c.blockStatus(4, 1400 * 2048, 4 * MiB - 1400 * 2048);
  assert.is(tail.extents.length, 200, '100 writes, each followed by zeroes (the last run up to the end)');
  assert.equal(tail.extents.at(-1), [4 * MiB - 3000 * 1024 + 1024, H | Z]);
  c.destroy();
});

t('refused: past the end, zero length, misaligned, unknown flags, DF; each an error chunk, the stream in step', async () => {
  const c = await RawClient.connect(sock);
  const { size } = await c.openStructured('mem');
  for (const [what, off, len, flags] of [
    ['past the end', size - 512, 1024, 0],
    ['2^32-1 bytes past the end', 0, 0xffffffff, 0],
    ['at 2^63', 2 ** 63, 512, 0],
    ['zero length', 0, 0, 0],
    ['misaligned', 100, 512, 0],
    ['DF', 0, 512, P.NBD_CMD_FLAG_DF],
    ['NO_HOLE', 0, 512, P.NBD_CMD_FLAG_NO_HOLE],
    ['unknown flag', 0, 512, 1 << 12],
  ] as [string, number, number, number][]) {
    const r = await c.blockStatus(1, off, len, flags);
    assert.is(r.error, P.NBD_EINVAL, what);
    assert.equal(r.extents, [], what);
  }
  assert.is((await c.blockStatus(2, 0, 4096)).error, 0);
  c.destroy();
  // Without negotiation: EINVAL, and with simple replies a simple one.
  const s = await RawClient.connect(sock);
  await s.open('mem');
  s.request(P.NBD_CMD_BLOCK_STATUS, 3, 0, 4096);
  const m = await s.message();
  assert.equal([m.simple, m.error], [true, P.NBD_EINVAL]);
  assert.is((await s.readAt(4, 0, 512)).error, 0);
  s.destroy();
});

t('a trim racing an overlapping write is not recorded; the map outlives a device replacement', async () => {
  const c = await RawClient.connect(sock);
  await c.openStructured('gated');
  gated.gate = true;
  c.request(P.NBD_CMD_TRIM, 1, 0, MiB);
  c.request(P.NBD_CMD_WRITE, 2, 4096, 512, { data: pattern(512, 1) });
  await gated.waitHeld(2);
  // The device applies the write first, then the trim: the map must not claim a hole it cannot know.
  gated.held.find((h) => h.op === 'write')!.release();
  gated.held.find((h) => h.op === 'trim')!.release();
  gated.held.length = 0;
  await c.chunks();
  await c.chunks();
  gated.gate = false;
  assert.equal((await c.blockStatus(3, 0, MiB)).extents, [[MiB, 0]]);
  await ok(c, P.NBD_CMD_WRITE_ZEROES, 4, 0, MiB);
  assert.equal((await c.blockStatus(5, 0, MiB)).extents, [[MiB, H | Z]]);
  // A restarted driver: same device shape, new object. What the export saw stays true.
  const again = new GatedDevice(4 * MiB);
  again.gate = false;
  served.server.replaceDevice('gated', again);
  assert.equal((await c.blockStatus(6, 0, MiB)).extents, [[MiB, H | Z]]);
  c.destroy();
});

t('a map at its cap forgets small ranges (reported as data), keeps answering', async () => {
  const c = await RawClient.connect(sock);
  await c.openStructured('tiny-map');
  for (let i = 0; i < 20; i++) await ok(c, P.NBD_CMD_WRITE_ZEROES, i + 1, i * 65536, (i + 1) * 512);
  const r = await c.blockStatus(100, 0, 20 * 65536);
  const zeroed = r.extents.filter(([, f]) => f !== 0);
  assert.is(zeroed.length, 4, 'at most 4 ranges remembered');
  assert.ok(
    zeroed.every(([n]) => n >= 17 * 512),
    'the largest are kept',
  );
  c.destroy();
});

t.run();
