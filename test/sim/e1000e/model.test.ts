/**
 * The 82574L model register by register, through a SimPlatform's BAR (as a driver would see it),
 * and the data-path corners the driver suite does not reach: CRC stored when SECRC is clear,
 * frames spanning buffers, no descriptors, a blocked TX read, IVAR routing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crc32 } from 'node:zlib';
import { REG, mtaOffset, ralOffset, rahOffset, statusSpeed } from '../../../spec/e1000e/registers.js';
import { getField, setField } from '../../../spec/field.js';
import { E1000e } from '../../../drivers/e1000e/device.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { pair, single, frame, MAC_A, MAC_B, ADDR_A } from '../../drivers/e1000e/harness.js';
import { loopback, endpoint } from '../../../sim/wire.js';
import { writeTxd, txdSta, TXD_CMD } from '../../drivers/e1000e/crafted.js';
import { TXD } from '../../../spec/e1000e/descriptors.js';

const { CTRL, STATUS, EERD, ICR, IVAR, RCTL, RAH } = REG;

test('PCI identity: 8086:10d3, Ethernet class, BAR0 128 KiB, MSI-X with 5 vectors', () => {
  const { p } = single();
  assert.is(p.config.read16(0), 0x8086);
  assert.is(p.config.read16(2), 0x10d3);
  assert.is(p.config.read32(8) >>> 8, 0x020000);
  assert.is(p.bar(0).size, 0x20000);
  assert.is(p.irq.count('msix'), 5);
  p.close();
});

test('CTRL.RST self-clears and restores reset values; RA0 comes back from the EEPROM; the MTA is kept', () => {
  const { p } = single();
  const r = p.bar(0);
  r.write32(REG.RCTL.offset, RCTL.EN.mask | RCTL.UPE.mask);
  r.write32(ralOffset(0), 0x11223344);
  r.write32(mtaOffset(2), 0xabcd);
  r.write32(REG.CTRL.offset, r.read32(REG.CTRL.offset) | CTRL.RST.mask);
  assert.is(r.read32(REG.CTRL.offset) & CTRL.RST.mask, 0, 'RST reads back clear');
  assert.is(r.read32(REG.RCTL.offset), 0);
  assert.is(r.read32(ralOffset(0)), 0x12005452);
  assert.is(r.read32(rahOffset(0)), (0x5634 | RAH.AV.mask) >>> 0);
  assert.is(r.read32(mtaOffset(2)), 0xabcd, 'MTA survives a software reset: drivers must clear it');
  p.reset(); // FLR
  assert.is(r.read32(mtaOffset(2)), 0, 'a function-level reset clears it');
  p.close();
});

test('EERD reads the EEPROM: MAC in words 0..2, words 0..0x3f sum to 0xBABA (the NVM map checksum)', () => {
  const { p } = single();
  const r = p.bar(0);
  const word = (w: number): number => {
    r.write32(REG.EERD.offset, setField(EERD.START.mask, EERD.ADDR, w));
    const v = r.read32(REG.EERD.offset);
    assert.ok(v & EERD.DONE.mask, 'DONE');
    return getField(v, EERD.DATA);
  };
  assert.equal([word(0), word(1), word(2)], [0x5452, 0x1200, 0x5634]);
  let sum = 0;
  for (let w = 0; w < 0x40; w++) sum = (sum + word(w)) & 0xffff;
  assert.is(sum, 0xbaba);
  p.close();
});

test('STATUS: link up only with CTRL.SLU and a cable; 1000 Mb/s full duplex; LSC raised on change', () => {
  const { p, nic } = single('none');
  const r = p.bar(0);
  assert.is(r.read32(REG.STATUS.offset) & STATUS.LU.mask, 0);
  r.write32(REG.CTRL.offset, r.read32(REG.CTRL.offset) | CTRL.SLU.mask);
  assert.is(r.read32(REG.STATUS.offset) & STATUS.LU.mask, 0, 'no cable');
  r.read32(REG.ICR.offset);
  const cable = loopback(nic);
  const s = r.read32(REG.STATUS.offset);
  assert.ok(s & STATUS.LU.mask);
  assert.ok(s & STATUS.FD.mask);
  assert.is(getField(s, STATUS.SPEED), 2);
  assert.is(statusSpeed(s), 1000);
  assert.ok(r.read32(REG.ICR.offset) & ICR.LSC.mask, 'LSC on plug');
  cable.unplug();
  assert.is(r.read32(REG.STATUS.offset) & STATUS.LU.mask, 0);
  assert.ok(r.read32(REG.ICR.offset) & ICR.LSC.mask, 'LSC on unplug');
  p.close();
});

test('ICR: ICS sets causes, reading clears them (IMS 0), writing 1s clears them; IMS/IMC set and clear the mask', () => {
  const { p } = single();
  const r = p.bar(0);
  r.read32(REG.ICR.offset);
  r.write32(REG.ICS.offset, ICR.RXT0.mask | ICR.TXDW.mask);
  assert.is(r.read32(REG.ICR.offset), ICR.RXT0.mask | ICR.TXDW.mask);
  assert.is(r.read32(REG.ICR.offset), 0, 'read-to-clear');
  r.write32(REG.IMS.offset, ICR.RXT0.mask);
  r.write32(REG.IMS.offset, ICR.LSC.mask);
  assert.is(r.read32(REG.IMS.offset), ICR.RXT0.mask | ICR.LSC.mask);
  r.write32(REG.IMC.offset, ICR.RXT0.mask);
  assert.is(r.read32(REG.IMS.offset), ICR.LSC.mask);
  r.write32(REG.ICS.offset, ICR.TXDW.mask); // masked: not asserted, so a read with IMS != 0 does not clear
  assert.is(r.read32(REG.ICR.offset), ICR.TXDW.mask);
  r.write32(REG.ICR.offset, ICR.TXDW.mask);
  assert.is(r.read32(REG.ICR.offset), 0, 'write-1-to-clear');
  p.close();
});

test('MSI-X: IVAR routes RX causes to their vector; an invalid entry raises nothing', async () => {
  const { p } = single();
  const r = p.bar(0);
  const fired = [0, 0, 0];
  const vectors = p.irq.enable('msix', 3);
  vectors.forEach((v, i) =>
    v.onFire(() => {
      fired[i]!++;
    }),
  );
  r.write32(REG.IVAR.offset, setField(setField(IVAR.RXQ0_VALID.mask | IVAR.OTHER_VALID.mask, IVAR.RXQ0_VECTOR, 2), IVAR.OTHER_VECTOR, 1));
  r.write32(REG.IMS.offset, ICR.RXQ0.mask | ICR.OTHER.mask);
  r.write32(REG.ICS.offset, ICR.RXT0.mask);
  r.write32(REG.ICS.offset, ICR.LSC.mask);
  r.write32(REG.ICS.offset, ICR.TXDW.mask); // TXQ0 not in IMS, and its IVAR entry invalid
  await new Promise((res) => setImmediate(res));
  assert.equal(fired, [0, 1, 1]);
  p.close();
});

test('MSI-X with EIAC: the message auto-clears the cause in ICR and masks it in IMS until re-armed (as QEMU 7.2 does)', async () => {
  const { p } = single();
  const r = p.bar(0);
  let fired = 0;
  p.irq.enable('msix', 1)[0]!.onFire(() => {
    fired++;
  });
  r.write32(REG.IVAR.offset, IVAR.RXQ0_VALID.mask);
  r.write32(REG.EIAC.offset, ICR.RXQ0.mask);
  r.write32(REG.IMS.offset, ICR.RXQ0.mask);
  r.write32(REG.ICS.offset, ICR.RXT0.mask);
  await new Promise((res) => setImmediate(res));
  assert.is(fired, 1);
  assert.is(r.read32(REG.IMS.offset) & ICR.RXQ0.mask, 0, 'auto-masked');
  r.write32(REG.ICS.offset, ICR.RXT0.mask);
  await new Promise((res) => setImmediate(res));
  assert.is(fired, 1, 'masked: no second message');
  r.write32(REG.IMS.offset, ICR.RXQ0.mask); // re-arm: the pending cause is delivered
  await new Promise((res) => setImmediate(res));
  assert.is(fired, 2);
  p.close();
});

test("write-back coalescing: during a sender's burst descriptors complete together at its end; outside one at once", async () => {
  const { p, nic } = single('none');
  const ep = endpoint(nic, () => {});
  const D = await E1000e.open(p);
  const f = frame(MAC_A, MAC_B, 64, 1);
  nic.burst(true);
  nic.receive(f, 64);
  nic.receive(f, 64);
  assert.is(p.bar(0).read32(REG.RDH.offset), 0, 'RDH not moved yet');
  assert.not.ok(D.rxRing.ready(), 'no DD yet');
  nic.burst(false);
  assert.is(p.bar(0).read32(REG.RDH.offset), 2);
  assert.ok(D.rxRing.ready());
  assert.ok(ep.send(f), 'outside a burst');
  assert.is(p.bar(0).read32(REG.RDH.offset), 3, 'completed within receive');
  const rb = new PacketBatch(8);
  assert.is(D.rx(rb), 3);
  D.rxFree(rb);
  await D.close();
  p.close();
});

test('with RCTL.SECRC.mask clear the model stores the Ethernet FCS after the frame (checked against zlib crc32)', async () => {
  const { pa, pb } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  pb.bar(0).write32(REG.RCTL.offset, pb.bar(0).read32(REG.RCTL.offset) & ~RCTL.SECRC.mask);
  const f = frame(MAC_B, MAC_A, 100, 42);
  const tb = new PacketBatch(1),
    rb = new PacketBatch(1);
  const buf = A.txAlloc();
  A.txData(buf).set(f);
  tb.push(buf, f.length);
  A.tx(tb);
  B.rx(rb);
  assert.is(rb.len[0], 104, 'length includes the 4 CRC bytes');
  const got = B.rxData(rb.buf[0]!, 104);
  assert.equal(got.subarray(0, 100), f);
  const want = crc32(f) >>> 0;
  assert.is(new DataView(got.buffer, got.byteOffset + 100, 4).getUint32(0, true), want);
  B.rxFree(rb);
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test('a frame longer than one RX buffer spans descriptors (EOP on the last); the driver drops it whole and goes on', async () => {
  const { pa, pb } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  const rctl = pb.bar(0).read32(REG.RCTL.offset);
  pb.bar(0).write32(REG.RCTL.offset, setField(rctl, RCTL.BSIZE, 3)); // 256-byte buffers
  const tb = new PacketBatch(2),
    rb = new PacketBatch(4);
  for (const len of [600, 200]) {
    const b = A.txAlloc();
    A.txData(b).set(frame(MAC_B, MAC_A, len, len));
    tb.push(b, len);
  }
  A.tx(tb);
  assert.is(pb.bar(0).read32(REG.RDH.offset), 4, '600 bytes took 3 descriptors, 200 bytes one');
  B.rx(rb);
  assert.is(rb.count, 1, 'only the frame that fits one buffer is delivered');
  assert.is(rb.len[0], 200);
  assert.is(B.stats().rx.fragmented, 1);
  B.rxFree(rb);
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test('no free RX descriptors: the frame is missed (MPC, RNBC) and RXO raised', async () => {
  const { pa, pb, b } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb, { rxDescriptors: 8 });
  const tb = new PacketBatch(16);
  for (let i = 0; i < 10; i++) {
    const x = A.txAlloc();
    A.txData(x).set(frame(MAC_B, MAC_A, 64, i));
    tb.push(x, 64);
  }
  A.tx(tb);
  assert.is(b.counters.rxNoDescriptor, 3, '7 descriptors were free, 10 frames came');
  const r = pb.bar(0);
  assert.ok(r.read32(REG.ICR.offset) & ICR.RXO.mask);
  assert.is(r.read32(REG.MPC.offset), 3);
  assert.is(r.read32(REG.RNBC.offset), 3);
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test('a TX buffer read the IOMMU refuses: fault logged (read), frame not sent, ring keeps going', async () => {
  const { pa, pb, a, machine } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  const tb = new PacketBatch(2);
  const x = A.txAlloc();
  A.txData(x).set(frame(MAC_B, MAC_A, 64, 1));
  tb.push(x, 64);
  pa.dma.revoke(A.txPool.window);
  A.tx(tb);
  const faults = machine.iommu.faults(ADDR_A);
  assert.is(faults.length, 1);
  assert.is(faults[0]!.access, 'read');
  assert.is(faults[0]!.vtdReason, 0x06);
  assert.is(a.counters.txDmaDropped, 1);
  assert.is(a.counters.txFrames, 0);
  assert.is(pa.bar(0).read32(REG.TDH.offset), 1, 'the descriptor was consumed');
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test('a write-back (RS) into a read-only TX ring: refused and logged (no-write), the ring unchanged, the TX ring stops', async () => {
  const { pa, pb, a, machine } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  const buf = A.txAlloc();
  A.txData(buf).set(frame(MAC_B, MAC_A, 64, 1));
  const ring = A.txRing.window;
  writeTxd(ring.view, 0, A.txPool.iova(buf), 64, TXD_CMD.EOP.mask | TXD_CMD.IFCS.mask | TXD_CMD.RS.mask);
  pa.bar(0).write32(REG.TDT.offset, 1);
  assert.is(a.counters.txFrames, 1, 'the frame itself went out');
  assert.is(txdSta(ring.bytes, 0), 0, 'STA.DD not written');
  const f = machine.iommu.faults(ADDR_A);
  assert.is(f.length, 1);
  assert.is(f[0]!.access, 'write');
  assert.is(f[0]!.reason, 'no-write');
  assert.is(f[0]!.vtdReason, 0x05);
  assert.is(f[0]!.iova, Number(ring.iova) + TXD.STA.offset);
  assert.is(a.ringFault, 'tx', 'the TX engine stops, as on a completion error');
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test.run();
