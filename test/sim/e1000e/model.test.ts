/**
 * The 82574L model register by register, through a SimPlatform's BAR (as a driver would see it),
 * and the data-path corners the driver suite does not reach: CRC stored when SECRC is clear,
 * frames spanning buffers, no descriptors, a blocked TX read, IVAR routing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crc32 } from 'node:zlib';
import { REG, CTRL, STATUS, EERD, ICR, IVAR, RCTL, RAH, STAT } from '../../../spec/e1000e/registers.js';
import { E1000e } from '../../../drivers/e1000e/device.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { pair, single, frame, MAC_A, MAC_B, ADDR_A } from '../../drivers/e1000e/harness.js';
import { loopback, endpoint } from '../../../sim/wire.js';

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
  r.write32(REG.RCTL, RCTL.EN | RCTL.UPE);
  r.write32(REG.RAL, 0x11223344);
  r.write32(REG.MTA + 8, 0xabcd);
  r.write32(REG.CTRL, r.read32(REG.CTRL) | CTRL.RST);
  assert.is(r.read32(REG.CTRL) & CTRL.RST, 0, 'RST reads back clear');
  assert.is(r.read32(REG.RCTL), 0);
  assert.is(r.read32(REG.RAL), 0x12005452);
  assert.is(r.read32(REG.RAH), (0x5634 | RAH.AV) >>> 0);
  assert.is(r.read32(REG.MTA + 8), 0xabcd, 'MTA survives a software reset: drivers must clear it');
  p.reset(); // FLR
  assert.is(r.read32(REG.MTA + 8), 0, 'a function-level reset clears it');
  p.close();
});

test('EERD reads the EEPROM: MAC in words 0..2, words 0..0x3f sum to 0xBABA (the NVM map checksum)', () => {
  const { p } = single();
  const r = p.bar(0);
  const word = (w: number): number => {
    r.write32(REG.EERD, (w << EERD.ADDR_SHIFT) | EERD.START);
    const v = r.read32(REG.EERD);
    assert.ok(v & EERD.DONE, 'DONE');
    return v >>> EERD.DATA_SHIFT;
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
  assert.is(r.read32(REG.STATUS) & STATUS.LU, 0);
  r.write32(REG.CTRL, r.read32(REG.CTRL) | CTRL.SLU);
  assert.is(r.read32(REG.STATUS) & STATUS.LU, 0, 'no cable');
  r.read32(REG.ICR);
  const cable = loopback(nic);
  const s = r.read32(REG.STATUS);
  assert.ok(s & STATUS.LU);
  assert.ok(s & STATUS.FD);
  assert.is((s & STATUS.SPEED_MASK) >>> STATUS.SPEED_SHIFT, 2);
  assert.ok(r.read32(REG.ICR) & ICR.LSC, 'LSC on plug');
  cable.unplug();
  assert.is(r.read32(REG.STATUS) & STATUS.LU, 0);
  assert.ok(r.read32(REG.ICR) & ICR.LSC, 'LSC on unplug');
  p.close();
});

test('ICR: ICS sets causes, reading clears them (IMS 0), writing 1s clears them; IMS/IMC set and clear the mask', () => {
  const { p } = single();
  const r = p.bar(0);
  r.read32(REG.ICR);
  r.write32(REG.ICS, ICR.RXT0 | ICR.TXDW);
  assert.is(r.read32(REG.ICR), ICR.RXT0 | ICR.TXDW);
  assert.is(r.read32(REG.ICR), 0, 'read-to-clear');
  r.write32(REG.IMS, ICR.RXT0);
  r.write32(REG.IMS, ICR.LSC);
  assert.is(r.read32(REG.IMS), ICR.RXT0 | ICR.LSC);
  r.write32(REG.IMC, ICR.RXT0);
  assert.is(r.read32(REG.IMS), ICR.LSC);
  r.write32(REG.ICS, ICR.TXDW); // masked: not asserted, so a read with IMS != 0 does not clear
  assert.is(r.read32(REG.ICR), ICR.TXDW);
  r.write32(REG.ICR, ICR.TXDW);
  assert.is(r.read32(REG.ICR), 0, 'write-1-to-clear');
  p.close();
});

test('MSI-X: IVAR routes RX causes to their vector; an invalid entry raises nothing', async () => {
  const { p } = single();
  const r = p.bar(0);
  const fired = [0, 0, 0];
  const vectors = p.irq.enable('msix', 3);
  vectors.forEach((v, i) => v.onFire(() => { fired[i]!++; }));
  r.write32(REG.IVAR, ((IVAR.VALID | 2) << IVAR.RXQ0_SHIFT) | ((IVAR.VALID | 1) << IVAR.OTHER_SHIFT));
  r.write32(REG.IMS, ICR.RXQ0 | ICR.OTHER);
  r.write32(REG.ICS, ICR.RXT0);
  r.write32(REG.ICS, ICR.LSC);
  r.write32(REG.ICS, ICR.TXDW); // TXQ0 not in IMS, and its IVAR entry invalid
  await new Promise((res) => setImmediate(res));
  assert.equal(fired, [0, 1, 1]);
  p.close();
});

test('MSI-X with EIAC: the message auto-clears the cause in ICR and masks it in IMS until re-armed (as QEMU 7.2 does)', async () => {
  const { p } = single();
  const r = p.bar(0);
  let fired = 0;
  p.irq.enable('msix', 1)[0]!.onFire(() => { fired++; });
  r.write32(REG.IVAR, IVAR.VALID << IVAR.RXQ0_SHIFT);
  r.write32(REG.EIAC, ICR.RXQ0);
  r.write32(REG.IMS, ICR.RXQ0);
  r.write32(REG.ICS, ICR.RXT0);
  await new Promise((res) => setImmediate(res));
  assert.is(fired, 1);
  assert.is(r.read32(REG.IMS) & ICR.RXQ0, 0, 'auto-masked');
  r.write32(REG.ICS, ICR.RXT0);
  await new Promise((res) => setImmediate(res));
  assert.is(fired, 1, 'masked: no second message');
  r.write32(REG.IMS, ICR.RXQ0); // re-arm: the pending cause is delivered
  await new Promise((res) => setImmediate(res));
  assert.is(fired, 2);
  p.close();
});

test('write-back coalescing: during a sender\'s burst descriptors complete together at its end; outside one at once', async () => {
  const { p, nic } = single('none');
  const ep = endpoint(nic, () => {});
  const D = await E1000e.open(p);
  const f = frame(MAC_A, MAC_B, 64, 1);
  nic.burst(true);
  nic.receive(f, 64);
  nic.receive(f, 64);
  assert.is(p.bar(0).read32(REG.RDH), 0, 'RDH not moved yet');
  assert.not.ok(D.rxRing.ready(), 'no DD yet');
  nic.burst(false);
  assert.is(p.bar(0).read32(REG.RDH), 2);
  assert.ok(D.rxRing.ready());
  assert.ok(ep.send(f), 'outside a burst');
  assert.is(p.bar(0).read32(REG.RDH), 3, 'completed within receive');
  const rb = new PacketBatch(8);
  assert.is(D.rx(rb), 3);
  D.rxFree(rb);
  await D.close();
  p.close();
});

test('with RCTL.SECRC clear the model stores the Ethernet FCS after the frame (checked against zlib crc32)', async () => {
  const { pa, pb } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  pb.bar(0).write32(REG.RCTL, pb.bar(0).read32(REG.RCTL) & ~RCTL.SECRC);
  const f = frame(MAC_B, MAC_A, 100, 42);
  const tb = new PacketBatch(1), rb = new PacketBatch(1);
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
  await A.close(); await B.close();
  pa.close(); pb.close();
});

test('a frame longer than one RX buffer spans descriptors (EOP on the last); the driver drops it whole and goes on', async () => {
  const { pa, pb } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  const rctl = pb.bar(0).read32(REG.RCTL);
  pb.bar(0).write32(REG.RCTL, (rctl & ~RCTL.BSIZE_MASK) | (3 << RCTL.BSIZE_SHIFT)); // 256-byte buffers
  const tb = new PacketBatch(2), rb = new PacketBatch(4);
  for (const len of [600, 200]) {
    const b = A.txAlloc();
    A.txData(b).set(frame(MAC_B, MAC_A, len, len));
    tb.push(b, len);
  }
  A.tx(tb);
  assert.is(pb.bar(0).read32(REG.RDH), 4, '600 bytes took 3 descriptors, 200 bytes one');
  B.rx(rb);
  assert.is(rb.count, 1, 'only the frame that fits one buffer is delivered');
  assert.is(rb.len[0], 200);
  assert.is(B.stats().rx.fragmented, 1);
  B.rxFree(rb);
  await A.close(); await B.close();
  pa.close(); pb.close();
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
  assert.ok(r.read32(REG.ICR) & ICR.RXO);
  assert.is(r.read32(STAT.MPC), 3);
  assert.is(r.read32(STAT.RNBC), 3);
  await A.close(); await B.close();
  pa.close(); pb.close();
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
  assert.is(pa.bar(0).read32(REG.TDH), 1, 'the descriptor was consumed');
  await A.close(); await B.close();
  pa.close(); pb.close();
});

test('a write-back (RS) into a read-only TX ring: refused and logged (no-write), the ring unchanged, the TX ring stops', async () => {
  const { pa, pb, a, machine } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  const buf = A.txAlloc();
  A.txData(buf).set(frame(MAC_B, MAC_A, 64, 1));
  const ring = A.txRing.window;
  const iova = A.txPool.iova(buf);
  ring.view.setUint32(0, iova % 0x1_0000_0000, true);
  ring.view.setUint32(4, Math.floor(iova / 0x1_0000_0000), true);
  ring.view.setUint32(8, 64 | ((0x01 | 0x02 | 0x08) << 24), true); // EOP | IFCS | RS
  pa.bar(0).write32(REG.TDT, 1);
  assert.is(a.counters.txFrames, 1, 'the frame itself went out');
  assert.is(ring.bytes[12], 0, 'STA.DD not written');
  const f = machine.iommu.faults(ADDR_A);
  assert.is(f.length, 1);
  assert.is(f[0]!.access, 'write');
  assert.is(f[0]!.reason, 'no-write');
  assert.is(f[0]!.vtdReason, 0x05);
  assert.is(f[0]!.iova, Number(ring.iova) + 12);
  assert.is(a.ringFault, 'tx', 'the TX engine stops, as on a completion error');
  await A.close(); await B.close();
  pa.close(); pb.close();
});

test.run();
