/**
 * Every E1000eError code a user can meet, provoked on the simulator: the class, the code, and a
 * fix in the message; a failed open leaves nothing mapped.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { E1000e } from '../../../drivers/e1000e/device.js';
import { E1000eError, type E1000eCode } from '../../../drivers/e1000e/errors.js';
import { RxRing } from '../../../drivers/e1000e/rx-ring.js';
import { BufferPool } from '../../../drivers/kit/pool.js';
import { DEVICE_READS_WRITES, DEVICE_WRITES, type Platform, type RegisterSpace } from '../../../drivers/contract/platform.js';
import { REG, ralOffset, rahOffset } from '../../../spec/e1000e/registers.js';
import { DESC_SIZE } from '../../../spec/e1000e/descriptors.js';
import { single, ADDR_A } from './harness.js';

/** A platform whose BAR0 reads pass through `lies` (by offset), and whose interrupt kinds can be taken away. */
function lying(p: Platform, lies: Record<number, (v: number) => number>, noIrq = false): Platform {
  const bar = p.bar(0);
  const fake: RegisterSpace = {
    size: bar.size,
    read32: (o) => {
      const f = lies[o];
      return f ? f(bar.read32(o)) >>> 0 : bar.read32(o);
    },
    write32: (o, v) => bar.write32(o, v),
    read64: (o) => bar.read64(o),
    write64: (o, v) => bar.write64(o, v),
  };
  const irq = noIrq ? { count: () => 0, enable: () => [], disable: () => {} } : p.irq;
  return { name: p.name, config: p.config, dma: p.dma, irq, clock: p.clock, reset: () => p.reset(), close: () => p.close(), bar: () => fake };
}

async function openFails(p: Platform, options: Parameters<typeof E1000e.open>[1], code: E1000eCode, pattern: RegExp): Promise<void> {
  try {
    const nic = await E1000e.open(p, options);
    await nic.close();
  } catch (e) {
    assert.instance(e, E1000eError);
    assert.is((e as E1000eError).code, code);
    assert.match((e as Error).message, pattern);
    assert.ok((e as E1000eError).fix, `${code} says how to fix it`);
    return;
  }
  assert.unreachable(`open should fail with ${code}`);
}

test('ERR_E1000E_OPTION: too few RX buffers, an unknown interrupt mode, a zero bound', async () => {
  const { p } = single();
  await openFails(p, { rxDescriptors: 64, rxBuffers: 64 }, 'ERR_E1000E_OPTION', /rxBuffers = 64 must be an integer of at least 65/);
  await openFails(p, { interrupts: 'msi' as never }, 'ERR_E1000E_OPTION', /interrupts = msi/);
  await openFails(p, { resetTimeoutMs: 0 }, 'ERR_E1000E_OPTION', /resetTimeoutMs = 0/);
  p.close();
});

test('ERR_E1000E_IRQ: MSI-X or INTx asked of a function that offers neither; the failed open unmaps everything', async () => {
  const { p, machine } = single();
  await openFails(lying(p, {}, true), { interrupts: 'msix' }, 'ERR_E1000E_IRQ', /no MSI-X vector/);
  await openFails(lying(p, {}, true), { interrupts: 'intx' }, 'ERR_E1000E_IRQ', /no interrupt pin/);
  assert.is(machine.function(ADDR_A).domain.mappings, 0);
  p.close();
});

test('ERR_E1000E_NO_MAC and ERR_E1000E_EEPROM_TIMEOUT: no address from the EEPROM, and RAH0.AV clear', async () => {
  const noAv = { [rahOffset(0)]: (v: number) => v & ~REG.RAH.AV.mask };
  const { p } = single();
  // The EEPROM answers, but its words read as erased (FFFFh).
  const blank = { ...noAv, [REG.EERD.offset]: (v: number) => v | REG.EERD.DATA.mask };
  await openFails(lying(p, blank), {}, 'ERR_E1000E_NO_MAC', /blank/);
  // The EEPROM never answers.
  const silent = { ...noAv, [REG.EERD.offset]: (v: number) => v & ~REG.EERD.DONE.mask };
  await openFails(lying(p, silent), { eepromTimeoutMs: 5 }, 'ERR_E1000E_EEPROM_TIMEOUT', /did not answer/);
  // A blank EEPROM with a valid RAH0: the address comes from RAL0/RAH0.
  const nic = await E1000e.open(lying(p, { [REG.EERD.offset]: (v: number) => v | REG.EERD.DATA.mask }));
  assert.equal([...nic.mac], [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
  await nic.close();
  p.close();
});

test('an EEPROM word read as all ones is no answer: the address comes from RAL0/RAH0, not with FFFFh in it', async () => {
  const { p } = single();
  // The second EERD read of the address comes back all ones (a failed read; a campaign's register-read error).
  let reads = 0;
  const once = { [REG.EERD.offset]: (v: number) => ((v & REG.EERD.DONE.mask) !== 0 && ++reads === 2 ? 0xffffffff : v) };
  const nic = await E1000e.open(lying(p, once));
  assert.equal([...nic.mac], [0x52, 0x54, 0x00, 0x12, 0x34, 0x56], "the device's own address");
  await nic.close();
  // The EEPROM and the address registers all ones: no address (not ff:ff:ff:ff:ff:ff).
  const ones = Object.fromEntries([REG.EERD.offset, rahOffset(0), ralOffset(0)].map((o) => [o, () => 0xffffffff]));
  await openFails(lying(p, ones), { eepromTimeoutMs: 5 }, 'ERR_E1000E_NO_MAC', /RAL0\/RAH0 read all ones/);
  p.close();
});

test('ERR_E1000E_FRAME: send() of fewer than 14 or more than 1514 bytes', async () => {
  const { p } = single();
  const nic = await E1000e.open(p);
  for (const n of [13, 1515]) {
    assert.throws(
      () => nic.send(new Uint8Array(n)),
      (e: unknown) => e instanceof E1000eError && e.code === 'ERR_E1000E_FRAME' && e.fix !== undefined,
    );
  }
  assert.ok(nic.send(new Uint8Array(14)), 'a bare header is a frame');
  await nic.close();
  p.close();
});

test('ERR_E1000E_POOL: an RX ring started over a pool with fewer free buffers than descriptors', () => {
  const { p } = single();
  const ring = p.dma.alloc(4096, DEVICE_READS_WRITES);
  const bufs = p.dma.alloc(8 * 2048, DEVICE_WRITES);
  const pool = new BufferPool(bufs, 2048);
  const rx = new RxRing(p.bar(0), ring, 4096 / DESC_SIZE, pool);
  assert.throws(
    () => rx.start(),
    (e: unknown) => e instanceof E1000eError && e.code === 'ERR_E1000E_POOL' && /ran out of buffers after 8 of the ring's 256 descriptors/.test(e.message),
  );
  p.close();
});

test.run();
