/**
 * Input read into one reused buffer per connection (linkback/nbd/reused-read.ts): a write's payload
 * must survive the next socket reads while the device still holds it, input held back while the
 * connection is paused must survive too, and a socket without a handle to move is read as before.
 */
import net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { BlockDevice } from '../../../linkback/block-device.js';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import * as P from '../../../linkback/nbd/protocol.js';
import { readIntoReusedBuffer } from '../../../linkback/nbd/reused-read.js';
import { RawClient, pattern, suiteServer } from './helpers.js';

const t = suite('nbd input into a reused buffer');
const MiB = 1 << 20;

/**
 * A device that keeps the caller's payload by reference and writes it only when released, as a
 * device with the data in flight does (the sandboxed one copies it into its window at submission,
 * a slow one later): if the server handed it bytes of a read buffer that is reused, they would be
 * overwritten by then.
 */
class LateDevice implements BlockDevice {
  readonly inner = new MemoryBlockDevice({ size: 4 * MiB });
  readonly size = 4 * MiB;
  readonly blockSize = 512;
  readonly readOnly = false;
  readonly capabilities = { flush: true, fua: true, trim: false, writeZeroes: false, multiConn: false };
  readonly held: (() => void)[] = [];
  read(offset: number, into: Uint8Array): Promise<void> {
    return this.inner.read(offset, into);
  }
  write(offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      this.held.push(() => {
        this.inner.write(offset, data, fua).then(resolve, reject);
      });
    });
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  trim(): Promise<void> {
    return Promise.reject(new Error('not advertised'));
  }
  writeZeroes(): Promise<void> {
    return Promise.reject(new Error('not advertised'));
  }
  async waitHeld(n: number, ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.held.length < n) {
      if (Date.now() > deadline) throw new Error(`${this.held.length} writes held after ${ms} ms, expected ${n}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  releaseAll(): void {
    for (const r of this.held.splice(0)) r();
  }
}

const late = new LateDevice();
const { sock } = suiteServer(t, () => ({ exports: [{ name: 'late', device: late }], limits: { maxInFlight: 128 } }));

function writeRequest(handle: number, offset: number, data: Buffer): Buffer {
  const h = Buffer.alloc(P.REQUEST_SIZE);
  h.writeUInt32BE(P.NBD_REQUEST_MAGIC, 0);
  h.writeUInt16BE(0, 4);
  h.writeUInt16BE(P.NBD_CMD_WRITE, 6);
  h.writeUInt32BE(0, 8);
  h.writeUInt32BE(handle, 12);
  h.writeUInt32BE(0, 16);
  h.writeUInt32BE(offset, 20);
  h.writeUInt32BE(data.length, 24);
  return Buffer.concat([h, data]);
}

t('payloads held by the device survive the reads after them, in whole reads and split across reads', async () => {
  const c = await RawClient.connect(sock);
  await c.open('late');
  // Two bursts: the second one's reads reuse the buffer the first one's payloads came in. Odd sizes
  // (4 KiB plus 512 or 1536 bytes) put payload boundaries anywhere in a read.
  const writes: { offset: number; data: Buffer }[] = [];
  for (let i = 0; i < 96; i++) writes.push({ offset: i * 8192, data: pattern(4096 + (i % 2 ? 512 : 1536), 1000 + i) });
  c.write(Buffer.concat(writes.slice(0, 48).map((w, i) => writeRequest(i + 1, w.offset, w.data))));
  await late.waitHeld(48);
  for (let i = 48; i < 96; i++) {
    const w = writes[i]!;
    c.write(writeRequest(i + 1, w.offset, w.data)); // one socket write each: more, smaller reads
  }
  await late.waitHeld(96);
  late.releaseAll();
  const handles = new Set<number>();
  for (let i = 0; i < 96; i++) {
    const r = await c.reply();
    assert.is(r.error, 0);
    handles.add(r.handle);
  }
  assert.is(handles.size, 96);
  for (let i = 0; i < 96; i++) {
    const w = writes[i]!;
    const r = await c.readAt(1000 + i, w.offset, w.data.length);
    assert.is(r.error, 0);
    assert.ok(r.data.equals(w.data), `write ${i} reads back as written`);
  }
  c.destroy();
});

t('input held back while the connection is paused survives later reads', async () => {
  const c = await RawClient.connect(sock);
  await c.open('late');
  // 128 in flight pauses input (maxInFlight); what follows waits in the connection, not the socket.
  const n = 160;
  const data = (i: number): Buffer => pattern(4096, 5000 + i);
  for (let i = 0; i < n; i++) c.write(writeRequest(i + 1, 2 * MiB + i * 4096, data(i)));
  await late.waitHeld(128);
  // Let the rest arrive (held by the connection, the socket paused), then complete the first 128:
  // input flows again from what was held back, and from later reads.
  await new Promise((r) => setTimeout(r, 50));
  assert.is(late.held.length, 128, 'nothing past the in-flight cap reached the device');
  late.releaseAll();
  await late.waitHeld(n - 128);
  late.releaseAll();
  for (let i = 0; i < n; i++) assert.is((await c.reply()).error, 0);
  for (let i = 0; i < n; i += 7) {
    const r = await c.readAt(10_000 + i, 2 * MiB + i * 4096, 4096);
    assert.ok(r.data.equals(data(i)), `write ${i} reads back as written`);
  }
  c.destroy();
});

t('a socket without a handle to move is left as it is', () => {
  const fake = new net.Socket();
  assert.is(
    readIntoReusedBuffer(fake, Buffer.alloc(16), () => {}),
    null,
  );
  fake.destroy();
});

t.run();
