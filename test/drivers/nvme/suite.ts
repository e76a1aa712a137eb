/**
 * The NVMe driver suite, written once and run against any platform: the simulator
 * (test/drivers/nvme/driver.test.ts) and QEMU's NVMe through real VFIO in the lab
 * (test/lab/nvme/driver.test.ts). A target says how to open a platform on the device and how
 * to see the IOMMU's fault log; everything else is the same code.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Platform } from '../../../drivers/contract/platform.js';
import { DEVICE_READS, DEVICE_WRITES } from '../../../drivers/contract/platform.js';
import { NvmeController, type NvmeOptions } from '../../../drivers/nvme/controller.js';
import { NvmOpcode } from '../../../spec/nvme/commands.js';
import { GenericSc, Sct, statusOf } from '../../../spec/nvme/status.js';
import type { IoQueue } from '../../../drivers/nvme/ioqueue.js';

export interface NvmeTarget {
  /** For the suite's name. */
  readonly name: string;
  /** Open a platform on the NVMe function (one at a time). */
  open(): Platform | Promise<Platform>;
  /** Release whatever `open` set up beyond the platform itself (called after platform.close()). */
  release?(): void | Promise<void>;
  /** Identify Controller expectations. */
  readonly serial: string;
  readonly model: string;
  /** I/O queue pairs to ask for in the multi-queue test. */
  readonly queues: number;
  /** True when a DMA the IOMMU blocked completes with Data Transfer Error (ours); QEMU 7.2 says success. */
  readonly reportsTransferErrors: boolean;
  /** IOMMU faults logged so far for the device (a counter that only grows). */
  faultCount(): number | Promise<number>;
  /** Driver options to add (timeouts, buffer sizes). */
  readonly options?: NvmeOptions;
}

/** A deterministic pattern that differs per LBA and per run. */
export function pattern(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Submit one low-level command on `q` and wait for its status (the controller's engine reaps it). */
export function lowLevel(c: NvmeController, q: IoQueue, submit: (slot: number, done: (slot: number, status: number) => void) => void): Promise<number> {
  const slot = q.acquire();
  if (slot < 0) throw new Error('queue full');
  return new Promise((resolve) => {
    submit(slot, (_s, status) => resolve(status));
    q.ring();
    c.track();
  });
}

export function nvmeDriverSuite(target: NvmeTarget): void {
  const s = suite(`nvme driver on ${target.name}`);
  let platform: Platform | undefined;
  let ctrl: NvmeController | undefined;

  async function open(opts: NvmeOptions = {}): Promise<NvmeController> {
    platform = await target.open();
    ctrl = await NvmeController.open(platform, { ...target.options, ...opts });
    return ctrl;
  }

  s.after.each(async () => {
    try {
      if (ctrl) await ctrl.close();
    } finally {
      ctrl = undefined;
      platform?.close();
      platform = undefined;
      await target.release?.();
    }
  });

  s('Identify: serial, model, namespaces, transfer limit', async () => {
    const c = await open();
    assert.is(c.identify.serial, target.serial);
    assert.is(c.identify.model, target.model);
    assert.ok(c.namespaces.length >= 1, 'at least one active namespace');
    const ns = c.namespaces[0]!;
    assert.ok(ns.blockSize === 512 || ns.blockSize === 4096, `block size ${ns.blockSize}`);
    assert.ok(ns.blockCount > 0);
    assert.ok(c.maxTransferBytes >= 4096);
    assert.is(c.ioQueues.length, 1);
  });

  s('write then read patterns across the disk (first, middle, last blocks)', async () => {
    const c = await open();
    const ns = c.namespaces[0]!;
    const n = 8;
    const spots = [0, Math.floor(ns.blockCount / 3), Math.floor(ns.blockCount / 2) + 1, ns.blockCount - n];
    for (const [i, lba] of spots.entries()) await ns.write(lba, pattern(n * ns.blockSize, 100 + i));
    for (const [i, lba] of spots.entries()) {
      assert.equal(await ns.read(lba, n), pattern(n * ns.blockSize, 100 + i), `LBA ${lba}`);
    }
    // A single block between two written runs is not disturbed by them.
    await ns.write(spots[1]! + n, pattern(ns.blockSize, 7));
    assert.equal(await ns.read(spots[1]!, n), pattern(n * ns.blockSize, 101));
    assert.equal(await ns.read(spots[1]! + n, 1), pattern(ns.blockSize, 7));
  });

  s('many I/Os in flight, ring wrap-around on a small queue', async () => {
    const c = await open({ queueEntries: 4 });
    const ns = c.namespaces[0]!;
    const count = 64;
    const writes = [];
    for (let i = 0; i < count; i++) writes.push(ns.write(i * 2, pattern(ns.blockSize, 1000 + i)));
    await Promise.all(writes);
    const reads = [];
    for (let i = 0; i < count; i++) reads.push(ns.read(i * 2, 1));
    const got = await Promise.all(reads);
    got.forEach((b, i) => assert.equal(b, pattern(ns.blockSize, 1000 + i), `I/O ${i}`));
    assert.is(c.status().unknownCids, 0);
  });

  s('multiple I/O queues share the load', async () => {
    const c = await open({ queues: target.queues });
    assert.is(c.ioQueues.length, target.queues, 'granted queues');
    const ns = c.namespaces[0]!;
    const used = new Set<number>();
    const ops = [];
    for (let i = 0; i < 32; i++) {
      ops.push(ns.write(256 + i, pattern(ns.blockSize, 5000 + i)));
      for (const q of c.ioQueues) if (q.inFlight > 0) used.add(q.qid);
    }
    await Promise.all(ops);
    assert.is(used.size, target.queues, 'every queue carried I/O');
    const back = await Promise.all(Array.from({ length: 32 }, (_, i) => ns.read(256 + i, 1)));
    back.forEach((b, i) => assert.equal(b, pattern(ns.blockSize, 5000 + i)));
  });

  s('large transfers: 128 KiB in one command (PRP list), 1 MiB split, unaligned buffer start', async () => {
    const c = await open({ bufferBytes: 128 * 1024 });
    const ns = c.namespaces[0]!;
    const big = 128 * 1024;
    const blocks = big / ns.blockSize;
    if (c.maxTransferBytes >= big) {
      assert.is(ns.maxBlocksPerCommand, blocks);
    }
    await ns.write(1024, pattern(big, 42));
    assert.equal(await ns.read(1024, blocks), pattern(big, 42));
    const mib = 1024 * 1024;
    if (ns.bytes >= 4 * mib) {
      await ns.write(2048, pattern(mib, 43));
      assert.equal(await ns.read(2048, mib / ns.blockSize), pattern(mib, 43));
    }
    // PRP1 with an offset (dword aligned, not page aligned): the list then starts one entry later.
    for (const off of [4, 512, 4092, 4100]) {
      const len = 16 * ns.blockSize;
      await ns.write(3000, pattern(len, off), { bufferOffset: off });
      assert.equal(await ns.read(3000, 16, { bufferOffset: off }), pattern(len, off), `offset ${off}`);
      assert.equal(await ns.read(3000, 16), pattern(len, off), `offset ${off}, read back aligned`);
    }
  });

  s('zero copy from and into caller windows: unaligned starts, PRP lists built by dma/prp.ts, split at MDTS', async () => {
    const c = await open();
    const ns = c.namespaces[0]!;
    const dma = c.platform.dma;
    // More than one command's worth (MDTS), so the transfer is split, and not a whole page.
    const len = Math.min(c.mdtsBytes, 1024 * 1024) + 3 * ns.blockSize;
    const src = dma.alloc(len + 8192, DEVICE_READS, { label: 'zero-copy source' });
    const dst = dma.alloc(len + 8192, DEVICE_WRITES, { label: 'zero-copy target' });
    const blocks = len / ns.blockSize;
    const lba = Math.floor(ns.blockCount / 4);
    for (const off of [0, 4, 1164, 4096 + 2048]) {
      const want = pattern(len, 300 + off);
      src.bytes.set(want, off);
      await ns.writeFrom(lba, blocks, src, off);
      dst.bytes.fill(0xee);
      await ns.readInto(lba, blocks, dst, off);
      assert.equal(dst.bytes.subarray(off, off + len), want, `offset ${off}`);
      assert.ok(
        dst.bytes.subarray(0, off).every((b) => b === 0xee),
        'nothing written before the buffer',
      );
      assert.ok(
        dst.bytes.subarray(off + len).every((b) => b === 0xee),
        'nothing written after it',
      );
      // The copying API sees the same data.
      assert.equal(await ns.read(lba, blocks), want);
    }
    // A window with the wrong permission for the direction is refused before the device sees it.
    try {
      await ns.readInto(0, 1, src, 0);
      assert.unreachable();
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_NVME_ARGUMENT');
    }
    dma.free(src);
    dma.free(dst);
  });

  s('flush, write zeroes and discard', async () => {
    const c = await open();
    const ns = c.namespaces[0]!;
    await ns.write(40, pattern(8 * ns.blockSize, 9));
    await ns.flush();
    await ns.writeZeroes(42, 2);
    const after = await ns.read(40, 8);
    const want = pattern(8 * ns.blockSize, 9);
    want.fill(0, 2 * ns.blockSize, 4 * ns.blockSize);
    assert.equal(after, want);
    await ns.discard(44, 4);
    // After deallocation the contents are unspecified unless DLFEAT says zeroes (§6.7); only
    // check that the blocks around are untouched.
    assert.equal((await ns.read(40, 4)).subarray(0, 2 * ns.blockSize), want.subarray(0, 2 * ns.blockSize));
  });

  s('MSI-X mode: completions arrive through the vectors', async () => {
    const c = await open({ interrupts: 'msix', queues: target.queues });
    assert.is(c.interruptMode, 'msix');
    const ns = c.namespaces[0]!;
    await Promise.all(Array.from({ length: 16 }, (_, i) => ns.write(600 + i, pattern(ns.blockSize, 700 + i))));
    const got = await Promise.all(Array.from({ length: 16 }, (_, i) => ns.read(600 + i, 1)));
    got.forEach((b, i) => assert.equal(b, pattern(ns.blockSize, 700 + i)));
  });

  s('a read into a device-read-only window is blocked: memory unchanged, fault logged', async () => {
    const c = await open();
    const ns = c.namespaces[0]!;
    const q = c.ioQueues[0]!;
    await ns.write(64, pattern(ns.blockSize, 64));
    // The write-data buffers are mapped device-READ-only: a read command aimed there must fault.
    const victim = c.platform.dma.alloc(4096, DEVICE_READS, { label: 'canary (device read-only)' });
    victim.bytes.fill(0x5a);
    const before = await faults();
    const status = await lowLevel(c, q, (slot, done) => q.rwWithPrps(slot, NvmOpcode.READ, ns.nsid, 64, 1, victim.iova, 0n, done));
    assert.ok(
      victim.bytes.every((b) => b === 0x5a),
      'target memory unchanged',
    );
    assert.ok(await faultsAbove(before), 'the IOMMU logged a fault');
    if (target.reportsTransferErrors) assert.is(status, statusOf(Sct.GENERIC, GenericSc.DATA_TRANSFER_ERROR));
    c.platform.dma.free(victim);
    // The controller is still usable afterwards.
    assert.equal(await ns.read(64, 1), pattern(ns.blockSize, 64));
  });

  s('a corrupted PRP list entry (an unmapped IOVA) is blocked and logged', async () => {
    const c = await open();
    const ns = c.namespaces[0]!;
    const q = c.ioQueues[0]!;
    const pages = 4;
    const blocks = (pages * 4096) / ns.blockSize;
    await ns.write(128, pattern(pages * 4096, 128));
    const buf = c.platform.dma.alloc(pages * 4096, DEVICE_WRITES, { label: 'read target' });
    const list = c.platform.dma.alloc(4096, DEVICE_READS, { label: 'corrupt prp list' });
    const gone = c.platform.dma.alloc(4096, DEVICE_WRITES, { label: 'freed before use' });
    const goneIova = gone.iova;
    c.platform.dma.free(gone); // unmapped: a use-after-free IOVA
    list.view.setBigUint64(0, buf.iova + 4096n, true);
    list.view.setBigUint64(8, goneIova, true); // the corrupted entry
    list.view.setBigUint64(16, buf.iova + 3n * 4096n, true);
    const before = await faults();
    const status = await lowLevel(c, q, (slot, done) => q.rwWithPrps(slot, NvmOpcode.READ, ns.nsid, 128, blocks, buf.iova, list.iova, done));
    assert.ok(await faultsAbove(before), 'the IOMMU logged a fault');
    if (target.reportsTransferErrors) assert.is(status, statusOf(Sct.GENERIC, GenericSc.DATA_TRANSFER_ERROR));
    c.platform.dma.free(buf);
    c.platform.dma.free(list);
    assert.equal(await ns.read(128, blocks), pattern(pages * 4096, 128));
  });

  s('close shuts the controller down in order and releases it', async () => {
    const c = await open({ queues: target.queues });
    await c.namespaces[0]!.write(0, pattern(c.namespaces[0]!.blockSize, 1));
    await c.close();
    assert.is(c.status().state, 'closed');
    try {
      await c.namespaces[0]!.read(0, 1);
      assert.unreachable('read after close');
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_NVME_CLOSED');
    }
    ctrl = undefined;
  });

  async function faults(): Promise<number> {
    return await target.faultCount();
  }

  /** Wait (bounded, 5 s: the lab's trace file lags a little) until more than `n` faults are logged. */
  async function faultsAbove(n: number): Promise<boolean> {
    const end = Date.now() + 5000;
    for (;;) {
      if ((await faults()) > n) return true;
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  s.run();
}
