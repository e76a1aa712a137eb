/**
 * The e1000e driver on the simulator: init, ring wrap-around, a full TX ring, RX into a revoked
 * window, bulk exchange between two NICs with payload checks, statistics, address filtering,
 * MSI-X, and the errors a user sees.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { E1000e } from '../../../drivers/e1000e/device.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { REG, mtaOffset } from '../../../spec/e1000e/registers.js';
import type { Platform, RegisterSpace } from '../../../drivers/contract/platform.js';
import { pair, single, frame, MAC_A, MAC_B, ADDR_A, ADDR_B } from './harness.js';
import { SimMachine } from '../../../sim/machine.js';
import { E1000eModel } from '../../../sim/e1000e/model.js';

/** Fill a TX batch with `n` frames A -> dst whose payload derives from `seed + i`; returns the total bytes. */
function fill(nic: E1000e, batch: PacketBatch, n: number, dst: readonly number[], src: readonly number[], seed: number, len: (i: number) => number): number {
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const buf = nic.txAlloc();
    if (buf < 0) throw new Error('tx pool empty');
    const l = len(i);
    const f = frame(dst, src, l, seed + i);
    // The sequence number sits in the payload too, so order and content are both checked.
    f[14] = (seed + i) & 0xff;
    f[15] = ((seed + i) >>> 8) & 0xff;
    f[16] = ((seed + i) >>> 16) & 0xff;
    nic.txData(buf).set(f);
    batch.push(buf, l);
    bytes += l;
  }
  return bytes;
}

function seqOf(f: Uint8Array): number {
  return f[14]! | (f[15]! << 8) | (f[16]! << 16);
}

function expected(seq: number, len: number, dst: readonly number[], src: readonly number[]): Uint8Array {
  const f = frame(dst, src, len, seq);
  f[14] = seq & 0xff;
  f[15] = (seq >>> 8) & 0xff;
  f[16] = (seq >>> 16) & 0xff;
  return f;
}

test('init: reset, MAC from the EEPROM, link up, MTA cleared, interrupts masked, bus mastering on', async () => {
  const { pa, pb, a } = pair();
  // Leave junk in the MTA: hardware does not clear it (the model keeps it across CTRL.RST); the driver must.
  const bar = pa.bar(0);
  for (let i = 0; i < 128; i++) bar.write32(mtaOffset(i), 0xdeadbeef);
  const nic = await E1000e.open(pa);
  assert.equal([...nic.mac], MAC_A);
  assert.equal(nic.link(), { up: true, speedMbps: 1000, fullDuplex: true });
  for (let i = 0; i < 128; i++) assert.is(bar.read32(mtaOffset(i)), 0, `MTA[${i}] cleared`);
  assert.is(bar.read32(REG.IMS.offset), 0, 'polling mode: every cause masked');
  assert.is(pa.config.read16(4) & 4, 4, 'bus master enable set');
  assert.is(bar.read32(REG.RDLEN.offset), 512 * 16);
  assert.is(bar.read32(REG.RDT.offset), 511, 'all but one RX descriptor handed over');
  // The windows: RX descriptors rw, RX buffers write-only, TX descriptors and buffers read-only.
  assert.equal(nic.rxRing.window.perm, { read: true, write: true });
  assert.equal(nic.rxPool.window.perm, { read: false, write: true });
  assert.equal(nic.txRing.window.perm, { read: true, write: false });
  assert.equal(nic.txPool.window.perm, { read: true, write: false });
  await nic.close();
  assert.is(pa.config.read16(4) & 4, 0, 'close turns bus mastering off');
  assert.is(a.counters.txFrames, 0);
  pa.close();
  pb.close();
});

test('frames survive many ring wrap-arounds (8-descriptor rings, 1000 frames, odd batch sizes)', async () => {
  const { pa, pb } = pair();
  const A = await E1000e.open(pa, { rxDescriptors: 8, txDescriptors: 8 });
  const B = await E1000e.open(pb, { rxDescriptors: 8, txDescriptors: 8 });
  const tb = new PacketBatch(5),
    rb = new PacketBatch(5);
  let sent = 0,
    got = 0;
  while (got < 1000) {
    if (sent < 1000) {
      fill(A, tb, Math.min(5, 1000 - sent), MAC_B, MAC_A, sent, (i) => 60 + ((sent + i) % 200));
      const n = A.tx(tb);
      sent += n;
      // What the ring did not take goes back to the pool (it would be retried in a real app).
      for (let i = 0; i < tb.count; i++) A.txPool.free(tb.buf[i]!);
      tb.clear();
    }
    B.rx(rb);
    for (let i = 0; i < rb.count; i++) {
      const f = B.rxData(rb.buf[i]!, rb.len[i]!);
      assert.is(seqOf(f), got, 'in order');
      assert.equal(f, expected(got, 60 + (got % 200), MAC_B, MAC_A), `frame ${got} intact`);
      got++;
    }
    B.rxFree(rb);
  }
  assert.is(sent, 1000);
  assert.is(B.stats().device.MPC, 0, 'nothing missed');
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test('a full TX ring: tx() takes what fits, returns at once, and takes more once the device catches up', async () => {
  const { pa, pb, machine } = pair();
  const A = await E1000e.open(pa, { txDescriptors: 8, txBuffers: 64 });
  const B = await E1000e.open(pb);
  const fnA = machine.function(ADDR_A);
  fnA.hang(); // the device stops fetching TX descriptors
  const tb = new PacketBatch(32);
  fill(A, tb, 20, MAC_B, MAC_A, 0, () => 64);
  assert.is(A.tx(tb), 7, 'an 8-descriptor ring holds 7 in flight (TDH == TDT means empty)');
  assert.is(A.txRing.inFlight, 7);
  assert.is(tb.count, 13, 'the rest stay in the batch, at its front');
  assert.is(A.tx(tb), 0, 'full: nothing taken, no wait');
  assert.is(A.stats().tx.full, 13 + 13);
  fnA.resume();
  await new Promise((r) => setImmediate(r));
  assert.is(A.tx(tb), 7, 'after the device drained the ring, tx reclaims and takes 7 more');
  const rb = new PacketBatch(32);
  B.rx(rb);
  assert.is(rb.count, 14);
  for (let i = 0; i < rb.count; i++) assert.is(seqOf(B.rxData(rb.buf[i]!, rb.len[i]!)), i);
  B.rxFree(rb);
  for (let i = 0; i < tb.count; i++) A.txPool.free(tb.buf[i]!);
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test('RX into a revoked buffer window: IOMMU fault logged, frame dropped and counted, memory untouched', async () => {
  const { pa, pb, machine, b } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  const rxWindow = B.rxPool.window;
  rxWindow.bytes.fill(0x5a);
  pb.dma.revoke(rxWindow);
  const canary = machine.memory.canary(65536);
  const tb = new PacketBatch(4);
  fill(A, tb, 3, MAC_B, MAC_A, 0, () => 100);
  assert.is(A.tx(tb), 3);
  const faults = machine.iommu.faults(ADDR_B);
  assert.is(faults.length, 3, 'one fault per frame');
  for (const f of faults) {
    assert.is(f.access, 'write');
    assert.is(f.reason, 'not-present');
    assert.is(f.vtdReason, 0x05);
    assert.ok(f.iova >= Number(rxWindow.iova) && f.iova < Number(rxWindow.iova) + rxWindow.size, 'inside the revoked window');
  }
  assert.ok(
    rxWindow.bytes.every((x) => x === 0x5a),
    'the revoked window memory is unchanged',
  );
  assert.ok(machine.memory.intact(canary), 'host canary intact');
  assert.is(b.counters.rxDmaDropped, 3, 'the model dropped and counted them');
  const rb = new PacketBatch(8);
  assert.is(B.rx(rb), 0, 'nothing delivered');
  const st = B.stats();
  assert.is(st.rx.errors, 3, 'the driver saw three descriptors with ERRORS.RXE and recycled them');
  assert.is(st.device.RXERRC, 3);
  assert.is(st.device.GPRC, 0);
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test('two NICs exchange 40,000 frames both ways, 60..1514 bytes, none lost, every payload checked', async () => {
  const { pa, pb } = pair('deferred');
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  const N = 20000;
  const nics = [A, B];
  const macs = [MAC_A, MAC_B];
  const sent = [0, 0],
    got = [0, 0],
    bytes = [0, 0];
  const tbs = [new PacketBatch(32), new PacketBatch(32)],
    rbs = [new PacketBatch(32), new PacketBatch(32)];
  const lenOf = (seq: number) => 60 + ((seq * 7919) % (1514 - 60 + 1));
  const deadline = Date.now() + 60_000;
  while ((got[0]! < N || got[1]! < N) && Date.now() < deadline) {
    for (let s = 0; s < 2; s++) {
      const nic = nics[s]!,
        tb = tbs[s]!;
      // Send no more than the peer can hold: 32 per round, the peer drains each round.
      if (sent[s]! < N && tb.count === 0) bytes[s]! += fill(nic, tb, Math.min(32, N - sent[s]!), macs[1 - s]!, macs[s]!, sent[s]!, (i) => lenOf(sent[s]! + i));
      sent[s]! += nic.tx(tb);
    }
    await new Promise((r) => setImmediate(r)); // deferred work: the devices run between driver batches
    for (let r = 0; r < 2; r++) {
      const nic = nics[r]!,
        rb = rbs[r]!,
        from = 1 - r;
      nic.rx(rb);
      for (let i = 0; i < rb.count; i++) {
        const f = nic.rxData(rb.buf[i]!, rb.len[i]!);
        const seq = got[from]!;
        if (seqOf(f) !== seq || rb.len[i] !== lenOf(seq)) assert.unreachable(`frame ${seq} from ${from}: got seq ${seqOf(f)} len ${rb.len[i]}`);
        const want = expected(seq, lenOf(seq), macs[r]!, macs[from]!);
        for (let k = 0; k < want.length; k++) if (f[k] !== want[k]) assert.unreachable(`frame ${seq} from ${from}: byte ${k} differs`);
        got[from]!++;
      }
      nic.rxFree(rb);
    }
  }
  assert.equal(got, [N, N], 'every frame arrived');
  const sa = A.stats(),
    sb = B.stats();
  assert.is(sa.device.GPTC, N);
  assert.is(sb.device.GPTC, N);
  assert.is(sa.device.GPRC, N);
  assert.is(sb.device.GPRC, N);
  assert.is(sa.device.GOTC, bytes[0]! + 4 * N, 'GOTC counts the FCS too');
  assert.is(sb.device.GORC, bytes[0]! + 4 * N);
  assert.is(sb.device.GOTC, bytes[1]! + 4 * N);
  assert.is(sa.device.MPC + sb.device.MPC, 0, 'no missed frames');
  assert.is(sa.rx.errors + sb.rx.errors, 0);
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test('address filter: our MAC and broadcast pass; other unicast and multicast only in promiscuous mode', async () => {
  const { pa, pb, b } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  const other = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc];
  const mcast = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
  const bcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
  const tb = new PacketBatch(4),
    rb = new PacketBatch(8);
  const sendTo = (dst: number[]): number => {
    fill(A, tb, 1, dst, MAC_A, 0, () => 64);
    A.tx(tb);
    const n = B.rx(rb);
    B.rxFree(rb);
    return n;
  };
  assert.is(sendTo(MAC_B), 1, 'own MAC');
  assert.is(sendTo(bcast), 1, 'broadcast (RCTL.BAM)');
  assert.is(sendTo(other), 0, 'other unicast filtered');
  assert.is(sendTo(mcast), 0, 'multicast not in the (cleared) MTA filtered');
  assert.is(b.counters.rxFiltered, 2);
  B.setPromiscuous(true);
  assert.ok(B.promiscuous);
  assert.is(sendTo(other), 1, 'promiscuous: other unicast (RCTL.UPE)');
  assert.is(sendTo(mcast), 1, 'promiscuous: multicast (RCTL.MPE)');
  B.setPromiscuous(false);
  assert.is(sendTo(other), 0, 'filter back on');
  const st = B.stats().device;
  assert.is(st.BPRC, 1);
  assert.is(st.MPRC, 1);
  assert.is(st.GPRC, 4);
  assert.is(st.TPR, 7, 'TPR counts every frame seen, filtered or not');
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test('statistics are read-to-clear on the device and accumulated by the driver', async () => {
  const { pa, pb } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  const tb = new PacketBatch(8),
    rb = new PacketBatch(8);
  fill(A, tb, 5, MAC_B, MAC_A, 0, () => 100);
  A.tx(tb);
  assert.is(pa.bar(0).read32(REG.GPTC.offset), 5, 'GPTC read straight from the device');
  assert.is(pa.bar(0).read32(REG.GPTC.offset), 0, 'and cleared by that read');
  assert.is(pa.bar(0).read32(REG.GOTCL.offset), 5 * 104, 'GOTCL');
  assert.is(pa.bar(0).read32(REG.GOTCH.offset), 0, 'GOTCH (clears the pair)');
  assert.is(pa.bar(0).read32(REG.GOTCL.offset), 0, 'GOTCL cleared with its high dword');
  fill(A, tb, 3, MAC_B, MAC_A, 5, () => 100);
  A.tx(tb);
  assert.is(A.stats().device.GPTC, 3, 'the driver counts what it read');
  fill(A, tb, 2, MAC_B, MAC_A, 8, () => 100);
  A.tx(tb);
  assert.is(A.stats().device.GPTC, 5, 'totals accumulate across reads');
  B.rx(rb);
  B.rxFree(rb);
  assert.is(B.stats().device.GPRC, 10);
  assert.is(B.stats().rx.packets, 8, 'driver-side count (batch of 8)');
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test('MSI-X: frames raise vector 0 (IVAR) and waitRx wakes on it; polling mode raises none', async () => {
  const { pa, pb } = pair('deferred');
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb, { interrupts: 'msix' });
  const rb = new PacketBatch(8);
  assert.is(await B.waitRx(20), false, 'nothing yet: the wait is bounded');
  const waiting = B.waitRx(2000);
  const tb = new PacketBatch(2);
  fill(A, tb, 2, MAC_B, MAC_A, 0, () => 64);
  A.tx(tb);
  assert.ok(await waiting, 'woken');
  assert.ok(B.stats().interrupts >= 1, 'by an interrupt');
  B.rx(rb);
  assert.is(rb.count, 2);
  B.rxFree(rb);
  assert.is(A.stats().interrupts, 0);
  await A.close();
  await B.close();
  pa.close();
  pb.close();
});

test('errors: wrong device, bad ring size, link that never comes up', async () => {
  const { p, machine: machine0 } = single('none');
  try {
    await E1000e.open(p, { rxDescriptors: 100 });
    assert.unreachable('100 descriptors is not a multiple of 8');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_E1000E_OPTION');
    assert.match((e as Error).message, /multiple of 8/);
  }
  try {
    await E1000e.open(p, { linkTimeoutMs: 30 });
    assert.unreachable('no wire: the link stays down');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_E1000E_LINK_TIMEOUT');
  }
  assert.is(machine0.function(ADDR_A).domain.mappings, 0, 'the failed open unmapped the rings and pools it had mapped');
  const nic = await E1000e.open(p, { linkTimeoutMs: 10, requireLink: false });
  assert.is(nic.link().up, false);
  await nic.close();
  p.close();

  const machine = new SimMachine();
  const model = new E1000eModel();
  (model as { ids: object }).ids = { vendor: 0x8086, device: 0x100e, classCode: 0x020000, revision: 0 };
  machine.attach(model, { address: ADDR_A });
  const q = machine.platform(ADDR_A);
  try {
    await E1000e.open(q);
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_E1000E_DEVICE');
    assert.match((e as Error).message, /8086:100e is not an 82574L/);
  }
  q.close();
});

/** A platform whose BAR0 lies about one register (a device that never finishes something). */
function lying(p: Platform, reg: number, orBits: number, andBits = 0xffffffff): Platform {
  const bar = p.bar(0);
  const fake: RegisterSpace = {
    size: bar.size,
    read32: (o) => (o === reg ? ((bar.read32(o) | orBits) & andBits) >>> 0 : bar.read32(o)),
    write32: (o, v) => bar.write32(o, v),
    read64: (o) => bar.read64(o),
    write64: (o, v) => bar.write64(o, v),
  };
  return { name: p.name, config: p.config, dma: p.dma, irq: p.irq, clock: p.clock, reset: () => p.reset(), close: () => p.close(), bar: () => fake };
}

test('bounded waits: CTRL.RST that never clears and an EEPROM that never answers', async () => {
  const { p } = single();
  const t0 = Date.now();
  try {
    await E1000e.open(lying(p, REG.CTRL.offset, REG.CTRL.RST.mask), { resetTimeoutMs: 50 });
    assert.unreachable('the reset never completes');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_E1000E_RESET_TIMEOUT');
    assert.match((e as Error).message, /CTRL\.RST/);
  }
  assert.ok(Date.now() - t0 < 1000, 'gave up near the bound');
  // EERD.DONE never sets: the MAC comes from RAL0/RAH0, which the reset loaded from the EEPROM.
  const nic = await E1000e.open(lying(p, REG.EERD.offset, 0, ~REG.EERD.DONE.mask), { eepromTimeoutMs: 20 });
  assert.equal([...nic.mac], MAC_A);
  await nic.close();
  p.close();
});

test('a device that lies: an RX length beyond the buffer is not handed out, a TDH beyond the tail frees nothing', async () => {
  const { pa, pb } = pair();
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  const tb = new PacketBatch(4),
    rb = new PacketBatch(4);
  fill(A, tb, 2, MAC_B, MAC_A, 0, () => 64);
  A.tx(tb);
  // Rewrite the first written-back RX descriptor's length as a hostile device could.
  B.rxRing.window.view.setUint16(8, 4000, true);
  assert.is(B.rx(rb), 1, 'only the honest frame');
  assert.is(rb.len[0], 64);
  assert.is(B.stats().rx.errors, 1);
  B.rxFree(rb);
  await A.close();
  await B.close();
  pa.close();
  pb.close();

  // TX: two frames in flight on a hung device, then TDH claims the device went past the tail.
  const { pa: qa, pb: qb, machine } = pair();
  const C = await E1000e.open(qa);
  const D = await E1000e.open(qb);
  machine.function(ADDR_A).hang();
  fill(C, tb, 2, MAC_B, MAC_A, 0, () => 64);
  assert.is(C.tx(tb), 2);
  const freeBefore = C.txPool.available;
  qa.bar(0).write32(REG.TDH.offset, 100); // beyond the tail (2)
  assert.is(C.txRing.reclaim(), 0, 'nothing freed');
  assert.is(C.txPool.available, freeBefore);
  assert.is(C.stats().tx.badHead, 1);
  qa.bar(0).write32(REG.TDH.offset, 0);
  machine.function(ADDR_A).resume();
  await new Promise((r) => setImmediate(r));
  assert.is(C.txRing.reclaim(), 2, 'the honest head frees both');
  await C.close();
  await D.close();
  qa.close();
  qb.close();
});

test.run();
