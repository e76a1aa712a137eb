/**
 * The simulated NVMe controller on its own: registers and their reset values, enable/disable and
 * shutdown (§3.1, §7.6), doorbell validation, the PRP walker (§4.3) over the simulated IOMMU,
 * and the file-backed store.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimMachine } from '../../../sim/machine.js';
import { SimNvme } from '../../../sim/nvme/controller.js';
import { PrpResult, PrpWalker } from '../../../sim/nvme/prp.js';
import { FileStore, MemoryStore } from '../../../sim/nvme/store.js';
import { decodeCap, encodeCc, REG, sqTailDoorbell } from '../../../spec/nvme/registers.js';
import { getField } from '../../../spec/field.js';
import { DEVICE_READS, DEVICE_WRITES } from '../../../drivers/contract/platform.js';
import { NvmeController } from '../../../drivers/nvme/controller.js';
import { AdminOpcode, FeatureId } from '../../../spec/nvme/commands.js';
import { GenericSc, Sct, statusOf } from '../../../spec/nvme/status.js';

const ADDRESS = '0000:00:01.0';

function rig(options = {}) {
  const machine = new SimMachine();
  const model = new SimNvme(options);
  const fn = machine.attach(model, { address: ADDRESS, workMode: 'sync' });
  const p = machine.platform(ADDRESS, { busMaster: true });
  return { machine, model, fn, p, bar: p.bar(0) };
}

test('power-on registers: CAP as configured, VS 1.4.0, CC and CSTS zero', () => {
  const { bar, p } = rig({ maxQueueEntries: 256, dstrd: 2, timeout: 7 });
  const cap = decodeCap(bar.read64(REG.CAP.offset));
  assert.is(cap.MQES, 255);
  assert.is(cap.CQR, 1);
  assert.is(cap.DSTRD, 2);
  assert.is(cap.TO, 7);
  assert.is(cap.CSS & 1, 1);
  assert.is(cap.MPSMIN, 0);
  assert.is(bar.read32(REG.VS.offset), 0x00010400);
  assert.is(bar.read32(REG.CC.offset), 0);
  assert.is(bar.read32(REG.CSTS.offset), 0);
  p.close();
});

test('CC.EN with a bad configuration leaves REG.CSTS.RDY clear and says why; a good one sets it; EN=0 clears it', () => {
  const { bar, model, p } = rig();
  const asq = p.dma.alloc(4096, DEVICE_READS);
  const acq = p.dma.alloc(4096, DEVICE_WRITES);
  bar.write32(REG.AQA.offset, (15 << 16) | 15);
  bar.write64(REG.ASQ.offset, asq.iova);
  bar.write64(REG.ACQ.offset, acq.iova);
  bar.write32(REG.CC.offset, encodeCc({ EN: 1, IOSQES: 5, IOCQES: 4 }));
  assert.is(getField(bar.read32(REG.CSTS.offset), REG.CSTS.RDY), 0);
  assert.match(model.lastError, /IOSQES/);
  bar.write32(REG.CC.offset, 0);
  bar.write32(REG.CC.offset, encodeCc({ EN: 1, IOSQES: 6, IOCQES: 4 }));
  assert.is(getField(bar.read32(REG.CSTS.offset), REG.CSTS.RDY), 1);
  assert.is(bar.read64(REG.ASQ.offset), asq.iova);
  // Shutdown notification (§7.6.2): SHST reports complete.
  bar.write32(REG.CC.offset, encodeCc({ EN: 1, IOSQES: 6, IOCQES: 4, SHN: 1 }));
  assert.is(getField(bar.read32(REG.CSTS.offset), REG.CSTS.SHST), 2);
  bar.write32(REG.CC.offset, 0);
  assert.is(bar.read32(REG.CSTS.offset), 0);
  // A doorbell for a queue that does not exist, or past the queue's end, is counted and ignored.
  bar.write32(sqTailDoorbell(5, 0), 1);
  assert.is(model.stats.badDoorbells, 1);
  // FLR puts CC back to its power-on value.
  bar.write32(REG.CC.offset, encodeCc({ EN: 1, IOSQES: 6, IOCQES: 4 }));
  p.reset();
  assert.is(bar.read32(REG.CC.offset), 0);
  assert.is(getField(bar.read32(REG.CC.offset), REG.CC.EN), 0);
  p.close();
});

test('PRP walker: one page, two pages, lists with an offset, chained list pages, bad offsets, blocked list reads', () => {
  const { fn, p, machine } = rig();
  const w = new PrpWalker(fn.dma, 64 * 4096);
  // PRP1 only, with an offset.
  assert.is(w.walk(0x10010, 0, 100), PrpResult.OK);
  assert.is(w.count, 1);
  // Crossing into a second page via PRP2.
  assert.is(w.walk(0x10ff0, 0x50000, 0x20), PrpResult.OK);
  assert.equal([w.count, w.addr[0], w.len[0], w.addr[1], w.len[1]], [2, 0x10ff0, 0x10, 0x50000, 0x10]);
  assert.is(w.walk(0x10ff0, 0x50008, 0x20), PrpResult.BAD_OFFSET, 'PRP2 as a page must have no offset');
  assert.is(w.walk(0x10002, 0, 4), PrpResult.BAD_OFFSET, 'PRP1 must be dword aligned');
  // A list starting 16 bytes before the end of its page: two entries, then the chain pointer.
  const list = p.dma.alloc(8192, DEVICE_READS);
  const L = Number(list.iova);
  list.view.setBigUint64(4096 - 16, 0x100000n, true);
  list.view.setBigUint64(4096 - 8, BigInt(L + 4096), true); // chain to the next list page
  list.view.setBigUint64(4096, 0x200000n, true);
  list.view.setBigUint64(4104, 0x300000n, true);
  assert.is(w.walk(0x7000, L + 4096 - 16, 4 * 4096), PrpResult.OK);
  assert.equal(Array.from(w.addr.subarray(0, w.count)), [0x7000, 0x100000, 0x200000, 0x300000]);
  // Exactly filling the list page: the last entry is data, not a chain.
  list.view.setBigUint64(4096 - 8, 0x400000n, true);
  assert.is(w.walk(0x7000, L + 4096 - 16, 3 * 4096), PrpResult.OK);
  assert.equal(Array.from(w.addr.subarray(0, w.count)), [0x7000, 0x100000, 0x400000]);
  // Contiguous pages merge into one segment.
  list.view.setBigUint64(0, 0x8000n, true);
  list.view.setBigUint64(8, 0x9000n, true);
  assert.is(w.walk(0x7000, L, 3 * 4096), PrpResult.OK);
  assert.equal([w.count, w.len[0]], [1, 3 * 4096]);
  // A list entry with an offset is refused; a list the device may not read is a fault.
  list.view.setBigUint64(8, 0x9010n, true);
  assert.is(w.walk(0x7000, L, 3 * 4096), PrpResult.BAD_OFFSET);
  const before = machine.iommu.faults(ADDRESS).length;
  assert.is(w.walk(0x7000, 0x7700_0000, 3 * 4096), PrpResult.LIST_FAULT);
  assert.is(machine.iommu.faults(ADDRESS).length, before + 1);
  p.close();
});

test('file-backed namespace: data written through the driver is in the file and survives a new controller', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-nvme-'));
  const path = join(dir, 'disk.img');
  try {
    for (const round of [0, 1]) {
      const machine = new SimMachine();
      const store = new FileStore(path, 1024 * 512);
      machine.attach(new SimNvme({ namespaces: [{ blocks: 1024, store }] }), { address: ADDRESS });
      const p = machine.platform(ADDRESS);
      const c = await NvmeController.open(p, { log: () => undefined });
      const ns = c.namespaces[0]!;
      if (round === 0) {
        await ns.write(3, new Uint8Array(1024).fill(0x77));
        await ns.writeZeroes(4, 1);
      } else {
        const got = await ns.read(3, 2);
        assert.ok(got.subarray(0, 512).every((b) => b === 0x77));
        assert.ok(got.subarray(512).every((b) => b === 0));
      }
      await c.close();
      p.close();
      store.close();
    }
    const raw = readFileSync(path);
    assert.is(raw.length, 1024 * 512);
    assert.is(raw[3 * 512], 0x77);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('memory store bounds and argument errors: ERR_SIM_ARG for every option out of its field', () => {
  assert.throws(() => new MemoryStore(0), /must be 1 byte/);
  assert.throws(() => new SimNvme({ namespaces: [{ blocks: 8, blockSize: 1000 }] }), /power of two/);
  assert.throws(() => new SimNvme({ dstrd: 16 }), /dstrd/);
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      return (e as { code: string }).code;
    }
    return 'no error';
  };
  for (const bad of [
    { maxQueueEntries: 1 },
    { maxQueueEntries: 65537 },
    { timeout: 256 },
    { mdts: 13 },
    { maxIoQueues: 0 },
    { msixVectors: 0 },
    { namespaces: [{ blocks: 0 }] },
  ]) {
    assert.is(
      code(() => new SimNvme(bad)),
      'ERR_SIM_ARG',
      JSON.stringify(bad),
    );
  }
  const { model, p } = rig();
  assert.is(
    code(() => model.injectCompletion(3, 1)),
    'ERR_SIM_ARG',
    'no SQ 3',
  );
  p.close();
});

test('Get and Set Features: Number of Queues reports the grant, Volatile Write Cache round-trips, others are Invalid Field (§5.13, §5.21)', async () => {
  const { p } = rig({ maxIoQueues: 4 });
  const c = await NvmeController.open(p, { queues: 3, log: () => undefined });
  const get = (fid: number) => c.adminRaw('get features', AdminOpcode.GET_FEATURES, 0, 0n, 0n, fid, 0);
  const set = (fid: number, cdw11: number) => c.adminRaw('set features', AdminOpcode.SET_FEATURES, 0, 0n, 0n, fid, cdw11);
  assert.equal(await get(FeatureId.NUMBER_OF_QUEUES), { status: 0, dw0: 0x0002_0002 }, "3 SQs and 3 CQs, 0's based");
  assert.equal(await get(FeatureId.VOLATILE_WRITE_CACHE), { status: 0, dw0: 1 });
  assert.is((await set(FeatureId.VOLATILE_WRITE_CACHE, 0)).status, 0);
  assert.equal(await get(FeatureId.VOLATILE_WRITE_CACHE), { status: 0, dw0: 0 });
  const invalid = statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true);
  assert.is((await get(FeatureId.ARBITRATION)).status, invalid);
  assert.is((await set(FeatureId.ARBITRATION, 0)).status, invalid);
  assert.is((await set(FeatureId.NUMBER_OF_QUEUES, 0xffff)).status, invalid, 'NSQR FFFFh');
  await c.close();
  p.close();
});

test.run();
