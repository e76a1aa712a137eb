import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Container, Device, Group, IOCTL, VFIO, VfioCode, VfioError } from 'vfio-bindings';
import { FakeSys, nvmeLikeDevice, regionOffset } from '../sys/fake-sys.js';
import { setBusMaster } from '../../spec/pci/config.js';

const BDF = '0000:00:01.0';

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

function open(sys = new FakeSys()): { sys: FakeSys; d: Device; c: Container } {
  const c = Container.open({ sys });
  const g = Group.open(1, { sys });
  g.setContainer(c);
  c.setIommu();
  return { sys, d: g.device(BDF), c };
}

test('info and region info (BAR0 mmap-able, config at index 7 with its fd offset)', () => {
  const { d } = open();
  const info = d.info();
  assert.equal(info, { flags: 3, numRegions: 9, numIrqs: 5, canReset: true, pci: true });
  const bar0 = d.regionInfo(0);
  assert.is(bar0.size, 0x4000n);
  assert.ok(bar0.mmap && bar0.read && bar0.write);
  assert.is(bar0.sparse, undefined);
  const cfg = d.regionInfo(VFIO.VFIO_PCI_CONFIG_REGION_INDEX);
  assert.is(cfg.offset, 0x700_0000_0000n);
  throwsCode(() => d.regionInfo(12), VfioCode.SYSCALL, /no region 12/);
});

test('sparse mmap capability: argsz grown, areas decoded, BAR mapped by area with pread/pwrite for the hole', () => {
  const model = nvmeLikeDevice();
  model.regions[0]!.sparse = [
    { offset: 0n, size: 0x1000n },
    { offset: 0x3000n, size: 0x1000n },
  ];
  new DataView(model.regions[0]!.bytes!).setUint32(0x2000, 0xfeedf00d, true);
  const sys = new FakeSys({ groups: { 1: { devices: { [BDF]: model } } } });
  const { d } = open(sys);
  sys.calls.length = 0;
  const r = d.regionInfo(0);
  const asks = sys.calls.filter((x) => x.request === IOCTL.VFIO_DEVICE_GET_REGION_INFO).map((x) => x.argsz);
  assert.equal(asks, [32, 32 + 16 + 32]);
  assert.equal(r.sparse, [
    { offset: 0n, size: 0x1000n },
    { offset: 0x3000n, size: 0x1000n },
  ]);
  assert.equal(r.capIds, [VFIO.VFIO_REGION_INFO_CAP_SPARSE_MMAP]);
  const bar = d.mapBar(0);
  assert.is(bar.size, 0x4000);
  assert.is(sys.mappings.size, 2);
  // The fake cannot alias a slice of the BAR, so each area is its own buffer: check accesses land there, with no pread/pwrite.
  const areaAt = (off: bigint): DataView => new DataView([...sys.mappings.values()].find((m) => m.offset === off)!.bytes);
  areaAt(0n).setUint32(0x10, 0xa5a5a5a5, true);
  sys.calls.length = 0;
  assert.is(bar.read32(0x10), 0xa5a5a5a5);
  bar.write32(0x3004, 77);
  assert.is(areaAt(0x3000n).getUint32(4, true), 77);
  assert.equal(sys.calls, [], 'mapped areas are accessed without syscalls');
  assert.is(bar.read32(0x2000), 0xfeedf00d, 'the hole goes through pread');
  assert.equal(
    sys.calls.map((c) => c.op),
    ['pread 0:8192'],
  );
  bar.write32(0x2004, 0x12345678);
  assert.is(new DataView(model.regions[0]!.bytes!).getUint32(0x2004, true), 0x12345678);
});

test('config space: 8/16/32-bit reads and writes through the config region; bounds and alignment checked', () => {
  const { sys, d } = open();
  const cfg = d.config;
  assert.is(cfg.read16(0), 0x1b36);
  assert.is(cfg.read16(2), 0x0010);
  assert.is(cfg.read32(0), 0x00101b36);
  assert.is(cfg.read8(1), 0x1b);
  assert.is(cfg.size, 4096);
  setBusMaster(d.config, true);
  assert.is(cfg.read16(4), 0x0006);
  cfg.write32(0x40, 0xdeadbeef);
  cfg.write8(0x44, 0xab);
  assert.is(new DataView(sys.model(BDF).regions[7]!.bytes!).getUint32(0x40, true), 0xdeadbeef);
  assert.is(cfg.read8(0x44), 0xab);
  throwsCode(() => cfg.read32(2), VfioCode.ARG, /naturally aligned/);
  throwsCode(() => cfg.read16(4095), VfioCode.ARG);
  throwsCode(() => cfg.read8(4096), VfioCode.ARG);
  throwsCode(() => cfg.read8(-1), VfioCode.ARG);
});

test('mapBar: NVMe CAP and VS read through the Mmio (64-bit low then high); refused for unmappable and absent BARs', () => {
  const { sys, d } = open();
  const bar = d.mapBar(0);
  assert.is(bar.read64(0), 0x004018200f0107ffn);
  assert.is(bar.read32(8), 0x00010400);
  bar.write32(0x14, 0x460001);
  assert.is(new DataView(sys.model(BDF).regions[0]!.bytes!).getUint32(0x14, true), 0x460001, 'the Mmio aliases the BAR');
  throwsCode(() => d.mapBar(4), VfioCode.REGION_MMAP, /cannot be mmapped/);
  throwsCode(() => d.mapBar(2), VfioCode.REGION_MMAP, /not implemented/);
  throwsCode(() => d.mapBar(6), VfioCode.ARG, /0 to 5/);
});

test('regionRead/regionWrite go through pread/pwrite and check the range', () => {
  const { d } = open();
  const b = new Uint8Array(4);
  assert.is(d.regionRead(0, 8n, b), 4);
  assert.equal([...b], [0x00, 0x04, 0x01, 0x00]);
  d.regionWrite(4, 0n, new Uint8Array([1, 2, 3, 4]));
  throwsCode(() => d.regionRead(4, 0xffen, b), VfioCode.ARG, /outside region 4/);
});

test('MSI-X to eventfds: the vector fires its handler; take() drains; disable detaches and closes the eventfds', async () => {
  const { sys, d } = open();
  assert.is(d.irqCount('msix'), 65);
  assert.ok(d.irqInfo(VFIO.VFIO_PCI_MSIX_IRQ_INDEX).eventfd);
  const vecs = d.enableInterrupts('msix', 2);
  assert.is(vecs.length, 2);
  assert.equal(
    sys.model(BDF).irqFds.get(2),
    vecs.map((v) => v.fd),
  );
  const fired = new Promise<bigint>((resolve) => vecs[1]!.onFire(resolve));
  sys.fire(BDF, 2, 1);
  sys.fire(BDF, 2, 1);
  assert.is(await fired, 2n, 'two interrupts before the wake-up coalesce into one call with count 2');
  sys.fire(BDF, 2, 0);
  assert.is(vecs[0]!.take(), 1n);
  assert.is(vecs[0]!.take(), 0n);
  const w = vecs[0]!.wait(1000);
  sys.fire(BDF, 2, 0);
  assert.is(await w, 1n);
  d.disableInterrupts('msix');
  assert.not.ok(sys.model(BDF).irqFds.has(2));
  assert.ok(vecs.every((v) => v.isClosed));
});

test('one interrupt reaches every handler, including one-shot waits that remove themselves', async () => {
  const { sys, d } = open();
  const [v] = d.enableInterrupts('msix', 1);
  const seen: string[] = [];
  v!.onFire(() => seen.push('a'));
  const w1 = v!.wait(1000).then(() => seen.push('w1'));
  const w2 = v!.wait(1000).then(() => seen.push('w2'));
  v!.onFire(() => seen.push('b'));
  sys.fire(BDF, 2, 0);
  await Promise.all([w1, w2]);
  assert.equal(seen.sort(), ['a', 'b', 'w1', 'w2']);
  seen.length = 0;
  sys.fire(BDF, 2, 0);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(seen.sort(), ['a', 'b'], 'the waits fired once and left');
  d.close();
});

test('a vector that does not fire: wait() rejects with ERR_VFIO_IRQ_TIMEOUT', async () => {
  const { d } = open();
  const [v] = d.enableInterrupts('msi', 1);
  try {
    await v!.wait(20);
    assert.unreachable('should time out');
  } catch (e) {
    assert.is((e as VfioError).code, VfioCode.IRQ_TIMEOUT);
  }
  d.close();
});

test('enabling another kind replaces the routing; INTx unmask; bad counts refused', () => {
  const { sys, d } = open();
  d.enableInterrupts('msix', 1);
  d.enableInterrupts('intx', 1);
  assert.not.ok(sys.model(BDF).irqFds.has(2));
  assert.ok(sys.model(BDF).irqFds.has(0));
  d.unmaskInterrupt('intx');
  assert.is(sys.model(BDF).unmasks, 1);
  throwsCode(() => d.enableInterrupts('msix', 66), VfioCode.ARG, /offers 65/);
  throwsCode(() => d.enableInterrupts('msix', 0), VfioCode.ARG);
  throwsCode(() => d.enableInterrupts('bogus' as 'msix', 1), VfioCode.ARG, /msix, msi or intx/);
});

test('reset', () => {
  const { sys, d } = open();
  d.reset();
  assert.is(sys.model(BDF).resets, 1);
});

test('Device.fromFd works from a bare fd without group or container (a driver container)', () => {
  const { sys, d } = open();
  const bare = Device.fromFd(d.fd, { sys });
  assert.is(bare.name, `fd ${d.fd}`);
  assert.is(bare.config.read16(0), 0x1b36);
  assert.is(bare.mapBar(0).read32(8), 0x00010400);
  throwsCode(() => Device.fromFd(-1, { sys }), VfioCode.ARG);
  throwsCode(() => Device.fromFd(1.5, { sys }), VfioCode.ARG);
});

test('close disables interrupts, unmaps BARs (later accesses: ERR_VFIO_CLOSED), closes the fd; twice is safe', () => {
  const { sys, d } = open();
  const bar = d.mapBar(0);
  const [v] = d.enableInterrupts('msix', 1);
  const maps = sys.mappings.size;
  d.close();
  assert.is(sys.mappings.size, maps - 1);
  assert.ok(v!.isClosed);
  assert.not.ok(sys.model(BDF).irqFds.has(2));
  throwsCode(() => bar.read32(0), VfioCode.CLOSED);
  throwsCode(() => bar.write32(0, 1), VfioCode.CLOSED);
  throwsCode(() => d.info(), VfioCode.CLOSED);
  d.close();
  assert.is(regionOffset(7), 0x700_0000_0000n);
});

test.run();
