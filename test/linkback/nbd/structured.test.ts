/**
 * Structured replies over a real unix socket: negotiation (order, repetition, data), the metadata
 * context options, reads as OFFSET_DATA / OFFSET_HOLE chunks (DF honoured), error chunks, CACHE
 * and fast zero.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockDeviceError } from '../../../linkback/block-device.js';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import * as P from '../../../linkback/nbd/protocol.js';
import { GatedDevice, RawClient, metaData, pattern, suiteServer } from './helpers.js';

const t = suite('nbd structured replies');
const MiB = 1 << 20;
const plain = new GatedDevice(4 * MiB); // no blockStatus of its own: only the export's map knows
plain.gate = false;
const broken = new GatedDevice(MiB, { writeZeroes: true });
broken.gate = false;
broken.read = () => Promise.reject(new BlockDeviceError('EIO', 'media error'));
broken.writeZeroes = () => Promise.reject(new BlockDeviceError('ENOTSUP', 'no fast zeroing here'));
const served = suiteServer(t, () => ({
  exports: [
    { name: 'mem', device: new MemoryBlockDevice({ size: 8 * MiB }), description: 'memory' },
    { name: 'plain', device: plain },
    { name: 'broken', device: broken },
    { name: 'ro', device: new MemoryBlockDevice({ size: MiB }), readOnly: true },
  ],
}));
const { sock } = served;

t('NBD_OPT_STRUCTURED_REPLY: ACK once; with data or a second time NBD_REP_ERR_INVALID; GO then adds SEND_DF', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  const before = await c.infoOrGo(P.NBD_OPT_INFO, 'mem', []);
  assert.is(before.infos.get(P.NBD_INFO_EXPORT)!.readUInt16BE(8) & P.NBD_FLAG_SEND_DF, 0, 'no SEND_DF before structured replies');
  c.sendOption(P.NBD_OPT_STRUCTURED_REPLY, Buffer.from('x'));
  assert.is((await c.optionReply()).type, P.NBD_REP_ERR_INVALID);
  c.sendOption(P.NBD_OPT_STRUCTURED_REPLY);
  assert.is((await c.optionReply()).type, P.NBD_REP_ACK);
  c.sendOption(P.NBD_OPT_STRUCTURED_REPLY);
  const again = await c.optionReply();
  assert.is(again.type, P.NBD_REP_ERR_INVALID);
  assert.match(again.data.toString(), /already/);
  const go = await c.infoOrGo(P.NBD_OPT_GO, 'mem', []);
  assert.is(go.final, P.NBD_REP_ACK);
  assert.ok(go.infos.get(P.NBD_INFO_EXPORT)!.readUInt16BE(8) & P.NBD_FLAG_SEND_DF);
  c.destroy();
});

t('metadata-context options before structured replies: NBD_REP_ERR_INVALID', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  for (const opt of [P.NBD_OPT_LIST_META_CONTEXT, P.NBD_OPT_SET_META_CONTEXT]) {
    c.sendOption(opt, metaData('mem', ['base:allocation']));
    const r = await c.optionReply();
    assert.is(r.type, P.NBD_REP_ERR_INVALID);
    assert.match(r.data.toString(), /STRUCTURED_REPLY first/);
  }
  c.destroy();
});

t('LIST_META_CONTEXT: no query, "base:" and "base:allocation" list it; other namespaces and leaves are ignored', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  c.sendOption(P.NBD_OPT_STRUCTURED_REPLY);
  await c.optionReply();
  for (const [queries, listed] of [
    [[], true],
    [['base:'], true],
    [['base:allocation', 'base:allocation'], true],
    [['x-dirty:bitmap', 'base:unknown-leaf', 'qemu:dirty-bitmap:a'], false],
  ] as [string[], boolean][]) {
    c.sendOption(P.NBD_OPT_LIST_META_CONTEXT, metaData('mem', queries));
    const rs = await c.optionReplies();
    assert.is(rs.at(-1)!.type, P.NBD_REP_ACK, JSON.stringify(queries));
    const names = rs.filter((r) => r.type === P.NBD_REP_META_CONTEXT).map((r) => r.data.subarray(4).toString());
    assert.equal(names, listed ? ['base:allocation'] : [], JSON.stringify(queries));
  }
  c.sendOption(P.NBD_OPT_LIST_META_CONTEXT, metaData('nope', []));
  assert.is((await c.optionReply()).type, P.NBD_REP_ERR_UNKNOWN);
  c.destroy();
});

t('SET_META_CONTEXT selects base:allocation with a context id; "base:" alone selects nothing', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  c.sendOption(P.NBD_OPT_STRUCTURED_REPLY);
  await c.optionReply();
  c.sendOption(P.NBD_OPT_SET_META_CONTEXT, metaData('mem', ['base:']));
  assert.equal(
    (await c.optionReplies()).map((r) => r.type),
    [P.NBD_REP_ACK],
  );
  c.sendOption(P.NBD_OPT_SET_META_CONTEXT, metaData('mem', ['x-other:thing', 'base:allocation']));
  const rs = await c.optionReplies();
  assert.equal(
    rs.map((r) => r.type),
    [P.NBD_REP_META_CONTEXT, P.NBD_REP_ACK],
  );
  assert.is(rs[0]!.data.subarray(4).toString(), 'base:allocation');
  const go = await c.infoOrGo(P.NBD_OPT_GO, 'mem', []);
  assert.is(go.final, P.NBD_REP_ACK);
  const bs = await c.blockStatus(1, 0, 4096);
  assert.is(bs.error, 0);
  assert.is(bs.id, rs[0]!.data.readUInt32BE(0));
  c.destroy();
});

t('block status needs the context selected, for the export in use, by the last SET_META_CONTEXT', async () => {
  // Selected for another export than the one GO picks.
  const a = await RawClient.connect(sock);
  await a.greet();
  a.sendOption(P.NBD_OPT_STRUCTURED_REPLY);
  await a.optionReply();
  a.sendOption(P.NBD_OPT_SET_META_CONTEXT, metaData('plain', ['base:allocation']));
  await a.optionReplies();
  assert.is((await a.infoOrGo(P.NBD_OPT_GO, 'mem', [])).final, P.NBD_REP_ACK);
  const r = await a.blockStatus(1, 0, 4096);
  assert.is(r.error, P.NBD_EINVAL);
  a.destroy();
  // A later SET_META_CONTEXT that fails replaces the selection with nothing.
  const b = await RawClient.connect(sock);
  await b.greet();
  b.sendOption(P.NBD_OPT_STRUCTURED_REPLY);
  await b.optionReply();
  b.sendOption(P.NBD_OPT_SET_META_CONTEXT, metaData('mem', ['base:allocation']));
  await b.optionReplies();
  b.sendOption(P.NBD_OPT_SET_META_CONTEXT, metaData('mem', ['no-colon']));
  assert.is((await b.optionReply()).type, P.NBD_REP_ERR_INVALID);
  assert.is((await b.infoOrGo(P.NBD_OPT_GO, 'mem', [])).final, P.NBD_REP_ACK);
  assert.is((await b.blockStatus(1, 0, 4096)).error, P.NBD_EINVAL);
  // The stream is in step: a read still works.
  const rd = await b.readStructured(2, 0, 4096);
  assert.is(rd.error, 0);
  b.destroy();
});

t('a read is one OFFSET_DATA chunk with DONE; a zero-length read is NONE with DONE', async () => {
  const c = await RawClient.connect(sock);
  await c.openStructured('mem');
  const data = pattern(128 * 1024, 3);
  assert.is(await c.writeAt(1, 0, data), 0);
  const r = await c.readStructured(2, 0, data.length);
  assert.is(r.chunks.length, 1);
  assert.is(r.chunks[0]!.type, P.NBD_REPLY_TYPE_OFFSET_DATA);
  assert.is(r.chunks[0]!.flags, P.NBD_REPLY_FLAG_DONE);
  assert.ok(r.data.equals(data));
  c.request(P.NBD_CMD_READ, 3, 0, 0);
  const none = await c.chunks();
  assert.equal(
    none.map((x) => [x.type, x.flags, x.payload.length]),
    [[P.NBD_REPLY_TYPE_NONE, P.NBD_REPLY_FLAG_DONE, 0]],
  );
  c.destroy();
});

t('a read over known zeroes: OFFSET_HOLE chunks between OFFSET_DATA; with DF one data chunk', async () => {
  for (const name of ['mem', 'plain']) {
    const c = await RawClient.connect(sock);
    await c.openStructured(name);
    const data = pattern(256 * 1024, 4);
    assert.is(await c.writeAt(1, 0, data), 0);
    c.request(P.NBD_CMD_WRITE_ZEROES, 2, 64 * 1024, 64 * 1024);
    assert.is((await c.message()).error, 0);
    c.request(P.NBD_CMD_TRIM, 3, 192 * 1024, 64 * 1024);
    assert.is((await c.message()).error, 0);
    const expect = Buffer.from(data);
    expect.fill(0, 64 * 1024, 128 * 1024);
    if (name === 'mem') expect.fill(0, 192 * 1024, 256 * 1024); // the memory disk's trims read as zeroes
    const r = await c.readStructured(4, 0, 256 * 1024);
    assert.is(r.error, 0);
    const types = r.chunks.map((x) => x.type);
    assert.ok(types.includes(P.NBD_REPLY_TYPE_OFFSET_HOLE), `${name}: ${types}`);
    assert.is(r.chunks.filter((x) => x.flags & P.NBD_REPLY_FLAG_DONE).length, 1, 'DONE once');
    assert.ok(r.chunks.at(-1)!.flags & P.NBD_REPLY_FLAG_DONE, 'DONE on the last chunk');
    if (name === 'mem') assert.ok(r.data.equals(expect), name);
    else assert.ok(r.data.subarray(0, 192 * 1024).equals(expect.subarray(0, 192 * 1024)), name);
    const holes = r.chunks.filter((x) => x.type === P.NBD_REPLY_TYPE_OFFSET_HOLE).map((x) => [Number(x.payload.readBigUInt64BE(0)), x.payload.readUInt32BE(8)]);
    assert.equal(holes[0], [64 * 1024, 64 * 1024], name);
    if (name === 'plain') assert.is(holes.length, 1, 'a trim on a device that may keep old data is not a zero hole');
    const df = await c.readStructured(5, 0, 256 * 1024, P.NBD_CMD_FLAG_DF);
    assert.equal(
      df.chunks.map((x) => [x.type, x.flags]),
      [[P.NBD_REPLY_TYPE_OFFSET_DATA, P.NBD_REPLY_FLAG_DONE]],
      `${name}: DF: one chunk`,
    );
    assert.ok(df.data.subarray(0, 192 * 1024).equals(expect.subarray(0, 192 * 1024)));
    // A write into the hole makes it data again.
    assert.is(await c.writeAt(6, 64 * 1024, pattern(4096, 6)), 0);
    expect.set(pattern(4096, 6), 64 * 1024);
    const after = await c.readStructured(7, 64 * 1024, 8192);
    assert.ok(after.data.equals(expect.subarray(64 * 1024, 72 * 1024)), name);
    c.destroy();
  }
});

t('errors are ERROR chunks with DONE: refused reads, device failures; fast zero gets ENOTSUP from the device', async () => {
  const c = await RawClient.connect(sock);
  const { size, flags } = await c.openStructured('broken', false);
  assert.ok(flags & P.NBD_FLAG_SEND_FAST_ZERO);
  for (const [what, req, err] of [
    ['misaligned read', () => c.request(P.NBD_CMD_READ, 1, 100, 512), P.NBD_EINVAL],
    ['read past the end', () => c.request(P.NBD_CMD_READ, 1, size, 512), P.NBD_EINVAL],
    ['read with REQ_ONE', () => c.request(P.NBD_CMD_READ, 1, 0, 512, { flags: P.NBD_CMD_FLAG_REQ_ONE }), P.NBD_EINVAL],
    ['device read failure', () => c.request(P.NBD_CMD_READ, 1, 0, 512), P.NBD_EIO],
    ['DF read failure', () => c.request(P.NBD_CMD_READ, 1, 0, 512, { flags: P.NBD_CMD_FLAG_DF }), P.NBD_EIO],
    ['fast zero the device cannot do', () => c.request(P.NBD_CMD_WRITE_ZEROES, 1, 0, 512, { flags: P.NBD_CMD_FLAG_FAST_ZERO }), P.NBD_ENOTSUP],
    ['zero the device cannot do, without FAST_ZERO', () => c.request(P.NBD_CMD_WRITE_ZEROES, 1, 0, 512), P.NBD_EINVAL],
    ['write past the end', () => c.request(P.NBD_CMD_WRITE, 1, size, 512, { data: Buffer.alloc(512) }), P.NBD_ENOSPC],
  ] as [string, () => void, number][]) {
    req();
    const ch = await c.chunks();
    assert.equal(
      ch.map((x) => [x.type, x.flags, x.error]),
      [[P.NBD_REPLY_TYPE_ERROR, P.NBD_REPLY_FLAG_DONE, err]],
      what,
    );
    assert.is(ch[0]!.payload.length, 6, `${what}: error and an empty message`);
  }
  c.destroy();
});

t('CACHE: valid ranges succeed (nothing to prefetch), bad ones EINVAL; FAST_ZERO on a capable device zeroes', async () => {
  const c = await RawClient.connect(sock);
  const { size, flags } = await c.openStructured('mem');
  assert.ok(flags & P.NBD_FLAG_SEND_CACHE);
  c.request(P.NBD_CMD_CACHE, 1, 0, size);
  assert.equal(
    (await c.chunks()).map((x) => x.error),
    [0],
  );
  c.request(P.NBD_CMD_CACHE, 2, size - 512, 1024);
  assert.equal(
    (await c.chunks()).map((x) => x.error),
    [P.NBD_EINVAL],
  );
  assert.is(await c.writeAt(3, MiB, pattern(4096, 9)), 0);
  c.request(P.NBD_CMD_WRITE_ZEROES, 4, MiB, 4096, { flags: P.NBD_CMD_FLAG_FAST_ZERO | P.NBD_CMD_FLAG_NO_HOLE });
  assert.equal(
    (await c.chunks()).map((x) => x.error),
    [0],
  );
  const r = await c.readStructured(5, MiB, 4096);
  assert.ok(r.data.every((x) => x === 0));
  c.destroy();
  const ro = await RawClient.connect(sock);
  const rf = await ro.openStructured('ro');
  assert.is(rf.flags & (P.NBD_FLAG_SEND_FAST_ZERO | P.NBD_FLAG_SEND_WRITE_ZEROES), 0, 'no fast zero without write-zeroes');
  ro.destroy();
});

t.run();
