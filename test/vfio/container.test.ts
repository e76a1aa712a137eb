import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Container, Group, IOCTL, VFIO, VfioCode, VfioError } from 'vfio-bindings';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from 'linux-sys';
import { FakeSys, IOVA_RANGES, PAGE_SIZES } from '../sys/fake-sys.js';

function throwsCode(fn: () => unknown, code: string, also?: RegExp): VfioError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, VfioError);
    const err = e as VfioError;
    assert.is(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    if (also) assert.match(err.message, also);
    return err;
  }
  throw new assert.Assertion({ message: `expected ${code}, nothing thrown`, operator: 'throws', expects: code, actual: undefined });
}

/** A container with group 1 attached and type1v2 set, plus 64 KiB of anonymous memory to map. */
function ready(sys = new FakeSys()): { sys: FakeSys; c: Container; g: Group; mem: bigint } {
  const c = Container.open({ sys });
  const g = Group.open(1, { sys });
  g.setContainer(c);
  c.setIommu();
  const mem = sys.mmap(0n, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  return { sys, c, g, mem };
}

test('open checks the API version and reports TYPE1v2', () => {
  const sys = new FakeSys();
  const c = Container.open({ sys });
  assert.is(c.apiVersion(), 0);
  assert.ok(c.checkExtension(VFIO.VFIO_TYPE1v2_IOMMU));
  assert.not.ok(c.checkExtension(VFIO.VFIO_NOIOMMU_IOMMU));
  assert.not.ok(c.iommuSet);
  c.close();
});

test('no /dev/vfio: ERR_VFIO_NO_VFIO pointing at the simulator and the lab', () => {
  const e = throwsCode(() => Container.open({ sys: new FakeSys({ vfio: false }) }), VfioCode.NO_VFIO);
  assert.is(e.errnoName, 'ENOENT');
  assert.is(e.errno, 2);
  assert.match(e.fix ?? '', /simulator/);
  assert.match(e.fix ?? '', /lab/);
});

test('permission denied on the container node: ERR_VFIO_ACCESS', () => {
  throwsCode(() => Container.open({ sys: new FakeSys({ denied: ['/dev/vfio/vfio'] }) }), VfioCode.ACCESS, /EACCES/);
});

test('SET_IOMMU with no group attached is explained', () => {
  const c = Container.open({ sys: new FakeSys() });
  throwsCode(() => c.setIommu(), VfioCode.ARG, /no group is attached/);
});

test('SET_IOMMU EPERM means no interrupt remapping: the allow_unsafe_interrupts fix', () => {
  const sys = new FakeSys({ interruptRemapping: false });
  const c = Container.open({ sys });
  Group.open(1, { sys }).setContainer(c);
  const e = throwsCode(() => c.setIommu(), VfioCode.NO_INTERRUPT_REMAPPING);
  assert.is(e.errnoName, 'EPERM');
  assert.match(e.fix ?? '', /allow_unsafe_interrupts/);
  assert.not.ok(c.iommuSet);
});

test('info() calls again with the argsz the kernel asks, and decodes page sizes, IOVA ranges, DMA available', () => {
  const { sys, c } = ready();
  sys.calls.length = 0;
  const info = c.info();
  const gets = sys.calls.filter((x) => x.request === IOCTL.VFIO_IOMMU_GET_INFO);
  assert.is(gets.length, 2);
  assert.is(gets[0]!.argsz, 24);
  assert.ok(gets[1]!.argsz! > 24);
  assert.is(info.pageSizeMask, PAGE_SIZES);
  assert.equal(info.pageSizes, [4096n, 2n * 1024n * 1024n, 1024n * 1024n * 1024n]);
  assert.equal(info.iovaRanges, IOVA_RANGES);
  assert.is(info.dmaAvailable, 65535);
});

test('info() before SET_IOMMU is ERR_VFIO_IOMMU_NOT_SET', () => {
  const c = Container.open({ sys: new FakeSys() });
  throwsCode(() => c.info(), VfioCode.IOMMU_NOT_SET);
});

test('map then unmap: the kernel sees the struct, the mapping goes, DMA available follows', () => {
  const { sys, c, mem } = ready();
  c.map(mem, 0x10000n, 0x2000, { read: true, write: false });
  assert.is(c.info().dmaAvailable, 65534);
  assert.is(sys.pinned, 0x2000n);
  c.unmap(0x10000n, 0x2000n);
  assert.is(sys.pinned, 0n);
  assert.is(c.info().dmaAvailable, 65535);
});

test('overlapping map: ERR_VFIO_MAP_EXISTS (EEXIST)', () => {
  const { c, mem } = ready();
  c.map(mem, 0x10000n, 0x2000, { read: true, write: true });
  const e = throwsCode(() => c.map(mem + 0x2000n, 0x11000n, 0x1000, { read: true, write: true }), VfioCode.MAP_EXISTS, /overlaps/);
  assert.is(e.errnoName, 'EEXIST');
});

test('unmap of what is not mapped: ERR_VFIO_UNMAP_SHORT (the kernel reports 0 bytes)', () => {
  const { c } = ready();
  throwsCode(() => c.unmap(0x40000n, 0x1000), VfioCode.UNMAP_SHORT, /unmapped 0x0 of 0x1000.*nothing was mapped/);
});

test('unmap that would split a mapping: ERR_VFIO_UNMAP_SHORT (EINVAL under type1v2)', () => {
  const { c, mem } = ready();
  c.map(mem, 0x10000n, 0x4000, { read: true, write: true });
  const e = throwsCode(() => c.unmap(0x11000n, 0x1000), VfioCode.UNMAP_SHORT, /split/);
  assert.is(e.errnoName, 'EINVAL');
});

test('IOVA outside the valid ranges: ERR_VFIO_IOVA_RANGE listing them', () => {
  const { c, mem } = ready();
  throwsCode(() => c.map(mem, 1n << 40n, 0x1000, { read: true, write: true }), VfioCode.IOVA_RANGE, /0xfef00000-0x7fffffffff/);
  throwsCode(() => c.map(mem, 0xfee00000n, 0x1000, { read: true, write: true }), VfioCode.IOVA_RANGE, /outside the valid IOVA ranges/);
});

test('misaligned map: ERR_VFIO_MAP_ALIGN', () => {
  const { c, mem } = ready();
  throwsCode(() => c.map(mem, 0x10800n, 0x1000, { read: true, write: true }), VfioCode.MAP_ALIGN, /4096/);
});

test('map before SET_IOMMU: ERR_VFIO_IOMMU_NOT_SET (the kernel says EINVAL)', () => {
  const sys = new FakeSys();
  const c = Container.open({ sys });
  const mem = sys.mmap(0n, 0x1000, 3, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  const e = throwsCode(() => c.map(mem, 0x1000n, 0x1000, { read: true, write: true }), VfioCode.IOMMU_NOT_SET);
  assert.is(e.errnoName, 'EINVAL');
  throwsCode(() => c.unmap(0x1000n, 0x1000), VfioCode.IOMMU_NOT_SET);
});

test('ENOMEM on map is the memlock pitfall, with the limit and the ulimit fix', () => {
  const { c, mem } = ready(new FakeSys({ memlock: 0x8000n }));
  c.map(mem, 0x10000n, 0x8000, { read: true, write: true });
  const e = throwsCode(() => c.map(mem + 0x8000n, 0x20000n, 0x1000, { read: true, write: true }), VfioCode.MEMLOCK, /RLIMIT_MEMLOCK is 32768 bytes/);
  assert.is(e.errnoName, 'ENOMEM');
  assert.match(e.fix ?? '', /ulimit -l/);
});

test('memory that is not mapped: EFAULT explained', () => {
  const { c } = ready();
  throwsCode(() => c.map(0x1000n, 0x10000n, 0x1000, { read: true, write: true }), VfioCode.ARG, /not mapped memory/);
});

test('bad input is refused before the kernel: no permission, bad size, number iova', () => {
  const { c, mem } = ready();
  throwsCode(() => c.map(mem, 0x10000n, 0x1000, { read: false, write: false }), VfioCode.ARG, /read, write or both/);
  throwsCode(() => c.map(mem, 0x10000n, -1, { read: true, write: true }), VfioCode.ARG, /positive integer/);
  throwsCode(() => c.map(mem, 0x10000 as unknown as bigint, 0x1000, { read: true, write: true }), VfioCode.ARG, /bigint/);
  throwsCode(() => c.unmap(0x10000n, 0n), VfioCode.ARG);
  throwsCode(() => c.map(mem, -0x1000n, 0x1000, { read: true, write: true }), VfioCode.ARG, /unsigned 64-bit/);
  throwsCode(() => c.unmap(-1n, 0x1000), VfioCode.ARG, /unsigned 64-bit/);
});

test('the last group leaving resets the IOMMU (as the kernel does); close is idempotent and closes the groups', () => {
  const { sys, c, g, mem } = ready();
  c.map(mem, 0x10000n, 0x1000, { read: true, write: true });
  g.unsetContainer();
  assert.not.ok(c.iommuSet);
  assert.is(sys.pinned, 0n);
  g.setContainer(c);
  c.setIommu();
  const before = sys.openFdCount();
  c.close();
  assert.ok(g.isClosed);
  assert.is(sys.openFdCount(), before - 2);
  c.close();
  throwsCode(() => c.apiVersion(), VfioCode.CLOSED);
});

test.run();
