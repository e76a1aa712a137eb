/**
 * The PRP walker against hostile lists (NVMe 1.4 §4.3): a chain pointer holding its own address,
 * a chain back to a list page already walked, a cycle of two list pages, a length beyond the
 * walker's bound. Every walk must end after at most the entries the length needs, with the status
 * the spec gives, and the controller must keep serving. The device's list reads are counted (and
 * cut off after a bound, so a walker that loops fails here instead of hanging the suite).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimMachine } from '../../../sim/machine.js';
import { SimNvme } from '../../../sim/nvme/controller.js';
import { PrpResult, PrpWalker, prpChainsNeeded } from '../../../sim/nvme/prp.js';
import type { DeviceDma } from '../../../sim/dma.js';
import { DEVICE_READS, DEVICE_READS_WRITES } from '../../../drivers/contract/platform.js';
import { NvmeController } from '../../../drivers/nvme/controller.js';
import { NvmOpcode } from '../../../spec/nvme/commands.js';
import { GenericSc } from '../../../spec/nvme/status.js';
import { prpListEntries, prpPageCount } from '../../../spec/nvme/prp.js';
import { REG } from '../../../spec/nvme/registers.js';
import { getField } from '../../../spec/field.js';

const ADDRESS = '0000:00:01.0';
const PAGE = 4096;
/** Far more list reads than any walk below may need: past it the walker is looping. */
const READ_LIMIT = 20_000;

/** The function's DMA engine with its 64-bit reads (the walker's list reads) counted and cut off at READ_LIMIT. */
function countingDma(dma: DeviceDma): { dma: DeviceDma; reads: () => number; reset: () => void } {
  let reads = 0;
  const guarded = Object.create(dma) as DeviceDma;
  guarded.readU64 = (iova: number): number => {
    if (++reads > READ_LIMIT) throw new Error(`the PRP walk read more than ${READ_LIMIT} list entries: it does not end`);
    return dma.readU64(iova);
  };
  return { dma: guarded, reads: () => reads, reset: () => (reads = 0) };
}

/** Count (and cut off) the list reads of the function's own DMA engine, which the model's walker holds. */
function countInPlace(dma: DeviceDma): { reads: () => number; reset: () => void } {
  const original = dma.readU64.bind(dma);
  let reads = 0;
  dma.readU64 = (iova: number): number => {
    if (++reads > READ_LIMIT) throw new Error(`the PRP walk read more than ${READ_LIMIT} list entries: it does not end`);
    return original(iova);
  };
  return { reads: () => reads, reset: () => (reads = 0) };
}

function rig() {
  const machine = new SimMachine();
  const model = new SimNvme();
  const fn = machine.attach(model, { address: ADDRESS, workMode: 'sync' });
  const p = machine.platform(ADDRESS, { busMaster: true });
  return { machine, model, fn, p };
}

test('a chain pointer holding its own address (the last entry of a list page): Invalid PRP Offset, after one read', () => {
  const { fn, p } = rig();
  const c = countingDma(fn.dma);
  const w = new PrpWalker(c.dma, 32 * PAGE);
  const list = p.dma.alloc(PAGE, DEVICE_READS);
  const L = Number(list.iova);
  list.view.setBigUint64(PAGE - 8, BigInt(L + PAGE - 8), true);
  assert.is(w.walk(0x7000, L + PAGE - 8, 3 * PAGE), PrpResult.BAD_OFFSET);
  assert.ok(c.reads() <= 1, `${c.reads()} list reads`);
  p.close();
});

test('a chain back to its own list page (page-aligned): refused as a bad list, reads bounded by the length', () => {
  const { fn, p } = rig();
  const c = countingDma(fn.dma);
  const w = new PrpWalker(c.dma, 4096 * PAGE);
  const list = p.dma.alloc(PAGE, DEVICE_READS);
  const L = Number(list.iova);
  for (let i = 0; i < 511; i++) list.view.setBigUint64(i * 8, BigInt(0x100_0000 + i * PAGE), true);
  list.view.setBigUint64(PAGE - 8, BigInt(L), true);
  // 1024 pages: the list needs two list pages; the "second" is the first again.
  assert.is(w.walk(0x7000, L, 1024 * PAGE), PrpResult.BAD_LIST);
  assert.ok(c.reads() <= 512, `${c.reads()} list reads`);
  p.close();
});

test('a cycle of two list pages: refused when the chain comes back, never more reads than the length needs', () => {
  const { fn, p } = rig();
  const c = countingDma(fn.dma);
  const w = new PrpWalker(c.dma, 4096 * PAGE);
  const list = p.dma.alloc(2 * PAGE, DEVICE_READS);
  const A = Number(list.iova),
    B = A + PAGE;
  for (let i = 0; i < 1022; i++) if (i !== 511) list.view.setBigUint64(i * 8, BigInt(0x100_0000 + i * PAGE), true);
  list.view.setBigUint64(PAGE - 8, BigInt(B), true);
  list.view.setBigUint64(2 * PAGE - 8, BigInt(A), true);
  assert.is(w.walk(0x7000, A, 4000 * PAGE), PrpResult.BAD_LIST);
  assert.ok(c.reads() <= 1024, `${c.reads()} list reads`);
  p.close();
});

test('a length beyond the walker bound is a bad list, not an overrun of its segment arrays', () => {
  const { fn, p } = rig();
  const w = new PrpWalker(fn.dma, 4 * PAGE);
  assert.is(w.walk(0x7000, 0x8000, 5 * PAGE), PrpResult.BAD_LIST);
  assert.is(w.walk(0x7000, 0x8000, 0), PrpResult.BAD_LIST);
  assert.is(w.walk(0x7000, 0x8000, 2 * PAGE), PrpResult.OK);
  p.close();
});

test('chains needed: what the driver kit builds (spec/nvme/prp.ts prpListEntries) for lists from a page start', () => {
  for (const pages of [3, 100, 512, 513, 514, 1024, 1025, 4096]) {
    const entries = prpListEntries(prpPageCount(0, pages * PAGE, PAGE), PAGE);
    assert.is(prpChainsNeeded(0, pages - 1, PAGE), entries - (pages - 1), `${pages} pages`);
  }
  assert.is(prpChainsNeeded(PAGE - 8, 2, PAGE), 1, 'PRP2 at the last entry with two pages to go: one chain');
  assert.is(prpChainsNeeded(PAGE - 16, 2, PAGE), 0);
});

test('a READ whose PRP list chains to itself completes with Invalid PRP Offset; the controller keeps serving', async () => {
  const { fn, model, p } = rig();
  const c = countInPlace(fn.dma);
  const ctrl = await NvmeController.open(p, { log: () => undefined, interrupts: 'poll' });
  const ns = ctrl.namespaces[0]!;
  const list = p.dma.alloc(PAGE, DEVICE_READS);
  const data = p.dma.alloc(4 * PAGE, DEVICE_READS_WRITES);
  const L = Number(list.iova);
  list.view.setBigUint64(PAGE - 8, BigInt(L + PAGE - 8), true);
  c.reset();
  const err = await ns.transferPrps(NvmOpcode.READ, 0, 24, Number(data.iova), L + PAGE - 8).then(
    () => undefined,
    (e: { sc?: number }) => e,
  );
  assert.ok(err !== undefined, 'the read failed');
  assert.is(err!.sc, GenericSc.INVALID_PRP_OFFSET);
  assert.ok(c.reads() <= 2, `${c.reads()} list reads`);
  // A chain back to the start of its own list page (page-aligned, so no offset to object to): Invalid Field.
  list.view.setBigUint64(PAGE - 16, data.iova + BigInt(PAGE), true);
  list.view.setBigUint64(PAGE - 8, BigInt(L), true);
  const err2 = await ns.transferPrps(NvmOpcode.READ, 0, 32, Number(data.iova), L + PAGE - 16).then(
    () => undefined,
    (e: { sc?: number }) => e,
  );
  assert.is(err2?.sc, GenericSc.INVALID_FIELD);
  assert.is(model.stats.badPrpLists, 1);
  assert.is(getField(p.bar(0).read32(REG.CSTS.offset), REG.CSTS.CFS), 0, 'no controller fatal status');
  const back = await ns.read(0, 8);
  assert.is(back.length, 8 * 512, 'a good read still works');
  await ctrl.close();
  p.close();
});

test.run();
