/**
 * The fixed newstyle handshake over a real unix socket, option by option (proto.md §Option types).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import * as P from '../../../linkback/nbd/protocol.js';
import { RawClient, infoData, suiteServer } from './helpers.js';

const t = suite('nbd handshake');
const { sock } = suiteServer(t, () => ({
  exports: [
    { name: 'disk0', description: 'first disk', device: new MemoryBlockDevice({ size: 8 << 20 }) },
    { name: 'ro', device: new MemoryBlockDevice({ size: 1 << 20, blockSize: 4096 }), readOnly: true, maxPayload: 1 << 20 },
  ],
}));

t('greeting: NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE | NO_ZEROES', async () => {
  const c = await RawClient.connect(sock);
  const flags = await c.greet();
  assert.is(flags, P.NBD_FLAG_FIXED_NEWSTYLE | P.NBD_FLAG_NO_ZEROES);
  c.destroy();
});

t('NBD_OPT_LIST names every export with its description, then ACK', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  c.sendOption(P.NBD_OPT_LIST);
  const seen: string[] = [];
  for (;;) {
    const r = await c.optionReply();
    assert.is(r.option, P.NBD_OPT_LIST);
    if (r.type === P.NBD_REP_ACK) break;
    assert.is(r.type, P.NBD_REP_SERVER);
    const n = r.data.readUInt32BE(0);
    seen.push(`${r.data.subarray(4, 4 + n)}|${r.data.subarray(4 + n)}`);
  }
  assert.equal(seen, ['disk0|first disk', 'ro|']);
  c.sendOption(P.NBD_OPT_LIST, Buffer.from('x'));
  assert.is((await c.optionReply()).type, P.NBD_REP_ERR_INVALID);
  c.destroy();
});

t('NBD_OPT_INFO: export size and flags, name, description, block sizes; then the client may go on', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  const r = await c.infoOrGo(P.NBD_OPT_INFO, 'disk0', [P.NBD_INFO_NAME, P.NBD_INFO_DESCRIPTION, P.NBD_INFO_BLOCK_SIZE, 0x7777]);
  assert.is(r.final, P.NBD_REP_ACK);
  const e = r.infos.get(P.NBD_INFO_EXPORT)!;
  assert.is(Number(e.readBigUInt64BE(0)), 8 << 20);
  assert.is(
    e.readUInt16BE(8),
    P.NBD_FLAG_HAS_FLAGS |
      P.NBD_FLAG_SEND_FLUSH |
      P.NBD_FLAG_SEND_FUA |
      P.NBD_FLAG_SEND_TRIM |
      P.NBD_FLAG_SEND_WRITE_ZEROES |
      P.NBD_FLAG_SEND_FAST_ZERO |
      P.NBD_FLAG_SEND_CACHE |
      P.NBD_FLAG_CAN_MULTI_CONN,
    'no SEND_DF without structured replies',
  );
  assert.is(r.infos.get(P.NBD_INFO_NAME)!.toString(), 'disk0');
  assert.is(r.infos.get(P.NBD_INFO_DESCRIPTION)!.toString(), 'first disk');
  const bs = r.infos.get(P.NBD_INFO_BLOCK_SIZE)!;
  assert.equal([bs.readUInt32BE(0), bs.readUInt32BE(4), bs.readUInt32BE(8)], [512, 4096, 32 << 20]);
  assert.is(r.infos.size, 4, 'the unknown info type 0x7777 is ignored');
  // A read-only export with 4 KiB blocks and a 1 MiB payload limit.
  const ro = await c.infoOrGo(P.NBD_OPT_INFO, 'ro', []);
  assert.is(ro.final, P.NBD_REP_ACK);
  assert.is(
    ro.infos.get(P.NBD_INFO_EXPORT)!.readUInt16BE(8),
    P.NBD_FLAG_HAS_FLAGS | P.NBD_FLAG_READ_ONLY | P.NBD_FLAG_SEND_FLUSH | P.NBD_FLAG_SEND_FUA | P.NBD_FLAG_SEND_CACHE | P.NBD_FLAG_CAN_MULTI_CONN,
  );
  const robs = ro.infos.get(P.NBD_INFO_BLOCK_SIZE)!;
  assert.equal([robs.readUInt32BE(0), robs.readUInt32BE(4), robs.readUInt32BE(8)], [4096, 4096, 1 << 20]);
  // The default export ("") is the first one; GO then enters transmission.
  const go = await c.infoOrGo(P.NBD_OPT_GO, '', []);
  assert.is(go.final, P.NBD_REP_ACK);
  assert.is(Number(go.infos.get(P.NBD_INFO_EXPORT)!.readBigUInt64BE(0)), 8 << 20);
  const r2 = await c.readAt(5, 0, 512);
  assert.is(r2.error, 0);
  c.destroy();
});

t('unknown export: NBD_REP_ERR_UNKNOWN naming the exports, and the handshake goes on', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  const r = await c.infoOrGo(P.NBD_OPT_GO, 'nope', []);
  assert.is(r.final, P.NBD_REP_ERR_UNKNOWN);
  assert.ok(r.message.includes('"disk0"'), r.message);
  assert.is(r.infos.size, 0);
  const ok = await c.infoOrGo(P.NBD_OPT_INFO, 'disk0', []);
  assert.is(ok.final, P.NBD_REP_ACK);
  c.destroy();
});

t('malformed INFO/GO data: NBD_REP_ERR_INVALID, and the handshake goes on', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  c.sendOption(P.NBD_OPT_GO, Buffer.from([0, 0, 0]));
  assert.is((await c.optionReply()).type, P.NBD_REP_ERR_INVALID, 'shorter than 6 bytes');
  const long = infoData('disk0', []);
  long.writeUInt32BE(999, 0);
  c.sendOption(P.NBD_OPT_GO, long);
  assert.is((await c.optionReply()).type, P.NBD_REP_ERR_INVALID, 'name length past the data');
  c.sendOption(P.NBD_OPT_INFO, Buffer.concat([infoData('disk0', [1]), Buffer.from([0])]));
  assert.is((await c.optionReply()).type, P.NBD_REP_ERR_INVALID, 'trailing byte');
  c.sendOption(P.NBD_OPT_INFO, infoData('\u0000x', []));
  assert.is((await c.optionReply()).type, P.NBD_REP_ERR_INVALID, 'NUL in the name');
  const bad = infoData('ab', []);
  bad[4] = 0xff; // not UTF-8
  c.sendOption(P.NBD_OPT_INFO, bad);
  assert.is((await c.optionReply()).type, P.NBD_REP_ERR_INVALID, 'not UTF-8');
  const ok = await c.infoOrGo(P.NBD_OPT_INFO, 'disk0', []);
  assert.is(ok.final, P.NBD_REP_ACK);
  c.destroy();
});

t('STARTTLS, EXTENDED_HEADERS and unknown options: NBD_REP_ERR_UNSUP with a message', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  for (const opt of [P.NBD_OPT_STARTTLS, P.NBD_OPT_EXTENDED_HEADERS, 0x4321, 0xffffffff]) {
    c.sendOption(opt, Buffer.from('ignored data'));
    const r = await c.optionReply();
    assert.is(r.option, opt >>> 0);
    assert.is(r.type, P.NBD_REP_ERR_UNSUP);
    assert.ok(r.data.length > 0);
  }
  await new Promise((r) => setTimeout(r, 100));
  assert.is(c.buffered, 0, 'nothing more was sent');
  c.destroy();
});

t('NBD_OPT_ABORT: ACK, then the server closes', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  c.sendOption(P.NBD_OPT_ABORT);
  const r = await c.optionReply();
  assert.is(r.type, P.NBD_REP_ACK);
  c.socket.end();
  assert.ok(await c.waitClosed());
});

t('NBD_OPT_EXPORT_NAME: size and flags, with or without the 124 zeroes', async () => {
  const nz = await RawClient.connect(sock);
  await nz.greet(P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES);
  nz.sendOption(P.NBD_OPT_EXPORT_NAME, Buffer.from('disk0'));
  const a = await nz.read(10);
  assert.is(Number(a.readBigUInt64BE(0)), 8 << 20);
  assert.is(a.readUInt16BE(8) & P.NBD_FLAG_HAS_FLAGS, 1);
  // Directly in transmission: no zeroes in between.
  const r = await nz.readAt(1, 0, 512);
  assert.is(r.error, 0);
  nz.destroy();

  const z = await RawClient.connect(sock);
  await z.greet(P.NBD_FLAG_C_FIXED_NEWSTYLE);
  z.sendOption(P.NBD_OPT_EXPORT_NAME, Buffer.from(''));
  const b = await z.read(10 + 124);
  assert.is(Number(b.readBigUInt64BE(0)), 8 << 20);
  assert.ok(b.subarray(10).every((x) => x === 0));
  assert.is((await z.readAt(2, 512, 512)).error, 0);
  z.destroy();
});

t('NBD_OPT_EXPORT_NAME of an unknown export ends the session (it cannot be refused)', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  c.sendOption(P.NBD_OPT_EXPORT_NAME, Buffer.from('nope'));
  assert.ok(await c.waitClosed());
  assert.is(c.buffered, 0);
});

t('a non-fixed-newstyle client may only send NBD_OPT_EXPORT_NAME', async () => {
  const ok = await RawClient.connect(sock);
  await ok.greet(0);
  ok.sendOption(P.NBD_OPT_EXPORT_NAME, Buffer.from('disk0'));
  assert.is((await ok.read(134)).length, 134);
  ok.destroy();
  const bad = await RawClient.connect(sock);
  await bad.greet(0);
  bad.sendOption(P.NBD_OPT_LIST);
  assert.ok(await bad.waitClosed());
});

t.run();
