/**
 * The streaming parser under every fragmentation: one client session (handshake, writes with
 * payloads, reads, flush, trim, a refused request, DISC) fed to a connection in chunks of 1, 2, 3,
 * 7, 13, 27, 28, 29, 500 and 65536 bytes through an in-memory duplex, so the chunk boundaries are
 * exactly the test's. Every split must give the same replies and the same disk.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import { NbdConnection, type ConnectionHost } from '../../../linkback/nbd/connection.js';
import { NbdExport } from '../../../linkback/nbd/export.js';
import * as P from '../../../linkback/nbd/protocol.js';
import { DEFAULT_LIMITS } from '../../../linkback/nbd/server.js';
import { infoData, pattern } from './helpers.js';

/** The server's end of an in-memory connection: input pushed by the test, output collected. */
class FakeSocket extends Duplex {
  readonly out: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.out.push(Buffer.from(chunk));
    cb();
  }
  override _final(cb: () => void): void {
    this.push(null);
    cb();
  }
}

function session(): Buffer {
  const parts: Buffer[] = [];
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES);
  parts.push(flags);
  const opt = (o: number, data: Buffer): void => {
    const h = Buffer.alloc(16);
    h.writeUInt32BE(P.IHAVEOPT_HI, 0);
    h.writeUInt32BE(P.IHAVEOPT_LO, 4);
    h.writeUInt32BE(o, 8);
    h.writeUInt32BE(data.length, 12);
    parts.push(h, data);
  };
  opt(P.NBD_OPT_LIST, Buffer.alloc(0));
  opt(P.NBD_OPT_GO, infoData('d', [P.NBD_INFO_BLOCK_SIZE]));
  const req = (type: number, handle: number, offset: number, length: number, data?: Buffer, flags = 0): void => {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(P.NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeUInt32BE(handle, 12);
    h.writeUInt32BE(offset, 20);
    h.writeUInt32BE(length, 24);
    parts.push(h);
    if (data) parts.push(data);
  };
  req(P.NBD_CMD_WRITE, 1, 0, 4096, pattern(4096, 1));
  req(P.NBD_CMD_WRITE, 2, 65536 - 512, 70000 - (70000 % 512), pattern(70000 - (70000 % 512), 2), P.NBD_CMD_FLAG_FUA);
  req(P.NBD_CMD_WRITE, 3, 0, 100, pattern(100, 3)); // misaligned: payload skipped, EINVAL
  req(P.NBD_CMD_READ, 4, 0, 8192);
  req(P.NBD_CMD_FLUSH, 5, 0, 0);
  req(P.NBD_CMD_TRIM, 6, 1024, 512);
  req(P.NBD_CMD_READ, 7, 65536 - 512, 1024);
  req(P.NBD_CMD_DISC, 8, 0, 0);
  return Buffer.concat(parts);
}

async function runSplit(input: Buffer, chunk: number): Promise<{ out: Buffer; disk: Uint8Array }> {
  const device = new MemoryBlockDevice({ size: 1 << 20 });
  const exp = new NbdExport({ name: 'd', device });
  const host: ConnectionHost = {
    lookup: (n) => (n === 'd' || n === '' ? exp : undefined),
    list: () => [exp],
    limits: DEFAULT_LIMITS,
    tls: undefined,
    event: () => {},
    attached: () => true,
    closed: () => {},
  };
  const sock = new FakeSocket();
  new NbdConnection(1, sock as unknown as Socket, host);
  for (let at = 0; at < input.length; at += chunk) {
    sock.push(input.subarray(at, at + chunk));
    await new Promise((r) => setImmediate(r));
  }
  for (let i = 0; i < 50 && !sock.writableEnded; i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(sock.writableEnded, `split ${chunk}: the server ended the connection after DISC`);
  const disk = new Uint8Array(1 << 20);
  await device.read(0, disk);
  return { out: Buffer.concat(sock.out), disk };
}

/** Parse the server's bytes after the handshake into `handle:error:datahash` lines, sorted. */
function replies(out: Buffer): string[] {
  let at = 18; // greeting
  // LIST: one SERVER reply and an ACK; GO: INFO x2 (EXPORT, BLOCK_SIZE) and an ACK.
  for (let i = 0; i < 5; i++) at += 20 + out.readUInt32BE(at + 16);
  const lens: Record<number, number> = { 4: 8192, 7: 1024 };
  const got: string[] = [];
  while (at < out.length) {
    assert.is(out.readUInt32BE(at), P.NBD_SIMPLE_REPLY_MAGIC);
    const err = out.readUInt32BE(at + 4);
    const handle = out.readUInt32BE(at + 12);
    const n = err === 0 ? (lens[handle] ?? 0) : 0;
    const sum = out.subarray(at + 16, at + 16 + n).reduce((a, b) => (a * 31 + b) >>> 0, 7);
    got.push(`${handle}:${err}:${n}:${sum}`);
    at += 16 + n;
  }
  return got.sort();
}

test('every fragmentation of one session gives the same replies and the same disk', async () => {
  const input = session();
  const base = await runSplit(input, input.length);
  const expect = replies(base.out);
  assert.equal(
    expect.map((l) => l.split(':').slice(0, 2).join(':')),
    ['1:0', '2:0', '3:22', '4:0', '5:0', '6:0', '7:0'],
  );
  assert.ok(base.disk.subarray(0, 1024).every((x, i) => x === pattern(4096, 1)[i]));
  for (const chunk of [1, 2, 3, 7, 13, 27, 28, 29, 500, 65536]) {
    const r = await runSplit(input, chunk);
    assert.equal(replies(r.out), expect, `split ${chunk}`);
    assert.ok(Buffer.from(r.disk).equals(Buffer.from(base.disk)), `split ${chunk}: disk`);
  }
});

test.run();
