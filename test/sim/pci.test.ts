import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimMachine } from '../../sim/machine.js';
import { CAP_ID } from '../../spec/pci/config.js';
import { PCIE } from '../../spec/pci/capabilities.js';
import { CopyEngine, REG } from './toy-model.js';

const ADDR = '0000:00:04.0';

function setup() {
  const machine = new SimMachine();
  const model = new CopyEngine();
  const fn = machine.attach(model, { address: ADDR });
  const p = machine.platform(ADDR, { busMaster: true });
  return { machine, model, fn, p };
}

test('config header: ids, class, header type, status capability bit', () => {
  const { p } = setup();
  assert.is(p.config.read16(0x00), 0x1234);
  assert.is(p.config.read16(0x02), 0x5678);
  assert.is(p.config.read32(0x08), ((0x088000 << 8) | 2) >>> 0);
  assert.is(p.config.read8(0x0e), 0);
  assert.ok((p.config.read16(0x06) & 0x10) !== 0);
  assert.is(p.config.read8(0x3d), 1, 'INTA#');
  // Read-only fields ignore writes.
  p.config.write16(0x00, 0xffff);
  assert.is(p.config.read16(0x00), 0x1234);
});

test('capability walk finds PM, MSI-X and PCIe (with FLR) and ends', () => {
  const { p } = setup();
  const found: [number, number][] = [];
  let at = p.config.read8(0x34);
  for (let guard = 0; at !== 0 && guard < 48; guard++) {
    found.push([p.config.read8(at), at]);
    at = p.config.read8(at + 1);
  }
  assert.equal(
    found.map(([id]) => id),
    [CAP_ID.PM, CAP_ID.MSIX, CAP_ID.PCIE],
  );
  const msix = found[1]![1];
  assert.is(p.config.read16(msix + 2) & 0x7ff, 3, 'table size N-1');
  assert.is(p.config.read32(msix + 4), 0x2000 | 0, 'table offset / BIR 0');
  assert.is(p.config.read32(msix + 8), 0x3000 | 0);
  const pcie = found[2]![1];
  assert.ok((p.config.read32(pcie + 4) & PCIE.DEVCAP.FLR.mask) !== 0);
});

test('BAR sizing: write all ones, read back the size mask (64-bit memory BAR)', () => {
  const { p } = setup();
  const orig = p.config.read32(0x10);
  assert.is(orig & 0x7, 0b100, 'memory, 64-bit');
  p.config.write32(0x10, 0xffffffff);
  assert.is(p.config.read32(0x10), ((~(0x4000 - 1) & ~0xf) | 0b100) >>> 0);
  p.config.write32(0x10, orig);
  assert.is(p.config.read32(0x10), orig);
  assert.is(p.bar(0).size, 0x4000);
});

test('MSI-X: masked vectors go pending, unmasking delivers; function mask too', async () => {
  const { p, fn } = setup();
  const vs = p.irq.enable('msix', 2);
  const fired = [0, 0];
  vs[0]!.onFire(() => fired[0]!++);
  vs[1]!.onFire(() => fired[1]!++);
  const bar = p.bar(0);
  const vc = (v: number) => 0x2000 + v * 16 + 12;
  // Mask vector 1 through its Vector Control, raise it: pending bit in the PBA, nothing delivered.
  bar.write32(vc(1), 1);
  assert.is(fn.interrupt(1), 'pending');
  assert.is(bar.read32(0x3000), 0b10);
  await p.clock.sleep(0);
  assert.equal(fired, [0, 0]);
  bar.write32(0x3000, 0); // the PBA is read-only
  assert.is(bar.read32(0x3000), 0b10);
  bar.write32(vc(1), 0);
  assert.is(bar.read32(0x3000), 0, 'unmask delivered and cleared the pending bit');
  await p.clock.sleep(0);
  assert.equal(fired, [0, 1]);
  // Function mask holds every vector.
  const mc = 0x50 + 2;
  p.config.write16(mc, p.config.read16(mc) | 0x4000);
  assert.is(fn.interrupt(0), 'pending');
  assert.is(fn.interrupt(0), 'pending');
  p.config.write16(mc, p.config.read16(mc) & ~0x4000);
  await p.clock.sleep(0);
  assert.equal(fired, [1, 1], 'two raises while masked are one pending message');
  // Coalescing: several deliveries before the handler runs are one call.
  fn.interrupt(0);
  fn.interrupt(0);
  fn.interrupt(0);
  await p.clock.sleep(0);
  assert.equal(fired, [2, 1]);
  // Table entries hold what the platform programmed.
  assert.is(bar.read32(0x2000), 0xfee00000);
  assert.is(bar.read32(0x2000 + 16 + 8), 1);
  p.irq.disable();
  assert.is(fn.interrupt(0), 'suppressed', 'MSI-X off and nothing routed: INTx asserted but not delivered');
});

test('INTx: delivered when routed, suppressed by Interrupt Disable; status bit set', async () => {
  const { p, fn } = setup();
  assert.is(p.irq.count('intx'), 1);
  assert.is(p.irq.count('msi'), 0);
  const [v] = p.irq.enable('intx', 1);
  let n = 0;
  v!.onFire(() => n++);
  assert.is(fn.interrupt(0), 'intx');
  assert.ok((p.config.read16(0x06) & 0x8) !== 0);
  fn.lowerIntx();
  assert.is(p.config.read16(0x06) & 0x8, 0);
  await p.clock.sleep(0);
  assert.is(n, 1);
  p.config.write16(0x04, p.config.read16(0x04) | 0x400);
  assert.is(fn.interrupt(0), 'suppressed');
  assert.throws(
    () => p.irq.enable('msi', 1),
    (e: { code: string }) => e.code === 'ERR_SIM_IRQ',
  );
  assert.throws(
    () => p.irq.enable('msix', 5),
    (e: { code: string }) => e.code === 'ERR_SIM_IRQ',
  );
});

test('FLR through PCIe Device Control: model reset, BME and MSI-X enable cleared, vectors masked', () => {
  const { p, fn, model } = setup();
  p.irq.enable('msix', 1);
  p.bar(0).write32(REG.LEN, 99);
  const devctl = 0x60 + 8;
  p.config.write16(devctl, p.config.read16(devctl) | 0x8000);
  assert.is(model.resets, 1);
  assert.is(fn.resets, 1);
  assert.is(p.config.read16(devctl) & 0x8000, 0, 'Initiate FLR reads 0');
  assert.is(p.config.read16(0x04) & 0x4, 0, 'bus mastering off');
  assert.is(p.config.read16(0x04) & 0x2, 0x2, 'memory space kept (VFIO restores it)');
  assert.is(p.config.read16(0x52) & 0x8000, 0, 'MSI-X disabled');
  assert.is(p.bar(0).read32(0x2000 + 12) & 1, 1, 'vector masked');
  assert.is(p.bar(0).read32(REG.LEN), 0);
  p.reset();
  assert.is(model.resets, 2);
});

test('memory space disabled: BAR reads are all ones, writes dropped', () => {
  const { p } = setup();
  p.config.write16(0x04, p.config.read16(0x04) & ~0x2);
  assert.is(p.bar(0).read32(REG.LEN), 0xffffffff);
  p.bar(0).write32(REG.LEN, 5);
  p.config.write16(0x04, p.config.read16(0x04) | 0x2);
  assert.is(p.bar(0).read32(REG.LEN), 0);
});

test('hang switch: doorbells do nothing until resume, then the work runs once', () => {
  const { p, fn, model } = setup();
  fn.hang();
  p.bar(0).write32(REG.DOORBELL, 1);
  p.bar(0).write32(REG.DOORBELL, 1);
  assert.is(model.count, 0);
  assert.ok(p.bar(0).read32(REG.LEN) === 0, 'registers still answer');
  assert.is(p.fn.hung, true);
  fn.resume();
  assert.is(model.count, 1);
});

test('deferred work runs after the doorbell write, coalesced', async () => {
  const machine = new SimMachine();
  const model = new CopyEngine();
  machine.attach(model, { address: ADDR, workMode: 'deferred' });
  const p = machine.platform(ADDR, { busMaster: true });
  p.bar(0).write32(REG.DOORBELL, 1);
  p.bar(0).write32(REG.DOORBELL, 1);
  assert.is(model.count, 0);
  await p.clock.sleep(0);
  assert.is(model.count, 1);
  // FLR drops a scheduled run.
  p.bar(0).write32(REG.DOORBELL, 1);
  p.reset();
  await p.clock.sleep(0);
  assert.is(model.count, 0, 'reset cleared the counter and the run never happened');
});

test('a model that throws in its work: a device fault (event, count, DEVSTA.FED), the function hung, nothing thrown at the doorbell', () => {
  const { p, fn, model, machine } = setup();
  const faults: { source: string; message: string }[] = [];
  fn.on('fault', (f: { source: string; message: string }) => faults.push(f));
  (model as unknown as { process: () => void }).process = () => {
    throw new Error('model bug');
  };
  fn.setWorkMode('sync');
  p.bar(0).write32(REG.DOORBELL, 1);
  assert.equal(
    faults.map((f) => `${f.source}: ${f.message}`),
    ['work: model bug'],
  );
  assert.is(fn.faultCount, 1);
  assert.ok(fn.fatal);
  assert.ok((p.config.read16(0x60 + PCIE.DEVSTA.offset) & PCIE.DEVSTA.FED.mask) !== 0, 'PCIe Device Status: Fatal Error Detected');
  assert.ok(fn.hung, 'a model without fail() is hung');
  const d = machine.status().devices[0]!;
  assert.equal([d.faults, d.fatal, d.lastFault], [1, true, 'work: model bug'], 'the machine status shows it');
  assert.equal([p.status().deviceFaults, p.status().fatal], [1, true]);
  p.reset();
  assert.not.ok(fn.fatal, 'FLR clears it');
  assert.not.ok(fn.hung);
});

test('deferred work that throws, a register handler that throws: no exception escapes to the process or the caller', async () => {
  const { p, fn, model } = setup();
  const escaped: unknown[] = [];
  const grab = (e: unknown): void => {
    escaped.push(e);
  };
  process.on('uncaughtException', grab);
  fn.setWorkMode('deferred');
  try {
    (model as unknown as { process: () => void }).process = () => {
      throw new Error('deferred model bug');
    };
    p.bar(0).write32(REG.DOORBELL, 1);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off('uncaughtException', grab);
  }
  assert.equal(escaped, []);
  assert.is(fn.faultCount, 1);
  assert.is(fn.deviceFaults[0]!.source, 'work');
  // A register handler that throws: the access completes (a read returns all ones), the fault is recorded.
  const bar = fn.model.bars[0]!.handler as { read32: (o: number) => number };
  bar.read32 = () => {
    throw new Error('register bug');
  };
  assert.is(p.bar(0).read32(REG.DOORBELL), 0xffffffff);
  assert.is(fn.deviceFaults[1]!.source, 'register');
});

class MsiCopyEngine extends CopyEngine {
  readonly msi = { vectors: 4 };
}

test('MSI: capability in the list, power-of-two grant, per-vector mask and pending, FLR', async () => {
  const machine = new SimMachine();
  const fn = machine.attach(new MsiCopyEngine(), { address: ADDR });
  const p = machine.platform(ADDR, { busMaster: true });
  const ids: number[] = [];
  for (let at = p.config.read8(0x34); at !== 0; at = p.config.read8(at + 1)) ids.push(p.config.read8(at));
  assert.equal(ids, [CAP_ID.PM, CAP_ID.MSIX, CAP_ID.PCIE, 0x05]);
  assert.is(p.irq.count('msi'), 4);
  assert.is((p.config.read16(0xa2) >> 1) & 7, 2, 'Multiple Message Capable: 4 vectors');
  assert.throws(
    () => p.irq.enable('msi', 5),
    (e: { code: string }) => e.code === 'ERR_SIM_IRQ',
  );
  const vs = p.irq.enable('msi', 3);
  assert.is((p.config.read16(0xa2) >> 4) & 7, 2, 'granted 4 (the power of two covering 3)');
  assert.is(p.config.read32(0xa4), 0xfee00000);
  const fired = [0, 0, 0];
  vs.forEach((v, i) => v.onFire(() => fired[i]!++));
  assert.is(fn.interrupt(2), 'delivered');
  await p.clock.sleep(0);
  assert.equal(fired, [0, 0, 1]);
  // Mask vector 1: pending; unmask delivers.
  p.config.write32(0xb0, 0b10);
  assert.is(fn.interrupt(1), 'pending');
  assert.is(p.config.read32(0xb4), 0b10);
  p.config.write32(0xb4, 0); // Pending Bits are read-only
  assert.is(p.config.read32(0xb4), 0b10);
  p.config.write32(0xb0, 0);
  assert.is(p.config.read32(0xb4), 0);
  await p.clock.sleep(0);
  assert.equal(fired, [0, 1, 1]);
  assert.is(fn.interrupt(5), 'delivered', 'vector 5 folds into the 4 granted: 5 & 3 = 1');
  await p.clock.sleep(0);
  assert.equal(fired, [0, 2, 1]);
  // MSI-X, when enabled, takes precedence.
  p.irq.enable('msix', 1);
  assert.is(p.config.read16(0xa2) & 1, 0, 'enabling MSI-X turned MSI off');
  p.irq.disable();
  p.irq.enable('msi', 1);
  p.reset();
  assert.is(p.config.read16(0xa2) & 1, 0, 'FLR disables MSI');
  assert.is(p.config.read32(0xa4), 0);
  assert.is(fn.msi!.enabled, false);
});

test.run();
