/**
 * A controller that reports a doorbell stride (CAP.DSTRD, NVMe 1.4 §3.1.1) its BAR0 cannot hold:
 * an earlier campaign saw the driver crash on the first doorbell write outside the register space.
 * Now open() refuses it with ERR_NVME_UNSUPPORTED naming the stride and the BAR size, before any
 * doorbell is rung; a stride that leaves room for the admin queue but not every I/O queue gets
 * only the queues whose doorbells fit.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NvmeController } from '../../../drivers/nvme/controller.js';
import type { Platform, RegisterSpace } from '../../../drivers/contract/platform.js';
import { REG } from '../../../spec/nvme/registers.js';
import { ADDRESS, simRig } from './sim-target.js';

/** The simulated controller's platform (its own stride `simDstrd`), CAP.DSTRD read as `dstrd` (bits 35:32), BAR0 claiming `size` bytes. */
function lyingPlatform(dstrd: number, size: number, simDstrd = 0): { platform: Platform; writesOutside: () => number } {
  const rig = simRig({ timeout: 1, dstrd: simDstrd });
  const inner = rig.machine.platform(ADDRESS);
  const bar = inner.bar(0);
  const limit = size;
  let outside = 0;
  const capHi = REG.CAP.offset + 4;
  const lying: RegisterSpace = {
    size: limit,
    read32: (off) => (off === capHi ? ((bar.read32(off) & ~0xf) | dstrd) >>> 0 : bar.read32(off)),
    write32: (off, v) => {
      if (off + 4 > limit) {
        outside++;
        throw new RangeError(`BAR0 write at 0x${off.toString(16)} beyond ${limit} bytes`);
      }
      bar.write32(off, v);
    },
    read64: (off) => (off === REG.CAP.offset ? (bar.read64(off) & ~(0xfn << 32n)) | (BigInt(dstrd) << 32n) : bar.read64(off)),
    write64: (off, v) => bar.write64(off, v),
  };
  const platform = Object.create(inner) as Platform;
  Object.defineProperty(platform, 'bar', { value: (i: number) => (i === 0 ? lying : inner.bar(i)) });
  return { platform, writesOutside: () => outside };
}

test('CAP.DSTRD 15 with a 16 KiB BAR0: open refuses with ERR_NVME_UNSUPPORTED, no write outside the BAR', async () => {
  const { platform, writesOutside } = lyingPlatform(15, 16 * 1024);
  try {
    await NvmeController.open(platform, { adminTimeoutMs: 200 });
    assert.unreachable('opened');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_NVME_UNSUPPORTED', String(e));
    assert.match(
      (e as Error).message,
      /CAP\.DSTRD 15 \(a 131072-byte doorbell stride\) puts the admin completion doorbell at 0x21000, outside BAR0's 16384 bytes/,
    );
  }
  assert.is(writesOutside(), 0);
});

test('a stride with room for the admin queue and one I/O queue only: one I/O queue, logged, and I/O works', async () => {
  // DSTRD 8: a 1 KiB stride; 0x1000 + 4 doorbells of 1 KiB = 0x2000 bytes hold queues 0 and 1.
  const { platform, writesOutside } = lyingPlatform(8, 0x2000, 8);
  const logs: string[] = [];
  const c = await NvmeController.open(platform, { queues: 4, adminTimeoutMs: 500, log: (m) => logs.push(m) });
  try {
    assert.is(c.status().inFlight.length - 1, 1, 'one I/O queue');
    assert.ok(
      logs.some((l) => /I\/O queue\(s\) left out: their doorbells would lie outside BAR0/.test(l)),
      logs.join('\n'),
    );
    const data = new Uint8Array(512).fill(7);
    await c.namespaces[0]!.write(3, data);
    assert.equal(await c.namespaces[0]!.read(3, 1), data);
  } finally {
    await c.close();
  }
  assert.is(writesOutside(), 0);
});

test.run();
