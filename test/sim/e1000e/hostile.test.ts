/**
 * The 82574L model against a hostile driver's register values: an IVAR entry naming an MSI-X
 * vector the function does not have (vector 7 of 5), with MSI-X enabled through config space and
 * a TX kick, in deferred mode as the manager runs it; an exception inside the model (the device
 * stops, counts it, and shows it); a 64K-descriptor TX ring processed in bounded steps.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REG, MSIX_LAYOUT } from '../../../spec/e1000e/registers.js';
import { setField } from '../../../spec/field.js';
import { MSIX, PCIE } from '../../../spec/pci/capabilities.js';
import { setBusMaster } from '../../../spec/pci/config.js';
import { CAP_MSIX_OFFSET, CAP_PCIE_OFFSET } from '../../../sim/pci.js';
import { TX_BUDGET } from '../../../sim/e1000e/tx.js';
import { DEVICE_READS, DEVICE_READS_WRITES } from '../../../drivers/contract/platform.js';
import { single, ADDR_A } from '../../drivers/e1000e/harness.js';
import { writeTxd, TXD_CMD } from '../../drivers/e1000e/crafted.js';

const { IVAR, ICR, TCTL, STATUS } = REG;
const DEVSTA = CAP_PCIE_OFFSET + PCIE.DEVSTA.offset;
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Run `body`, collecting what escapes to the process as an uncaught exception meanwhile. */
async function catchingUncaught(body: () => Promise<void>): Promise<unknown[]> {
  const escaped: unknown[] = [];
  const grab = (e: unknown): void => {
    escaped.push(e);
  };
  process.on('uncaughtException', grab);
  try {
    await body();
  } finally {
    process.off('uncaughtException', grab);
  }
  return escaped;
}

test('MSI-X enabled in config space, IVAR TXQ0 -> vector 7 of 5, a TX kick (deferred): the message is dropped and counted, nothing escapes', async () => {
  const { p, nic, machine } = single('loopback', 'deferred');
  const fn = machine.function(ADDR_A);
  const r = p.bar(0);
  setBusMaster(p.config, true);
  let faults = 0;
  fn.on('fault', () => faults++);
  const ring = p.dma.alloc(4096, DEVICE_READS_WRITES);
  r.write32(REG.TDBAL.offset, Number(ring.iova));
  r.write32(REG.TDLEN.offset, 4096);
  const escaped = await catchingUncaught(async () => {
    // What a driver can do on its own: Message Control's MSI-X Enable, without the platform.
    p.config.write16(CAP_MSIX_OFFSET + MSIX.MC.offset, MSIX.MC.ENABLE.mask);
    r.write32(IVAR.offset, setField(IVAR.TXQ0_VALID.mask, IVAR.TXQ0_VECTOR, 7));
    r.write32(REG.IMS.offset, ICR.TXQ0.mask);
    r.write32(TCTL.offset, TCTL.EN.mask);
    r.write32(REG.TDT.offset, 0);
    await turn();
    await turn();
  });
  assert.equal(escaped, [], 'no exception reached the process');
  assert.ok(nic.counters.irqBadVector >= 1, 'the message for vector 7 was dropped and counted');
  assert.is(faults, 0, 'a dropped message is not a device fault');
  assert.is(p.config.read16(DEVSTA) & PCIE.DEVSTA.FED.mask, 0);
  // A vector the function has still works.
  let fired = 0;
  p.irq.enable('msix', MSIX_LAYOUT.VECTORS)[4]!.onFire(() => fired++);
  r.write32(IVAR.offset, setField(IVAR.TXQ0_VALID.mask, IVAR.TXQ0_VECTOR, 4));
  r.write32(REG.IMS.offset, ICR.TXQ0.mask);
  r.write32(REG.TDT.offset, 0);
  await turn();
  await turn();
  assert.ok(fired >= 1, 'vector 4 fired');
  p.close();
});

test('an exception inside the model: the device stops, counts it, shows it (DEVSTA.FED, GIO master off), and CTRL.RST brings it back', async () => {
  const { p, nic, machine } = single('loopback', 'deferred');
  const fn = machine.function(ADDR_A);
  const r = p.bar(0);
  setBusMaster(p.config, true);
  const seen: string[] = [];
  fn.on('fault', (f: { source: string; message: string }) => seen.push(`${f.source}: ${f.message}`));
  const ring = p.dma.alloc(4096, DEVICE_READS_WRITES);
  const buf = p.dma.alloc(4096, DEVICE_READS);
  r.write32(REG.TDBAL.offset, Number(ring.iova));
  r.write32(REG.TDLEN.offset, 4096);
  r.write32(TCTL.offset, TCTL.EN.mask | TCTL.PSP.mask);
  r.write32(REG.CTRL.offset, r.read32(REG.CTRL.offset) | REG.CTRL.SLU.mask);
  for (let i = 0; i < 4; i++) writeTxd(ring.view, i, buf.iova, 60, TXD_CMD.EOP.mask | TXD_CMD.RS.mask);
  // A model bug reached by driver input: the wire throws while a frame goes out.
  const wire = (nic as unknown as { core: { wire: unknown } }).core;
  const saved = wire.wire;
  wire.wire = () => {
    throw new Error('model bug on transmit');
  };
  const escaped = await catchingUncaught(async () => {
    r.write32(REG.TDT.offset, 1);
    await turn();
    await turn();
  });
  assert.equal(escaped, []);
  assert.equal(seen, ['work: model bug on transmit']);
  assert.is(fn.faultCount, 1);
  assert.is(nic.counters.deviceFaults, 1);
  assert.ok(nic.fatal !== null, 'the model is in its fatal state');
  assert.ok((p.config.read16(DEVSTA) & PCIE.DEVSTA.FED.mask) !== 0, 'PCIe Device Status: Fatal Error Detected');
  assert.is(r.read32(STATUS.offset) & STATUS.GIO_MASTER_ENABLE.mask, 0, 'STATUS.GIO_MASTER_ENABLE reads 0');
  // Stopped: more descriptors are not processed.
  wire.wire = saved;
  const sent = nic.counters.txFrames;
  r.write32(REG.TDT.offset, 3);
  await turn();
  assert.is(nic.counters.txFrames, sent, 'no transmit while stopped');
  // DEVSTA.FED is RW1C; CTRL.RST restarts the MAC.
  p.config.write16(DEVSTA, PCIE.DEVSTA.FED.mask);
  assert.is(p.config.read16(DEVSTA) & PCIE.DEVSTA.FED.mask, 0);
  r.write32(REG.CTRL.offset, REG.CTRL.RST.mask | REG.CTRL.SLU.mask);
  assert.is(nic.fatal, null);
  assert.ok(r.read32(STATUS.offset) & STATUS.GIO_MASTER_ENABLE.mask);
  p.close();
});

test(`a 64K-descriptor TX ring all submitted: at most ${TX_BUDGET} descriptors per deferred step, all sent in the end`, async () => {
  const { p, nic } = single('none', 'deferred');
  const r = p.bar(0);
  setBusMaster(p.config, true);
  // The largest ring TDLEN can describe (20 bits, 128-byte units): 65528 descriptors.
  const n = 65528;
  const ring = p.dma.alloc(n * 16, DEVICE_READS_WRITES);
  const buf = p.dma.alloc(4096, DEVICE_READS);
  for (let i = 0; i < n; i++) writeTxd(ring.view, i, buf.iova, 60, TXD_CMD.EOP.mask);
  r.write32(REG.CTRL.offset, r.read32(REG.CTRL.offset) | REG.CTRL.SLU.mask);
  r.write32(REG.TDBAL.offset, Number(ring.iova));
  r.write32(REG.TDLEN.offset, n * 16);
  r.write32(TCTL.offset, TCTL.EN.mask);
  r.write32(REG.TDT.offset, n - 1);
  await turn();
  const first = r.read32(REG.TDH.offset);
  assert.ok(first > 0 && first <= TX_BUDGET, `TDH after one step: ${first}`);
  let steps = 1;
  while (r.read32(REG.TDH.offset) !== n - 1 && steps < 1000) {
    await turn();
    steps++;
  }
  assert.is(r.read32(REG.TDH.offset), n - 1, 'the whole ring went out');
  assert.ok(steps >= Math.floor((n - 1) / TX_BUDGET), `${steps} steps`);
  assert.ok(nic.counters.txYields > 0);
  p.close();
});

test.run();
