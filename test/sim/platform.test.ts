import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEVICE_READS, DEVICE_WRITES } from '../../drivers/contract/platform.js';
import { defaultSys } from 'linux-sys';
import { MemfdMemoryProvider } from '../../dma/memfd.js';
import type { Window } from '../../dma/window.js';
import { SimMachine } from '../../sim/machine.js';
import { CopyEngine, REG } from './toy-model.js';

const ADDR = '0000:00:06.0';
const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'no error';
};

function setup(options: { passthrough?: boolean } = {}) {
  const machine = new SimMachine(options);
  const model = new CopyEngine();
  const fn = machine.attach(model, { address: ADDR });
  const p = machine.platform(ADDR, { busMaster: true });
  return { machine, model, fn, p };
}

test('BAR accesses: aligned, in bounds, integers only', () => {
  const { p } = setup();
  const bar = p.bar(0);
  assert.is(
    code(() => bar.read32(0x4000)),
    'ERR_SIM_BAR',
  );
  assert.is(
    code(() => bar.read32(0x3ffd)),
    'ERR_SIM_BAR',
  );
  assert.is(
    code(() => bar.read32(2)),
    'ERR_SIM_BAR',
  );
  assert.is(
    code(() => bar.read32(-4)),
    'ERR_SIM_BAR',
  );
  assert.is(
    code(() => bar.read32(4.5)),
    'ERR_SIM_BAR',
  );
  assert.is(
    code(() => bar.write32(0x4000, 0)),
    'ERR_SIM_BAR',
  );
  assert.is(
    code(() => bar.read64(0x3ffc)),
    'ERR_SIM_BAR',
  );
  assert.is(
    code(() => bar.write64(0x3ffc, 0n)),
    'ERR_SIM_BAR',
  );
  assert.is(bar.read32(0x3ffc), 0);
  assert.is(
    code(() => p.bar(1)),
    'ERR_SIM_BAR',
    'the upper half of a 64-bit BAR is not a BAR',
  );
  assert.is(
    code(() => p.bar(6)),
    'ERR_SIM_BAR',
  );
});

test('64-bit registers: low dword first, then high', () => {
  const { p, model } = setup();
  const order: string[] = [];
  const h = model.bars[0]!.handler;
  const orig = h.write32.bind(h);
  h.write32 = (o: number, v: number) => {
    order.push(`${o}:${v.toString(16)}`);
    orig(o, v);
  };
  p.bar(0).write64(REG.SRC_LO, 0x1_2345_6789_abcdn);
  assert.equal(order, ['0:6789abcd', '4:12345']);
  assert.is(p.bar(0).read64(REG.SRC_LO), 0x1_2345_6789_abcdn);
});

test('config accesses: natural alignment inside 4 KiB', () => {
  const { p } = setup();
  assert.is(
    code(() => p.config.read16(1)),
    'ERR_SIM_CONFIG',
  );
  assert.is(
    code(() => p.config.read32(4094)),
    'ERR_SIM_CONFIG',
  );
  assert.is(
    code(() => p.config.read8(4096)),
    'ERR_SIM_CONFIG',
  );
  assert.is(
    code(() => p.config.write32(-4, 0)),
    'ERR_SIM_CONFIG',
  );
  assert.is(p.config.read8(4095), 0);
});

test('RX into a buffer whose window was revoked: the device faults, the memory is untouched', () => {
  const { p, machine } = setup();
  const src = p.dma.alloc(4096, DEVICE_READS);
  const rx = p.dma.alloc(4096, DEVICE_WRITES, { label: 'rx buffer' });
  src.bytes.fill(0x77);
  p.dma.revoke(rx);
  const bar = p.bar(0);
  bar.write64(REG.SRC_LO, src.iova);
  bar.write64(REG.DST_LO, rx.iova);
  bar.write32(REG.LEN, 1500);
  bar.write32(REG.DOORBELL, 1);
  assert.is(bar.read32(REG.STATUS), 2, 'the device reports a transfer error');
  assert.ok(rx.bytes.every((b) => b === 0));
  const f = machine.iommu.faults(ADDR);
  assert.is(f.length, 1);
  assert.is(f[0]!.reason, 'not-present');
  assert.is(f[0]!.vtdReason, 0x05);
  assert.equal(p.status(), {
    name: 'sim:copy@0000:00:06.0',
    confined: true,
    warning: undefined,
    busMaster: true,
    hung: false,
    windows: 2,
    mappings: 1,
    faults: 1,
    deviceFaults: 0,
    fatal: false,
  });
  p.dma.free(rx);
});

test('close: interrupts off, bus mastering off, windows freed, platform unusable, reopen works', () => {
  const { p, machine, fn } = setup();
  p.dma.alloc(8192, DEVICE_READS);
  p.irq.enable('msix', 2);
  p.close();
  assert.is(fn.busMasterEnabled, false);
  assert.is(fn.domain.mappedPages, 0);
  assert.is(machine.memory.list().length, 0, 'window memory left the physical map');
  assert.is(fn.msix!.enabled, false);
  assert.is(
    code(() => p.bar(0)),
    'ERR_SIM_STATE',
  );
  assert.is(
    code(() => p.config.read16(0)),
    'ERR_SIM_STATE',
  );
  p.close();
  const again = machine.platform(ADDR);
  assert.is(again.fn.busMasterEnabled, false);
  assert.is(
    code(() => machine.platform(ADDR)),
    'ERR_SIM_STATE',
  );
});

test('machine: addresses validated, status shows devices and confinement', () => {
  const machine = new SimMachine();
  assert.is(
    code(() => machine.attach(new CopyEngine(), { address: '00:01.0' })),
    'ERR_SIM_ARG',
  );
  machine.attach(new CopyEngine(), { address: '0000:00:01.0' });
  assert.is(
    code(() => machine.attach(new CopyEngine(), { address: '0000:00:01.0' })),
    'ERR_SIM_ARG',
  );
  assert.is(
    code(() => machine.platform('0000:00:02.0')),
    'ERR_SIM_ARG',
  );
  const s = machine.status();
  assert.is(s.iommu.confined, true);
  assert.equal(s.devices, [
    { address: '0000:00:01.0', model: 'copy', busMaster: false, hung: false, open: false, faults: 0, fatal: false, lastFault: null, msixDropped: 0 },
  ]);
});

test('passthrough machine: windows get physical addresses and the status says unconfined', () => {
  const { p, machine } = setup({ passthrough: true });
  const w = p.dma.alloc(4096, DEVICE_WRITES);
  const region = machine.memory.regionOf(w.bytes) ?? machine.memory.list().find((r) => r.bytes.buffer === w.bytes.buffer)!;
  assert.is(w.iova, BigInt(region.base));
  assert.is(machine.status().iommu.confined, false);
  assert.match(machine.status().iommu.warning!, /NOT confined/);
  assert.is(p.confined, false);
  assert.match(p.status().warning!, /NOT confined/);
  // Even a device-read-only window is writable by the device: nothing is checked.
  const ro = p.dma.alloc(4096, DEVICE_READS);
  assert.ok(p.fn.dma.writeU32(Number(ro.iova), 1));
  p.close();
});

test('different devices have different domains', () => {
  const machine = new SimMachine();
  machine.attach(new CopyEngine(), { address: '0000:00:01.0' });
  const b = machine.attach(new CopyEngine(), { address: '0000:00:02.0' });
  const pa = machine.platform('0000:00:01.0', { busMaster: true });
  machine.platform('0000:00:02.0', { busMaster: true });
  const w = pa.dma.alloc(4096, DEVICE_READS);
  assert.is(b.dma.readU32(Number(w.iova)), -1, "device B cannot read device A's window");
  assert.is(machine.iommu.faults('0000:00:02.0')[0]!.reason, 'not-present');
});

test('the simulator runs on memfd memory too: windows shareable by fd, DMA into them works', () => {
  const machine = new SimMachine({ memory: new MemfdMemoryProvider({ sys: defaultSys(), hugePages: 'never' }) });
  machine.attach(new CopyEngine(), { address: ADDR });
  const p = machine.platform(ADDR, { busMaster: true });
  const src = p.dma.alloc(4096, DEVICE_READS);
  const dst = p.dma.alloc(4096, DEVICE_WRITES) as Window;
  assert.ok(dst.memory.fd >= 0);
  src.bytes.fill(0x42);
  const bar = p.bar(0);
  bar.write64(REG.SRC_LO, src.iova);
  bar.write64(REG.DST_LO, dst.iova);
  bar.write32(REG.LEN, 4096);
  bar.write32(REG.DOORBELL, 1);
  assert.is(bar.read32(REG.STATUS), 1);
  const other = (dst.memory as unknown as { mapAgain(): { bytes: Uint8Array; unmap(): void } }).mapAgain();
  assert.is(other.bytes[4095], 0x42, 'another mapping of the fd sees what the device wrote');
  other.unmap();
  p.close();
});

test.run();
