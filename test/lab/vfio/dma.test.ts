/**
 * Lab (real VFIO in the QEMU guest): DMA map and unmap on a real type1v2 container, and the
 * kernel's refusals as vfio-bindings explains them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Container, VfioCode, VfioError } from 'vfio-bindings';
import { DmaMemory, findOne, inLab, NVME_IDS, openStack } from './lab-env.js';

const RW = { read: true, write: true };

function refused(fn: () => unknown, code: string, errnoName?: string): VfioError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, VfioError);
    const err = e as VfioError;
    assert.is(err.code, code, err.message);
    if (errnoName) assert.is(err.errnoName, errnoName, err.message);
    return err;
  }
  throw new assert.Assertion({ message: `expected ${code}`, operator: 'throws', expects: code, actual: undefined });
}

test('map and unmap: DMA mappings available goes down by one and back', () => {
  inLab();
  const s = openStack(findOne(NVME_IDS));
  const mem = new DmaMemory(0x10000);
  try {
    const avail = s.container.info().dmaAvailable!;
    s.container.map(mem.vaddr, 0x1000_0000n, 0x4000, RW);
    assert.is(s.container.info().dmaAvailable, avail - 1);
    s.container.unmap(0x1000_0000n, 0x4000n);
    assert.is(s.container.info().dmaAvailable, avail);
  } finally {
    s.close();
    mem.close();
  }
});

test("the kernel's refusals: overlap (EEXIST), unmap of nothing (size 0 back), split (EINVAL), outside the ranges, misaligned", () => {
  inLab();
  const s = openStack(findOne(NVME_IDS));
  const mem = new DmaMemory(0x10000);
  const c = s.container;
  try {
    c.map(mem.vaddr, 0x1000_0000n, 0x4000, RW);
    refused(() => c.map(mem.vaddr + 0x4000n, 0x1000_2000n, 0x1000, RW), VfioCode.MAP_EXISTS, 'EEXIST');
    refused(() => c.unmap(0x2000_0000n, 0x1000n), VfioCode.UNMAP_SHORT);
    refused(() => c.unmap(0x1000_1000n, 0x1000n), VfioCode.UNMAP_SHORT, 'EINVAL');
    const info = c.info();
    const beyond = info.iovaRanges!.at(-1)!.end + 1n;
    const e = refused(() => c.map(mem.vaddr + 0x4000n, beyond, 0x1000, RW), VfioCode.IOVA_RANGE, 'EINVAL');
    assert.match(e.message, /outside the valid IOVA ranges/);
    refused(() => c.map(mem.vaddr + 0x4000n, 0xfee0_0000n, 0x1000, RW), VfioCode.IOVA_RANGE, 'EINVAL');
    refused(() => c.map(mem.vaddr + 0x4800n, 0x3000_0000n, 0x1000, RW), VfioCode.MAP_ALIGN, 'EINVAL');
    refused(() => c.map(0x1000n, 0x3000_0000n, 0x1000, RW), VfioCode.ARG, 'EFAULT');
    // The original mapping is intact and unmaps whole.
    c.unmap(0x1000_0000n, 0x4000n);
  } finally {
    s.close();
    mem.close();
  }
});

test('map before SET_IOMMU: the kernel says EINVAL, explained as ERR_VFIO_IOMMU_NOT_SET', () => {
  inLab();
  const mem = new DmaMemory(0x1000);
  const c = Container.open();
  try {
    const e = refused(() => c.map(mem.vaddr, 0x1000_0000n, 0x1000, RW), VfioCode.IOMMU_NOT_SET, 'EINVAL');
    assert.match(e.fix ?? '', /setIommu/);
    refused(() => c.setIommu(), VfioCode.ARG);
  } finally {
    c.close();
    mem.close();
  }
});

test("read-only and write-only windows are accepted by the IOMMU (the permission is the device's)", () => {
  inLab();
  const s = openStack(findOne(NVME_IDS));
  const mem = new DmaMemory(0x2000);
  try {
    s.container.map(mem.vaddr, 0x1000_0000n, 0x1000, { read: true, write: false });
    s.container.map(mem.vaddr + 0x1000n, 0x1000_1000n, 0x1000, { read: false, write: true });
    s.container.unmap(0x1000_0000n, 0x2000n);
  } finally {
    s.close();
    mem.close();
  }
});

test.run();
