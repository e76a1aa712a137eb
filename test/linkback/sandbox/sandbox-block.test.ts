/**
 * SandboxBlockDevice without a container: over a SandboxBlockClient whose ring a test-side
 * BlockServer serves from memory. Geometry, capabilities, alignment and range checks, the errno
 * kind of each failure, and requests that survive a detach (a container's death) without an error.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSys, EFD_CLOEXEC, EFD_NONBLOCK } from 'linux-sys';
import { BlockDeviceError } from '../../../linkback/block-device.js';
import { SandboxBlockDevice, sandboxErrorKind } from '../../../linkback/sandbox-block.js';
import { BlockIoError, SandboxBlockClient } from '../../../sandbox/manager/services/block.js';
import { B, dataAreaBytes, ringBytes, type DataAreas } from '../../../sandbox/abi/block.js';
import { BlockServer, type DirectBlockDevice } from '../../../sandbox/container/services/block.js';
import { createShared } from '../../../sandbox/abi/shm.js';
import { SandboxError } from '../../../sandbox/manager/errors.js';
import { until } from './helpers.js';

const sys = defaultSys();
const G = { entries: 4, slotBytes: 8192 };
const BS = 512,
  COUNT = 1024;

class MemDevice implements DirectBlockDevice {
  readonly blockSize = BS;
  readonly blockCount = COUNT;
  readonly store = new Uint8Array(BS * COUNT);
  hold = false;
  failNext = false;
  private held: (() => void)[] = [];
  constructor(private readonly areas: DataAreas<Uint8Array>) {}
  async read(tag: number, lba: number, blocks: number): Promise<void> {
    await this.gate();
    this.areas.read.set(this.store.subarray(lba * BS, (lba + blocks) * BS), tag * G.slotBytes);
  }
  async write(tag: number, lba: number, blocks: number): Promise<void> {
    await this.gate();
    this.store.set(this.areas.write.subarray(tag * G.slotBytes, tag * G.slotBytes + blocks * BS), lba * BS);
  }
  async flush(): Promise<void> {
    await this.gate();
  }
  private async gate(): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('media error');
    }
    if (this.hold) await new Promise<void>((r) => this.held.push(r));
  }
}

function rig() {
  const areas = { read: new Uint8Array(dataAreaBytes(G)), write: new Uint8Array(dataAreaBytes(G)) };
  const client = new SandboxBlockClient(G, areas);
  const dev = new MemDevice(areas);
  const rings: { close(): void; server: BlockServer }[] = [];
  const attach = () => {
    const shm = createShared(sys, 'sb-test', ringBytes(G));
    client.initRing(shm);
    const req = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
      cpl = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const server = new BlockServer(sys, shm, req, cpl);
    server.start(dev);
    client.attach({ sys, shm, requestFd: req, completionFd: cpl });
    let open = true;
    const r = {
      server,
      close: () => {
        if (!open) return;
        open = false;
        void server.quiesce();
        shm.close();
        sys.close(req);
        sys.close(cpl);
      },
    };
    rings.push(r);
    return r;
  };
  return {
    client,
    dev,
    attach,
    close: () => {
      client.detach();
      for (const r of rings) r.close();
    },
  };
}

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);

test('not ready yet: a clear error; then geometry and capabilities from the ring', () => {
  const r = rig();
  assert.throws(() => new SandboxBlockDevice(r.client, { label: 'sandbox x' }), /has not published its geometry/);
  r.attach();
  const d = new SandboxBlockDevice(r.client, { label: 'sandbox x' });
  assert.is(d.blockSize, BS);
  assert.is(d.size, BS * COUNT);
  assert.is(d.readOnly, false);
  assert.equal({ ...d.capabilities }, { flush: true, fua: false, trim: false, writeZeroes: false, multiConn: true });
  r.close();
});

test('reads and writes across slots; alignment, range and read-only errors by kind', async () => {
  const r = rig();
  r.attach();
  const d = new SandboxBlockDevice(r.client);
  const data = bytes(BS * 40, 1); // 40 blocks: 3 slots of 16 with 4 tags
  await d.write(BS * 7, data, false);
  assert.equal(r.dev.store.subarray(BS * 7, BS * 47), data);
  const back = new Uint8Array(data.length);
  await d.read(BS * 7, back);
  assert.equal(back, data);
  await d.flush();
  const kind = async (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => 'ok',
      (e: BlockDeviceError) => e.kind,
    );
  assert.is(await kind(d.read(100, new Uint8Array(BS))), 'EINVAL', 'misaligned offset');
  assert.is(await kind(d.write(0, new Uint8Array(100), false)), 'EINVAL', 'misaligned length');
  assert.is(await kind(d.read(BS * COUNT, new Uint8Array(BS))), 'EINVAL', 'read past the end');
  assert.is(await kind(d.write(BS * (COUNT - 1), new Uint8Array(BS * 2), false)), 'ENOSPC', 'write past the end');
  assert.is(await kind(d.trim(0, BS, false)), 'ENOTSUP', 'a device without discard');
  assert.is(await kind(d.writeZeroes(0, BS, false, false)), 'ENOTSUP', 'a device without write zeroes');
  assert.is(
    await r.client.discard(0, 1).then(
      () => 'ok',
      (e: SandboxError) => e.code,
    ),
    'ERR_SANDBOX_UNSUPPORTED',
    'the client refuses too',
  );
  r.dev.failNext = true;
  assert.is(await kind(d.read(0, new Uint8Array(BS))), 'EIO', 'the driver reports an I/O error');
  const ro = new SandboxBlockDevice(r.client, { readOnly: true });
  assert.is(await kind(ro.write(0, new Uint8Array(BS), false)), 'EPERM');
  r.close();
});

/** A device that also deallocates and zeroes, as an NVMe namespace with ONCS bits 2 and 3 does. */
class TrimDevice extends MemDevice {
  readonly fua = true;
  fuaWrites = 0;
  zeroed: { lba: number; blocks: number; noHole: boolean }[] = [];
  override async write(tag: number, lba: number, blocks: number, fua?: boolean): Promise<void> {
    if (fua) this.fuaWrites++;
    return super.write(tag, lba, blocks);
  }
  async discard(lba: number, blocks: number): Promise<void> {
    this.store.fill(0, lba * BS, (lba + blocks) * BS);
  }
  async writeZeroes(lba: number, blocks: number, noHole: boolean): Promise<void> {
    this.zeroed.push({ lba, blocks, noHole });
    this.store.fill(0, lba * BS, (lba + blocks) * BS);
  }
}

test('trim and write zeroes through the ring when the container offers them; ranges beyond a slot; same offer after a restart', async () => {
  const areas = { read: new Uint8Array(dataAreaBytes(G)), write: new Uint8Array(dataAreaBytes(G)) };
  const client = new SandboxBlockClient(G, areas);
  const rings: (() => void)[] = [];
  const attach = (dev: DirectBlockDevice, poke?: (u32: Uint32Array) => void) => {
    const shm = createShared(sys, 'sb-trim', ringBytes(G));
    client.initRing(shm);
    const req = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
      cpl = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const server = new BlockServer(sys, shm, req, cpl);
    server.start(dev);
    poke?.(shm.u32);
    rings.push(() => {
      void server.quiesce();
      shm.close();
      sys.close(req);
      sys.close(cpl);
    });
    client.attach({ sys, shm, requestFd: req, completionFd: cpl });
  };
  const dev = new TrimDevice(areas);
  const violations: string[] = [];
  client.onViolation = (r) => violations.push(r);
  try {
    attach(dev);
    assert.ok(client.canDiscard && client.canWriteZeroes);
    const d = new SandboxBlockDevice(client);
    assert.equal({ ...d.capabilities }, { flush: true, fua: true, trim: true, writeZeroes: true, multiConn: true });
    // FUA goes through the ring as a flag of the write, kept for every slot-sized piece.
    await d.write(0, bytes(BS * 40, 4), true);
    assert.is(dev.fuaWrites, 3, '40 blocks in three 16-block pieces, each FUA');
    await d.write(0, bytes(BS, 5), false);
    assert.is(dev.fuaWrites, 3);
    dev.store.fill(0xaa);
    // 100 blocks: far more than one 8 KiB slot, and no data crosses the ring.
    await d.trim(BS * 10, BS * 100, false);
    assert.ok(dev.store.subarray(BS * 10, BS * 110).every((b) => b === 0));
    assert.is(dev.store[BS * 110], 0xaa);
    await d.writeZeroes(BS * 200, BS * 300, false, true);
    await d.writeZeroes(BS * 600, BS * 8, false, false);
    assert.equal(dev.zeroed, [
      { lba: 200, blocks: 300, noHole: true },
      { lba: 600, blocks: 8, noHole: false },
    ]);
    assert.ok(dev.store.subarray(BS * 200, BS * 500).every((b) => b === 0));
    const kind = async (p: Promise<unknown>): Promise<string> =>
      p.then(
        () => 'ok',
        (e: BlockDeviceError) => e.kind,
      );
    assert.is(await kind(d.trim(BS * (COUNT - 1), BS * 2, false)), 'EINVAL', 'trim past the end');
    assert.is(await kind(d.writeZeroes(BS * (COUNT - 1), BS * 2, false, false)), 'ENOSPC', 'write zeroes past the end');
    assert.is(await kind(new SandboxBlockDevice(client, { readOnly: true }).trim(0, BS, false)), 'EPERM');
    // A restarted container must offer what clients were told.
    client.detach();
    assert.throws(() => attach(new MemDevice(areas)), /changed capabilities across a restart/);
    // Unknown bits in CAPS: not a device this manager understands.
    assert.throws(
      () =>
        attach(dev, (u32) => {
          u32[B.CAPS] = 0x80;
        }),
      /unknown device capabilities/,
    );
    assert.match(violations.join('\n'), /capabilities 0x80/);
    attach(dev);
    await d.trim(0, BS, false);
  } finally {
    client.detach();
    for (const c of rings) c();
  }
});

test('errno kinds of the client errors', () => {
  assert.is(sandboxErrorKind(new BlockIoError('x', 2), true), 'ENOSPC');
  assert.is(sandboxErrorKind(new BlockIoError('x', 2), false), 'EINVAL');
  assert.is(sandboxErrorKind(new BlockIoError('x', 1), false), 'EINVAL');
  assert.is(sandboxErrorKind(new BlockIoError('x', 3), false), 'EIO');
  assert.is(sandboxErrorKind(new SandboxError('ERR_SANDBOX_STOPPED', 'stopped'), false), 'ESHUTDOWN');
  assert.is(sandboxErrorKind(new SandboxError('ERR_SANDBOX_FAILED', 'failed'), true), 'EIO');
  assert.is(sandboxErrorKind(new SandboxError('ERR_SANDBOX_ARG', 'arg'), true), 'EINVAL');
  assert.is(sandboxErrorKind(new Error('?'), true), 'EIO');
});

test('a container death mid-request: the device resolves after the replay, no error', async () => {
  const r = rig();
  const first = r.attach();
  const d = new SandboxBlockDevice(r.client);
  r.dev.hold = true;
  const w = d.write(BS * 10, bytes(BS * 4, 9), true);
  const back = new Uint8Array(BS * 4);
  const rd = d.read(BS * 10, back);
  await until('both taken by the server', () => first.server.inflight >= 2, 2000);
  assert.ok(r.client.detach() >= 2); // the container is gone
  first.close();
  r.dev.hold = false;
  r.attach(); // the next container
  await Promise.all([w, rd]);
  assert.equal(back, bytes(BS * 4, 9), 'the replayed read, in order after the replayed write');
  assert.ok(r.client.replayed >= 2);
  r.close();
});

test("a failed sandbox: requests reject with EIO and the supervisor's reason", async () => {
  const r = rig();
  r.attach();
  const d = new SandboxBlockDevice(r.client);
  r.client.fail(new SandboxError('ERR_SANDBOX_FAILED', 'sandbox s: device marked failed: 4 restarts'));
  const e = await d.read(0, new Uint8Array(BS)).then(
    () => undefined,
    (x: BlockDeviceError) => x,
  );
  assert.ok(e instanceof BlockDeviceError);
  assert.is(e.kind, 'EIO');
  assert.match(e.message, /device marked failed/);
  r.close();
});

test.run();
