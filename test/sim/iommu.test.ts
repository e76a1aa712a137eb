import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DeviceDma } from '../../sim/dma.js';
import { SimIommu, PASSTHROUGH_WARNING } from '../../sim/iommu.js';
import { PhysicalMemory } from '../../sim/memory.js';

const DEV = '0000:00:05.0';
const PAGE = 4096;

function rig(options: { passthrough?: boolean } = {}) {
  const iommu = new SimIommu(options);
  const mem = new PhysicalMemory();
  const domain = iommu.domain(DEV);
  const fn = { address: DEV, busMasterEnabled: true };
  const dma = new DeviceDma(fn, iommu, domain, mem);
  return { iommu, mem, domain, fn, dma };
}

test('translation honours read and write permission per page', () => {
  const { mem, domain, dma } = rig();
  const ram = mem.add(new Uint8Array(4 * PAGE), 'ram');
  domain.map(0x10000, ram.base, PAGE, 1); // read only
  domain.map(0x11000, ram.base + PAGE, PAGE, 2); // write only
  domain.map(0x12000, ram.base + 2 * PAGE, PAGE, 3); // both
  ram.bytes.fill(0x5a, 0, PAGE);
  const buf = new Uint8Array(16);
  assert.ok(dma.read(0x10000, buf, 0, 16));
  assert.is(buf[15], 0x5a);
  assert.not.ok(dma.write(0x10000, buf, 0, 16));
  assert.ok(dma.write(0x11000, buf, 0, 16));
  assert.not.ok(dma.read(0x11000, buf, 0, 16));
  assert.ok(dma.write(0x12000, buf, 0, 16) && dma.read(0x12000, buf, 0, 16));
  assert.is(dma.readU32(0x10004), 0x5a5a5a5a);
  assert.is(dma.readU32(0x11000), -1);
  assert.ok(dma.writeU32(0x12008, 0xcafef00d));
  assert.is(dma.readU32(0x12008), 0xcafef00d);
  assert.is(dma.readU64(0x12008), 0x5a5a5a5a * 2 ** 32 + 0xcafef00d, 'the high half is what the 16-byte write left');
  assert.ok(dma.writeU64(0x12010, 0x1, 0x2));
  assert.is(dma.readU64(0x12010), 2 * 2 ** 32 + 1);
});

test('each fault reason is logged with device, IOVA, access and the VT-d code', () => {
  const { iommu, mem, domain, dma, fn } = rig();
  const ram = mem.add(new Uint8Array(2 * PAGE), 'ram');
  domain.map(0x20000, ram.base, PAGE, 1);
  domain.map(0x21000, ram.base + PAGE, PAGE, 2);
  const buf = new Uint8Array(8);
  dma.write(0x30000, buf, 0, 8); // not present, write
  dma.read(0x30000, buf, 0, 8); // not present, read
  dma.write(0x20000, buf, 0, 8); // no-write
  dma.read(0x21000, buf, 0, 8); // no-read
  fn.busMasterEnabled = false;
  dma.read(0x20000, buf, 0, 8); // no bus master
  const f = iommu.faults(DEV).map((x) => [x.reason, x.access, x.vtdReason, x.iova, x.device, x.length]);
  assert.equal(f, [
    ['not-present', 'write', 0x05, 0x30000, DEV, 8],
    ['not-present', 'read', 0x06, 0x30000, DEV, 8],
    ['no-write', 'write', 0x05, 0x20000, DEV, 8],
    ['no-read', 'read', 0x06, 0x21000, DEV, 8],
    ['no-bus-master', 'read', null, 0x20000, DEV, 8],
  ]);
  assert.is(iommu.faultCount, 5);
  assert.equal(iommu.faultsByReason, { 'not-present': 2, 'no-read': 1, 'no-write': 1, 'no-bus-master': 1, unbacked: 0 });
  assert.is(iommu.status().faults, 5);
  assert.equal(iommu.faults('0000:00:09.0'), []);
});

test('a transfer is checked whole: one bad page refuses it all, nothing is copied', () => {
  const { iommu, mem, domain, dma } = rig();
  const ram = mem.add(new Uint8Array(3 * PAGE), 'ram');
  domain.map(0x40000, ram.base, 2 * PAGE, 3);
  domain.map(0x42000, ram.base + 2 * PAGE, PAGE, 1); // third page read-only
  const src = new Uint8Array(3 * PAGE).fill(0xee);
  assert.not.ok(dma.write(0x40000, src, 0, 3 * PAGE));
  assert.ok(
    ram.bytes.every((b) => b === 0),
    'the first two (writable) pages are untouched too',
  );
  assert.is(iommu.faults()[0]!.reason, 'no-write');
  assert.is(iommu.faults()[0]!.length, 3 * PAGE);
  assert.ok(dma.write(0x40ff0, src, 0, 0x40), 'an unaligned run across two writable pages works');
  assert.is(ram.bytes[0xfef], 0);
  assert.is(ram.bytes[0xff0], 0xee);
  assert.is(ram.bytes[0x102f], 0xee);
  assert.is(ram.bytes[0x1030], 0);
});

test('pages that are not physically contiguous are gathered correctly', () => {
  const { mem, domain, dma } = rig();
  const a = mem.add(new Uint8Array(PAGE), 'a');
  const b = mem.add(new Uint8Array(PAGE), 'b');
  domain.map(0x50000, b.base, PAGE, 3);
  domain.map(0x51000, a.base, PAGE, 3);
  const src = new Uint8Array(2 * PAGE);
  for (let i = 0; i < src.length; i++) src[i] = i & 0xff;
  assert.ok(dma.write(0x50000, src, 0, 2 * PAGE));
  assert.is(b.bytes[1], 1);
  assert.is(a.bytes[0], 0);
  assert.is(a.bytes[5], 5);
  const back = new Uint8Array(2 * PAGE);
  assert.ok(dma.read(0x50000, back, 0, 2 * PAGE));
  assert.equal(back, src);
  // A 32-bit value straddling the two pages.
  assert.is(dma.readU32(0x50ffe), (src[0xffe]! | (src[0xfff]! << 8) | (src[0x1000]! << 16) | (src[0x1001]! << 24)) >>> 0);
  assert.ok(dma.writeU32(0x50ffe, 0x44332211));
  assert.equal([b.bytes[0xffe], b.bytes[0xfff], a.bytes[0], a.bytes[1]], [0x11, 0x22, 0x33, 0x44]);
  assert.ok(dma.writeU64(0x50ffc, 0x11111111, 0x22222222));
  assert.is(dma.readU64(0x50ffc), 0x22222222 * 2 ** 32 + 0x11111111);
});

test('canary regions stay untouched by a campaign of blocked DMA', () => {
  const { iommu, mem, domain, dma } = rig();
  const canary = mem.canary(8 * PAGE, 'host kernel');
  const ram = mem.add(new Uint8Array(PAGE), 'window');
  domain.map(0x60000, ram.base, PAGE, 1);
  const junk = new Uint8Array(PAGE).fill(0x13);
  // Aim at the canary's physical address, at IOVA 0, at the read-only window, past its end.
  for (const iova of [canary.base, canary.base + PAGE, 0, 0x60000, 0x60800, 0x61000, 0x7fff_ffff_f000]) {
    assert.not.ok(dma.write(iova, junk, 0, PAGE));
    dma.writeU32(iova, 0x13131313);
  }
  assert.ok(mem.intact(canary));
  assert.equal(mem.damagedCanaries(), []);
  assert.ok(ram.bytes.every((b) => b === 0));
  assert.is(iommu.faults().length, 14);
  canary.bytes[100] = 0;
  assert.not.ok(mem.intact(canary), 'the oracle does notice a change');
  assert.equal(
    mem.damagedCanaries().map((r) => r.name),
    ['host kernel'],
  );
});

test('unmap makes pages fault again; double map and stray unmap are refused', () => {
  const { mem, domain, dma, iommu } = rig();
  const ram = mem.add(new Uint8Array(2 * PAGE), 'ram');
  domain.map(0x70000, ram.base, 2 * PAGE, 3);
  assert.is(dma.readU32(0x70000), 0);
  assert.throws(
    () => domain.map(0x71000, ram.base, PAGE, 3),
    (e: { code: string }) => e.code === 'ERR_SIM_IOMMU',
  );
  domain.unmap(0x70000, 2 * PAGE);
  assert.is(dma.readU32(0x70000), -1, 'the cached translation was dropped');
  assert.is(iommu.faults()[0]!.reason, 'not-present');
  assert.throws(
    () => domain.unmap(0x70000, PAGE),
    (e: { code: string }) => e.code === 'ERR_SIM_IOMMU',
  );
  assert.throws(
    () => domain.map(0x70000, ram.base, PAGE, 0),
    (e: { code: string }) => e.code === 'ERR_SIM_IOMMU',
  );
  assert.throws(
    () => domain.map(0x70001, ram.base, PAGE, 3),
    (e: { code: string }) => e.code === 'ERR_SIM_IOMMU',
  );
});

test('translated but unbacked addresses are refused as unbacked', () => {
  const { mem, domain, dma, iommu } = rig();
  domain.map(0x80000, 0x7000_0000, PAGE, 3);
  assert.is(dma.readU32(0x80000), -1);
  assert.is(iommu.faults()[0]!.reason, 'unbacked');
  void mem;
});

test('passthrough: IOVA = physical, nothing confined, and it says so loudly', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  const { iommu, mem, dma } = rig({ passthrough: true });
  const heard: string[] = [];
  iommu.on('warning', (m: string) => heard.push(m));
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarning);
  assert.equal(heard, [PASSTHROUGH_WARNING]);
  assert.ok(warnings.includes(PASSTHROUGH_WARNING));
  assert.is(iommu.confined, false);
  assert.is(iommu.status().passthrough, true);
  assert.match(iommu.status().warning!, /NOT confined/);
  const victim = mem.canary(PAGE, 'victim');
  assert.ok(dma.writeU32(victim.base, 0), 'the device reaches any memory');
  assert.not.ok(mem.intact(victim));
});

test('the fault log keeps the last 4096 entries and counts all', () => {
  const { iommu, dma } = rig();
  for (let i = 0; i < 5000; i++) dma.readU32(i * 8);
  assert.is(iommu.faults().length, 4096);
  assert.is(iommu.faultCount, 5000);
  assert.is(iommu.faults()[0]!.seq, 905);
  iommu.clearFaults();
  assert.is(iommu.faults().length, 0);
});

test('bad buffer arguments are a model bug: thrown, not logged', () => {
  const { dma, iommu } = rig();
  const buf = new Uint8Array(4);
  assert.throws(
    () => dma.read(0, buf, 2, 4),
    (e: { code: string }) => e.code === 'ERR_SIM_ARG',
  );
  assert.throws(
    () => dma.write(0, buf, -1, 2),
    (e: { code: string }) => e.code === 'ERR_SIM_ARG',
  );
  assert.ok(dma.read(0, buf, 0, 0), 'zero bytes is a no-op');
  assert.is(iommu.faultCount, 0);
});

test('IOVAs a hostile driver can hand the device (negative, 2^53 and above, fractional) are refused and logged, never thrown', () => {
  const { dma, iommu } = rig();
  const buf = new Uint8Array(8);
  for (const iova of [-1, -4096, 2 ** 53, 2 ** 64 - 4096, 0x1_0000_0000 * 0xffff_ffff, 4096.5]) {
    assert.is(dma.read(iova, buf, 0, 8), false, `read 0x${iova.toString(16)}`);
    assert.is(dma.write(iova, buf, 0, 8), false, `write 0x${iova.toString(16)}`);
    assert.is(dma.readU64(iova), -1);
    assert.is(dma.writeU32(iova, 1), false);
  }
  const reasons = new Set(iommu.faults().map((f) => f.reason));
  assert.equal([...reasons], ['not-present']);
  assert.is(iommu.faultCount, 24);
});

test.run();
