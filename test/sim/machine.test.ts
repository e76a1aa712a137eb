import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEVICE_READS, DEVICE_WRITES } from '../../drivers/contract/platform.js';
import { SimMachine } from '../../sim/machine.js';
import { CopyEngine, REG } from './toy-model.js';

const ADDR = '0000:00:03.0';

function setup(busMaster = true) {
  const machine = new SimMachine();
  const model = new CopyEngine();
  const fn = machine.attach(model, { address: ADDR });
  const p = machine.platform(ADDR, { busMaster });
  return { machine, model, fn, p };
}

function copy(p: ReturnType<typeof setup>['p'], src: bigint, dst: bigint, len: number): number {
  const bar = p.bar(0);
  bar.write64(REG.SRC_LO, src);
  bar.write64(REG.DST_LO, dst);
  bar.write32(REG.LEN, len);
  bar.write32(REG.DOORBELL, 1);
  return bar.read32(REG.STATUS);
}

test('a driver copies through the device: windows, doorbell, DMA, interrupt', async () => {
  const { p, machine } = setup();
  const src = p.dma.alloc(8192, DEVICE_READS, { label: 'src' });
  const dst = p.dma.alloc(8192, DEVICE_WRITES, { label: 'dst' });
  for (let i = 0; i < 8192; i++) src.bytes[i] = i * 7;
  const [v0] = p.irq.enable('msix', 1);
  let fired = 0;
  v0!.onFire(() => fired++);
  assert.is(copy(p, src.iova + 100n, dst.iova + 50n, 6000), 1);
  for (let i = 0; i < 6000; i++) if (dst.bytes[50 + i] !== (((100 + i) * 7) & 0xff)) assert.unreachable(`byte ${i}`);
  assert.is(fired, 0, 'handlers never run inside the register write');
  await p.clock.sleep(0);
  assert.is(fired, 1);
  assert.is(machine.iommu.faults().length, 0);
  p.close();
});

test('a device write into a window it may only read is refused, logged, and leaves memory alone', () => {
  const { p, machine } = setup();
  const src = p.dma.alloc(4096, DEVICE_READS);
  const ro = p.dma.alloc(4096, DEVICE_READS);
  ro.bytes.fill(0x11);
  src.bytes.fill(0x22);
  assert.is(copy(p, src.iova, ro.iova, 64), 2);
  assert.ok(ro.bytes.every((b) => b === 0x11));
  const f = machine.iommu.faults(ADDR);
  assert.is(f.length, 1);
  assert.is(f[0]!.reason, 'no-write');
  assert.is(f[0]!.vtdReason, 0x05);
  assert.is(f[0]!.access, 'write');
  assert.is(f[0]!.iova, Number(ro.iova));
});

test('bus master off: the device cannot DMA at all', () => {
  const { p, machine } = setup(false);
  const src = p.dma.alloc(4096, DEVICE_READS);
  const dst = p.dma.alloc(4096, DEVICE_WRITES);
  src.bytes.fill(3);
  assert.is(copy(p, src.iova, dst.iova, 16), 2);
  assert.ok(dst.bytes.every((b) => b === 0));
  assert.is(machine.iommu.faults()[0]!.reason, 'no-bus-master');
  assert.is(machine.iommu.faults()[0]!.vtdReason, null);
  p.config.write16(4, p.config.read16(4) | 4);
  assert.is(copy(p, src.iova, dst.iova, 16), 1);
  assert.is(dst.bytes[15], 3);
});

test.run();
