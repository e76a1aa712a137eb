/**
 * Lab (real VFIO in the QEMU guest): the NVMe does DMA through windows vfio-bindings mapped, and
 * its admin completion raises MSI-X vector 0 on an eventfd.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DmaMemory, findOne, inLab, NVME_IDS, openStack } from './lab-env.js';
import { identifyStrings, RawNvme } from './nvme-raw.js';
import { setBusMaster } from '../../../spec/pci/config.js';

/** Window layout in one memfd: SQ (device reads), CQ (device writes), Identify data (device writes). */
const SQ = { off: 0x0000, iova: 0x1000_0000n };
const CQ = { off: 0x1000, iova: 0x1000_1000n };
const DATA = { off: 0x2000, iova: 0x1000_2000n };

test('Identify through least-privilege windows, with MSI-X vector 0 delivered to an eventfd', async () => {
  inLab();
  const s = openStack(findOne(NVME_IDS));
  const mem = new DmaMemory(0x3000);
  const c = s.container;
  try {
    c.map(mem.vaddr + BigInt(SQ.off), SQ.iova, 0x1000, { read: true, write: false });
    c.map(mem.vaddr + BigInt(CQ.off), CQ.iova, 0x1000, { read: true, write: true });
    c.map(mem.vaddr + BigInt(DATA.off), DATA.iova, 0x1000, { read: false, write: true });
    setBusMaster(s.device.config, true);
    const bar = s.device.mapBar(0);
    const nvme = new RawNvme(bar, { bytes: mem.at(SQ.off, 0x1000), iova: SQ.iova }, { bytes: mem.at(CQ.off, 0x1000), iova: CQ.iova });
    const [vec] = s.device.enableInterrupts('msix', 1);
    nvme.enable();
    vec!.take(); // anything left from enabling
    const fired = vec!.wait(10_000);
    const cid = nvme.submitIdentify(DATA.iova);
    const count = await fired;
    assert.ok(count >= 1n, 'MSI-X vector 0 fired');
    const cqe = nvme.waitCompletion(cid, 1000);
    assert.is(cqe.status, 0);
    const id = identifyStrings(mem.at(DATA.off, 0x1000));
    assert.match(id.serial, /^lab\d+$/);
    assert.is(id.model, 'QEMU NVMe Ctrl');
    nvme.disable();
    s.device.disableInterrupts();
    c.unmap(SQ.iova, 0x3000n);
  } finally {
    s.close();
    mem.close();
  }
});

test.run();
