/**
 * ReplyWriter's read-reply buffers: reused only after the socket reports them written, bounded,
 * and never after a failed write. A fake socket holds each write's callback until the test
 * releases it, so "written" is decided here, not by timing.
 */
import type { Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ReplyWriter } from '../../../linkback/nbd/reply-writer.js';

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

test('a read reply buffer comes back for reuse only after its write completed', () => {
  const sock = new HeldSocket();
  const w = new ReplyWriter(sock as unknown as Socket);
  const a = w.replyBuffer(4096);
  assert.is(a.length, 16 + 4096);
  w.data(a);
  const b = w.replyBuffer(4096);
  assert.is.not(b, a, 'not reused while the socket still holds it');
  w.data(b);
  sock.complete(); // a written
  const c = w.replyBuffer(4096);
  assert.is(c, a, 'reused once written');
  assert.is.not(w.replyBuffer(4096), b, 'b is still being written');
  sock.complete(); // b written
  assert.is(w.replyBuffer(4096), b);
  assert.is.not(w.replyBuffer(512), b, 'sizes are kept apart');
});

test('a failed write does not return its buffer; large replies are not kept', () => {
  const sock = new HeldSocket();
  const w = new ReplyWriter(sock as unknown as Socket);
  const a = w.replyBuffer(4096);
  w.data(a);
  sock.complete(new Error('EPIPE'));
  assert.is.not(w.replyBuffer(4096), a);
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

test.run();
