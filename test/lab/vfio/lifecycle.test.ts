/**
 * Lab (real VFIO in the QEMU guest): the container/group/device life cycle, the IOMMU as the
 * kernel reports it, config space ids, and BAR0 registers of QEMU's NVMe and e1000e.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Container, Group, iommuStatus, VFIO, VfioCode, VfioError } from 'vfio-bindings';
import { E1000E_IDS, findOne, inLab, NVME_IDS, openStack } from './lab-env.js';
import { REG } from './nvme-raw.js';

test('life cycle: API version, TYPE1v2, group status 1 then 3, device fd, close in order, group reopenable', () => {
  inLab();
  const nvme = findOne(NVME_IDS);
  const c = Container.open();
  let g: Group | undefined;
  try {
    assert.is(c.apiVersion(), VFIO.VFIO_API_VERSION);
    assert.ok(c.checkExtension(VFIO.VFIO_TYPE1v2_IOMMU));
    g = Group.open(nvme.iommuGroup);
    assert.equal(g.status(), { flags: 1, viable: true, containerSet: false });
    g.setContainer(c);
    assert.is(g.status().flags, 3);
    c.setIommu();
    const d = g.device(nvme.address);
    assert.ok(d.info().pci);
    try {
      g.device('0000:00:1f.7');
      assert.unreachable('no such device in the group');
    } catch (e) {
      assert.is((e as VfioError).code, VfioCode.DEVICE_NOT_FOUND, (e as Error).message);
    }
    // A second open of the group while it is open: EBUSY, explained.
    try {
      Group.open(nvme.iommuGroup);
      assert.unreachable('a legacy group opens once');
    } catch (e) {
      assert.is((e as VfioError).code, VfioCode.GROUP_BUSY);
    }
    g.close();
    assert.ok(d.isClosed, 'closing the group closed its device first');
    assert.not.ok(c.iommuSet, 'the last group left: the kernel reset the container');
    g.close();
    c.close();
    c.close();
  } finally {
    // On failure too: release the group (and device) so later tests can open it.
    g?.close();
    c.close();
  }
  // Everything was released: the group opens again.
  const again = Group.open(nvme.iommuGroup);
  assert.is(again.status().flags, 1);
  again.close();
});

test('IOMMU info as the kernel reports it: 4K/2M/1G pages, IOVA ranges around the MSI window, DMA mappings available', () => {
  inLab();
  const s = openStack(findOne(NVME_IDS));
  try {
    const info = s.container.info();
    assert.is(info.pageSizeMask, 0x40201000n);
    assert.equal(info.pageSizes, [0x1000n, 0x200000n, 0x40000000n]);
    assert.ok(
      info.iovaRanges && info.iovaRanges.length >= 2,
      `IOVA ranges reported: ${JSON.stringify(info.iovaRanges, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`,
    );
    // The x86 MSI window 0xfee00000-0xfeefffff is reserved: no range may cover it.
    assert.not.ok(info.iovaRanges!.some((r) => r.start <= 0xfee00000n && r.end >= 0xfee00000n));
    assert.is(info.iovaRanges![0]!.start, 0n);
    const top = info.iovaRanges!.at(-1)!.end;
    assert.ok(top < 1n << 48n, `the top of the IOVA space (0x${top.toString(16)}) reflects the IOMMU's address width`);
    assert.ok(info.dmaAvailable !== undefined && info.dmaAvailable > 0 && info.dmaAvailable <= 65535, `DMA mappings available: ${info.dmaAvailable}`);
  } finally {
    s.close();
  }
});

test("IOMMU status: Intel VT-d, the devices' groups translated by VFIO, interrupt remapping on", () => {
  inLab();
  const st = iommuStatus();
  assert.ok(
    st.iommus.some((i) => i.kind === 'intel-vt-d'),
    JSON.stringify(st.iommus),
  );
  assert.ok(st.vfio);
  assert.not.ok(st.noIommuMode);
  assert.is(st.interruptRemapping.state, 'enabled', st.interruptRemapping.evidence);
  const g = st.groups.find((x) => x.group === findOne(NVME_IDS).iommuGroup)!;
  assert.ok(g.devices.some((d) => d.driver === 'vfio-pci'));
});

test('config space ids through the config region: 1b36:0010 (NVMe, class 01 08 02) and 8086:10d3 (e1000e)', () => {
  inLab();
  for (const [ids, cls] of [
    [NVME_IDS, 0x010802],
    [E1000E_IDS, 0x020000],
  ] as const) {
    const s = openStack(findOne(ids));
    try {
      const cfg = s.device.config;
      assert.is(cfg.read16(0x00), ids.vendor);
      assert.is(cfg.read16(0x02), ids.device);
      assert.is(cfg.read32(0x00), (ids.device << 16) | ids.vendor);
      assert.is(cfg.read32(0x08) >>> 8, cls, 'class code (PCI 3.0 §6.2.1)');
      assert.is(cfg.read8(0x0e) & 0x7f, 0, 'header type 0');
    } finally {
      s.close();
    }
  }
});

test('NVMe BAR0: CAP (MQES 2047, TO 15, DSTRD 0) and VS 1.4.0 through the Mmio; regions and IRQs as QEMU has them', () => {
  inLab();
  const s = openStack(findOne(NVME_IDS));
  try {
    const info = s.device.info();
    assert.is(info.numRegions, 9);
    assert.is(info.numIrqs, 5);
    const r0 = s.device.regionInfo(0);
    assert.is(r0.size, 0x4000n);
    assert.ok(r0.mmap);
    assert.is(s.device.regionInfo(VFIO.VFIO_PCI_CONFIG_REGION_INDEX).offset, 0x700_0000_0000n);
    const bar = s.device.mapBar(0);
    const cap = bar.read64(REG.CAP.offset);
    assert.is(cap & 0xffffn, 2047n, 'CAP.MQES');
    assert.is((cap >> 24n) & 0xffn, 15n, 'CAP.TO');
    assert.is((cap >> 32n) & 0xfn, 0n, 'CAP.DSTRD');
    assert.is(cap, 0x004018200f0107ffn);
    assert.is(bar.read32(REG.VS.offset), 0x00010400, 'VS 1.4.0');
    assert.ok(s.device.irqCount('msix') >= 1);
    try {
      bar.read32(0x4000);
      assert.unreachable('past the BAR');
    } catch (e) {
      assert.is((e as VfioError).code, VfioCode.MMIO_BOUNDS);
    }
  } finally {
    s.close();
  }
});

test('e1000e BAR0: STATUS (82574L datasheet §10.2.2.2) reads link up, full duplex, 1000 Mb/s', () => {
  inLab();
  const s = openStack(findOne(E1000E_IDS));
  try {
    const bar = s.device.mapBar(0);
    assert.is(bar.size, 0x20000, '128 KiB register BAR');
    const status = bar.read32(0x0008);
    assert.is(status & 0x1, 1, `STATUS.FD (0x${status.toString(16)})`);
    assert.is((status >> 1) & 0x1, 1, `STATUS.LU (0x${status.toString(16)})`);
    assert.is((status >> 6) & 0x3, 0x2, `STATUS.SPEED = 1000 Mb/s (0x${status.toString(16)})`);
  } finally {
    s.close();
  }
});

test.run();
