/**
 * The model's BAR0 as a register table: rows named by the spec's mnemonics, what no part declares
 * reads 0 and is counted, a driver's whole life touches no undeclared register, and the model's
 * own argument checks.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REG, MTA_DWORDS, RAR_ENTRIES, mtaOffset, ralOffset, rahOffset } from '../../../spec/e1000e/registers.js';
import { E1000eModel } from '../../../sim/e1000e/model.js';
import { Statistics, I } from '../../../sim/e1000e/statistics.js';
import { loopback } from '../../../sim/wire.js';
import { SimError } from '../../../sim/errors.js';
import { E1000e, type E1000eInterruptMode } from '../../../drivers/e1000e/device.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { pair, single, frame, MAC_A, MAC_B } from '../../drivers/e1000e/harness.js';

/** Registers the model leaves to the table's default (not modelled: the PHY). */
const NOT_MODELLED = new Set(['MDIC']);

test('every register of the spec has a row named by its mnemonic (the PHY aside); arrays and statistics are ranges', () => {
  const t = new E1000eModel().registers;
  for (const [name, r] of Object.entries(REG)) {
    if (NOT_MODELLED.has(name)) {
      assert.is(t.nameAt(r.offset), undefined, `${name} is not modelled`);
      continue;
    }
    if (r.offset >= REG.CRCERRS.offset && r.offset <= REG.BPTC.offset) {
      assert.is(t.nameAt(r.offset), 'statistics', name);
      continue;
    }
    if (name === 'MTA') {
      assert.is(t.nameAt(r.offset), 'MTA');
      continue;
    }
    if (name === 'RAL' || name === 'RAH') {
      assert.is(t.nameAt(r.offset), 'RAL/RAH');
      continue;
    }
    assert.is(t.nameAt(r.offset), name, `the row at 0x${r.offset.toString(16)} is ${name}`);
  }
  assert.is(t.nameAt(mtaOffset(MTA_DWORDS - 1)), 'MTA');
  assert.is(t.nameAt(rahOffset(RAR_ENTRIES - 1)), 'RAL/RAH');
  assert.is(t.nameAt(ralOffset(RAR_ENTRIES)), undefined, 'nothing after the 16th pair');
});

test('an undeclared register reads 0, ignores writes and is counted; a declared read-only one is not', () => {
  const { p, nic } = single();
  const r = p.bar(0);
  const before = nic.registers.unclaimed;
  r.write32(0x1fffc, 0xffffffff);
  assert.is(r.read32(0x1fffc), 0);
  assert.is(r.read32(REG.MDIC.offset), 0, 'the PHY interface is not modelled');
  assert.is(nic.registers.unclaimed - before, 3);
  r.write32(REG.STATUS.offset, 0);
  r.write32(REG.GPRC.offset, 5);
  assert.is(r.read32(REG.GPRC.offset), 0, 'statistics are read-only');
  assert.is(nic.registers.unclaimed - before, 3, 'declared registers are not counted');
  p.close();
});

for (const mode of ['poll', 'msix', 'intx'] as E1000eInterruptMode[]) {
  test(`the driver (${mode}) opens, exchanges frames, reads its statistics and closes without touching an undeclared register`, async () => {
    const { pa, pb, a, b } = pair();
    const A = await E1000e.open(pa, { interrupts: mode, rxDescriptors: 8, txDescriptors: 8 });
    const B = await E1000e.open(pb, { interrupts: mode, rxDescriptors: 8, txDescriptors: 8 });
    const tb = new PacketBatch(4),
      rb = new PacketBatch(4);
    for (let i = 0; i < 4; i++) {
      const x = A.txAlloc();
      A.txData(x).set(frame(MAC_B, MAC_A, 64, i));
      tb.push(x, 64);
    }
    assert.is(A.tx(tb), 4);
    assert.ok(await B.waitRx(1000));
    assert.is(B.rx(rb), 4);
    B.rxFree(rb);
    assert.is(A.stats().device.GPTC, 4);
    A.setPromiscuous(true);
    A.link();
    await A.close();
    await B.close();
    assert.is(a.registers.unclaimed, 0, 'A');
    assert.is(b.registers.unclaimed, 0, 'B');
    pa.close();
    pb.close();
  });
}

test('statistics: 32-bit counters stick at the maximum; a 64-bit pair carries into its high dword and clears with it', () => {
  const regs = new Uint32Array(0x20000 / 4);
  const s = new Statistics(regs);
  const range = s.range();
  s.count(I.MPC, 0xfffffffe);
  s.count(I.MPC, 5);
  assert.is(regs[I.MPC], 0xffffffff);
  s.count64(I.GORCL, 0xfffffff0);
  s.count64(I.GORCL, 0x20);
  const GORCH = REG.GORCH.offset >>> 2;
  assert.equal([regs[I.GORCL], regs[GORCH]], [0x10, 1]);
  assert.is(range.read!(REG.GORCL.offset), 0x10, 'low first');
  assert.is(range.read!(REG.GORCH.offset), 1);
  assert.equal([regs[I.GORCL], regs[GORCH]], [0, 0]);
});

test('link: up with CTRL.SLU and a cable, down without either', () => {
  const nic = new E1000eModel();
  assert.not.ok(nic.linkUp());
  nic.registers.write32(REG.CTRL.offset, REG.CTRL.SLU.mask);
  assert.not.ok(nic.linkUp(), 'no cable');
  const cable = loopback(nic);
  assert.ok(nic.linkUp());
  cable.unplug();
  assert.not.ok(nic.linkUp());
});

test('a MAC address that is not 6 bytes is refused with ERR_SIM_ARG', () => {
  for (const mac of [
    [1, 2, 3],
    [1, 2, 3, 4, 5, 6, 7],
    [0x52, 0x54, 0, 0, 0, 256],
  ]) {
    assert.throws(
      () => new E1000eModel({ mac }),
      (e: unknown) => e instanceof SimError && e.code === 'ERR_SIM_ARG' && e.fix !== undefined,
    );
  }
});

test.run();
