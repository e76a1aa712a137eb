/**
 * NbdServer configuration and lifecycle: what it refuses at start-up, where it listens, and how it
 * closes (in-flight requests are answered first).
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DmaboxError } from '../../../common/errors.js';
import { BlockGeometryError, type BlockDevice } from '../../../linkback/block-device.js';
import { NbdError } from '../../../linkback/nbd/errors.js';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import { NbdServer } from '../../../linkback/nbd/server.js';
import * as P from '../../../linkback/nbd/protocol.js';
import { GatedDevice, RawClient, tempDir } from './helpers.js';

const dev = (): MemoryBlockDevice => new MemoryBlockDevice({ size: 1 << 20 });
/** The error is of the class its code belongs to (NBD codes: NbdError; block device codes: BlockGeometryError). */
const code =
  (c: string) =>
  (e: unknown): boolean =>
    e instanceof (c.startsWith('ERR_NBD_') ? NbdError : c === 'ERR_BLOCK_GEOMETRY' ? BlockGeometryError : DmaboxError) && (e as DmaboxError).code === c;

test('bad configurations are refused with a clear error', () => {
  assert.throws(() => new NbdServer({ exports: [] }), code('ERR_NBD_CONFIG'));
  assert.throws(
    () =>
      new NbdServer({
        exports: [
          { name: 'a', device: dev() },
          { name: 'a', device: dev() },
        ],
      }),
    /already exists/,
  );
  assert.throws(() => new NbdServer({ exports: [{ name: 'a', device: dev() }], defaultExport: 'b' }), /default export "b"/);
  assert.throws(() => new NbdServer({ exports: [{ name: 'x'.repeat(5000), device: dev() }] }), code('ERR_NBD_EXPORT'));
  assert.throws(() => new NbdServer({ exports: [{ name: 'a', device: dev(), maxPayload: 1000 }] }), /maximum payload/);
  assert.throws(() => new NbdServer({ exports: [{ name: 'a', device: dev(), maxPayload: 64 << 20 }] }), /maximum payload/);
  assert.throws(() => new NbdServer({ exports: [{ name: 'a', device: dev(), preferredBlockSize: 3000 }] }), /preferred block size/);
  assert.throws(() => new NbdServer({ exports: [{ name: 'a', device: dev() }], limits: { maxInFlight: 0 } }), /maxInFlight/);
  const odd = { ...dev(), size: 1000, blockSize: 512 } as unknown as BlockDevice;
  assert.throws(() => new NbdServer({ exports: [{ name: 'a', device: odd }] }), code('ERR_BLOCK_GEOMETRY'));
});

test('TCP is loopback only unless allowRemote; an address in use and an existing socket path are clear errors', async () => {
  const tmp = tempDir();
  const s = new NbdServer({ exports: [{ name: 'a', device: dev() }] });
  try {
    await s.listenTcp({ host: '0.0.0.0', port: 0 }).then(
      () => assert.unreachable('listened on 0.0.0.0'),
      (e: unknown) => assert.ok(code('ERR_NBD_NOT_LOOPBACK')(e)),
    );
    await s.listenTcp({ host: '10.1.2.3', port: 0 }).then(
      () => assert.unreachable('listened on 10.1.2.3'),
      (e: unknown) => assert.ok(code('ERR_NBD_NOT_LOOPBACK')(e)),
    );
    const a = await s.listenTcp({ port: 0 });
    assert.is(a.host, '127.0.0.1');
    const err = await s.listenTcp({ port: a.port }).catch((e: unknown) => e);
    assert.ok(code('ERR_NBD_LISTEN')(err) && /EADDRINUSE/.test((err as Error).message), String(err));
    const file = join(tmp.dir, 'not-a-socket');
    writeFileSync(file, 'x');
    const e2 = await s.listenUnix(file).catch((e: unknown) => e);
    assert.ok(code('ERR_NBD_LISTEN')(e2) && /not a socket/.test((e2 as Error).message));
    const path = join(tmp.dir, 's.sock');
    await s.listenUnix(path);
    const e3 = await s.listenUnix(path).catch((e: unknown) => e);
    assert.ok(/stale/.test((e3 as Error).message));
    assert.equal(s.addresses(), [`tcp:127.0.0.1:${a.port}`, `unix:${path}`]);
  } finally {
    await s.close();
    tmp.remove();
  }
});

test('close(): in-flight requests are answered, then connections close; new connections are refused', async () => {
  const tmp = tempDir();
  const gated = new GatedDevice(1 << 20);
  const s = new NbdServer({ exports: [{ name: 'g', device: gated }] });
  const path = join(tmp.dir, 'g.sock');
  await s.listenUnix(path);
  const c = await RawClient.connect(path);
  await c.open('g');
  const idle = await RawClient.connect(path); // still in the handshake
  c.request(P.NBD_CMD_READ, 42, 0, 4096);
  await gated.waitHeld(1);
  const closing = s.close();
  assert.ok(await idle.waitClosed(1000), 'a handshake-phase connection is dropped at once');
  await new Promise((r) => setTimeout(r, 30));
  assert.not.ok(c.closed, 'a connection with a request in flight waits for it');
  gated.held.shift()!.release();
  const r = await c.reply(() => 4096);
  assert.equal([r.handle, r.error, r.data.length], [42, 0, 4096]);
  assert.ok(await c.waitClosed(1000));
  await closing;
  const refused = await new Promise<boolean>((resolve) => {
    const sock = net.connect(path);
    sock.on('error', () => resolve(true));
    sock.on('connect', () => {
      sock.destroy();
      resolve(false);
    });
  });
  assert.ok(refused, 'nothing listens after close');
  tmp.remove();
});

test('close() cuts requests the device never finishes, after closeTimeoutMs', async () => {
  const tmp = tempDir();
  const gated = new GatedDevice(1 << 20);
  const s = new NbdServer({ exports: [{ name: 'g', device: gated }], closeTimeoutMs: 100 });
  const path = join(tmp.dir, 'g.sock');
  await s.listenUnix(path);
  const c = await RawClient.connect(path);
  await c.open('g');
  c.request(P.NBD_CMD_READ, 1, 0, 4096);
  await gated.waitHeld(1);
  const t0 = Date.now();
  await s.close();
  assert.ok(Date.now() - t0 < 1000);
  assert.ok(await c.waitClosed(1000));
  gated.held.shift()!.release(); // late completion after the connection is gone: no crash
  await new Promise((r) => setTimeout(r, 10));
  tmp.remove();
});

test('a throwing logging hook does not take the server down', async () => {
  const tmp = tempDir();
  const s = new NbdServer({
    exports: [{ name: 'a', device: dev() }],
    onEvent: () => {
      throw new Error('bad hook');
    },
  });
  const path = join(tmp.dir, 'a.sock');
  await s.listenUnix(path);
  const c = await RawClient.connect(path);
  await c.open('a');
  assert.is((await c.readAt(1, 0, 512)).error, 0);
  c.destroy();
  await s.close();
  tmp.remove();
});

test('replaceDevice: later requests go to the new device; a device of another shape is refused', async () => {
  const tmp = tempDir();
  const first = new GatedDevice(1 << 20);
  first.gate = false;
  const s = new NbdServer({ exports: [{ name: 'r', device: first }] });
  const path = join(tmp.dir, 'r.sock');
  await s.listenUnix(path);
  const c = await RawClient.connect(path);
  await c.open('r');
  assert.is(await c.writeAt(1, 0, Buffer.alloc(512, 1)), 0);
  first.gate = true;
  c.request(P.NBD_CMD_READ, 2, 0, 512); // in flight on the first device
  await first.waitHeld(1);
  const second = new GatedDevice(1 << 20);
  second.gate = false;
  await second.inner.write(0, new Uint8Array(512).fill(2), false);
  s.replaceDevice('r', second);
  assert.throws(() => s.replaceDevice('r', new MemoryBlockDevice({ size: 2 << 20 })), /differs/);
  assert.throws(() => s.replaceDevice('nope', second), /no NBD export/);
  first.held.shift()!.release();
  const old = await c.reply(() => 512);
  assert.equal([old.handle, old.data[0]], [2, 1], 'the in-flight read completed on the first device');
  const now = await c.readAt(3, 0, 512);
  assert.is(now.data[0], 2, 'later reads come from the replacement');
  c.destroy();
  await s.close();
  tmp.remove();
});

test.run();
