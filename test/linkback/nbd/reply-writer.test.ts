/**
 * ReplyWriter's read-reply buffers: reused only after the socket reports them written, bounded,
 * and never after a failed write. A fake socket holds each write's callback until the test
 * releases it, so "written" is decided here, not by timing.
 */
import type { Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { COALESCE_TURNS, ReplyWriter } from '../../../linkback/nbd/reply-writer.js';

class HeldSocket {
  destroyed = false;
  writable = true;
  writableLength = 0;
  readonly writes: { buf: Buffer; cb?: (err?: Error | null) => void }[] = [];
  cork(): void {}
  uncork(): void {}
  write(buf: Buffer, cb?: (err?: Error | null) => void): boolean {
    this.writes.push({ buf, cb });
    return true;
  }
  /** The socket wrote the oldest pending write (or failed it). */
  complete(err?: Error): void {
    const w = this.writes.find((x) => x.cb !== undefined);
    const cb = w!.cb!;
    w!.cb = undefined;
    cb(err ?? null);
  }
}

const K64 = 64 << 10;

test('a read reply buffer written as it is (over 16 KiB) comes back for reuse only after its write completed', () => {
  const sock = new HeldSocket();
  const w = new ReplyWriter(sock as unknown as Socket);
  const a = w.replyBuffer(K64);
  assert.is(a.length, 16 + K64);
  w.data(a);
  assert.is(sock.writes[0]!.buf, a, 'written as it is, not copied');
  const b = w.replyBuffer(K64);
  assert.is.not(b, a, 'not reused while the socket still holds it');
  w.data(b);
  sock.complete(); // a written
  const c = w.replyBuffer(K64);
  assert.is(c, a, 'reused once written');
  assert.is.not(w.replyBuffer(K64), b, 'b is still being written');
  sock.complete(); // b written
  assert.is(w.replyBuffer(K64), b);
  assert.is.not(w.replyBuffer(32 << 10), b, 'sizes are kept apart');
});

test('small read replies are copied into the batch with the simple replies: one socket write, bytes in order, buffers free at once', () => {
  const sock = new HeldSocket();
  const w = new ReplyWriter(sock as unknown as Socket);
  const a = w.replyBuffer(4096);
  a.fill(0xaa);
  w.data(a);
  w.simple(0, 1, 2);
  const b = w.replyBuffer(4096);
  assert.is(b, a, 'the first buffer was copied, so it is free again');
  b.fill(0xbb);
  w.data(b);
  assert.is(sock.writes.length, 0, 'nothing written before the turn ends');
  w.flush();
  assert.is(sock.writes.length, 1);
  const out = sock.writes[0]!.buf;
  assert.is(out.length, 4112 + 16 + 4112);
  assert.ok(out.subarray(0, 4112).every((x) => x === 0xaa));
  assert.is(out.readUInt32BE(4112 + 8), 1);
  assert.is(out.readUInt32BE(4112 + 12), 2);
  assert.ok(out.subarray(4128).every((x) => x === 0xbb));
});

test('a full batch is written before more is queued: many small replies in one turn are all sent, in order', () => {
  const sock = new HeldSocket();
  const w = new ReplyWriter(sock as unknown as Socket);
  for (let i = 0; i < 100; i++) {
    const r = w.replyBuffer(4096);
    r.fill(i);
    w.data(r);
  }
  w.flush();
  const all = Buffer.concat(sock.writes.map((x) => x.buf));
  assert.ok(sock.writes.length > 1, 'more than one batch');
  assert.is(all.length, 100 * 4112);
  for (let i = 0; i < 100; i++) assert.is(all[i * 4112 + 100], i);
});

test('structured NONE replies past a full batch land in the next batch, not in the one already handed to the socket', () => {
  const sock = new HeldSocket();
  const w = new ReplyWriter(sock as unknown as Socket);
  const n = Math.ceil((128 << 10) / 20) + 10;
  for (let i = 0; i < n; i++) w.structuredDone(0, i);
  w.flush();
  const all = Buffer.concat(sock.writes.map((x) => x.buf));
  assert.is(all.length, n * 20);
  for (let i = 0; i < n; i++) assert.is(all.readUInt32BE(i * 20 + 12), i, `reply ${i}`);
});

test('a failed write does not return its buffer; large replies are not kept', () => {
  const sock = new HeldSocket();
  const w = new ReplyWriter(sock as unknown as Socket);
  const a = w.replyBuffer(K64);
  w.data(a);
  sock.complete(new Error('EPIPE'));
  assert.is.not(w.replyBuffer(K64), a);
  const big = w.replyBuffer(1 << 20);
  w.data(big);
  sock.complete();
  assert.is.not(w.replyBuffer(1 << 20), big, '1 MiB replies are not pooled');
});

test('the pool is bounded: at most 1 MiB of buffers kept per connection', () => {
  const sock = new HeldSocket();
  const w = new ReplyWriter(sock as unknown as Socket);
  const bufs = Array.from({ length: 20 }, () => w.replyBuffer(128 << 10));
  for (const b of bufs) w.data(b);
  for (let i = 0; i < 20; i++) sock.complete();
  const again = Array.from({ length: 20 }, () => w.replyBuffer(128 << 10));
  const reused = again.filter((b) => bufs.includes(b)).length;
  assert.ok(reused >= 6 && reused <= 8, `reused ${reused} of 20 (1 MiB / 128 KiB)`);
});

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

test('coalescing: replies wait while more requests are unanswered than replies queued, at most COALESCE_TURNS turns; a client waiting for nothing more is answered at the turn end', async () => {
  const sock = new HeldSocket();
  let unanswered = 6;
  const w = new ReplyWriter(sock as unknown as Socket, () => unanswered);
  w.simple(0, 0, 1);
  w.simple(0, 0, 2);
  await turn();
  await turn();
  assert.is(sock.writes.length, 0, '2 queued, 6 unanswered: the batch waits');
  for (let i = 3; i <= 6; i++) w.simple(0, 0, i);
  await turn();
  await turn();
  assert.is(sock.writes.length, 1, '6 queued, 6 unanswered: written');
  assert.is(sock.writes[0]!.buf.length, 6 * 16, 'all six in the one write');
  // A request that never completes holds the others back no more than COALESCE_TURNS turns.
  unanswered = 100;
  w.simple(0, 0, 7);
  for (let t = 0; t < COALESCE_TURNS; t++) await turn();
  assert.is(sock.writes.length, 1, 'still waiting within the bound');
  await turn();
  await turn();
  assert.is(sock.writes.length, 2, 'written once the bound passed');
  // Nothing unanswered (queue depth 1): at the end of the turn.
  unanswered = 0;
  w.simple(0, 0, 8);
  await turn();
  await turn();
  assert.is(sock.writes.length, 3);
});

test.run();
