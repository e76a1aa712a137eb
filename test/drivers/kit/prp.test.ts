import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEVICE_READS, DEVICE_WRITES } from '../../../drivers/contract/platform.js';
import { IommuDmaAllocator } from '../../../dma/allocator.js';
import { HeapMemoryProvider } from '../../../dma/memory.js';
import { fillPrp, PrpListSpace } from '../../../drivers/kit/prp.js';
import { prpListEntries } from '../../../spec/nvme/prp.js';
import { SQE } from '../../../spec/nvme/queue.js';
import { RecordingBackend } from '../../dma/fake-backend.js';

const PAGE = 4096;
const SQE_PRP1 = SQE.PRP1.offset;
const SQE_PRP2 = SQE.PRP2.offset;
const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'no error';
};

function setup(dataSize = 4 << 20, slotPages = 1) {
  const dma = new IommuDmaAllocator({ backend: new RecordingBackend(), memory: new HeapMemoryProvider() });
  const data = dma.alloc(dataSize, DEVICE_WRITES, { label: 'read data' });
  const listWin = dma.alloc(16 * PAGE, DEVICE_READS, { label: 'prp lists' });
  const lists = new PrpListSpace(listWin, { slotPages });
  const sqe = new DataView(new ArrayBuffer(64));
  return { dma, data, listWin, lists, sqe };
}

const prp1 = (sqe: DataView) => sqe.getBigUint64(SQE_PRP1, true);
const prp2 = (sqe: DataView) => sqe.getBigUint64(SQE_PRP2, true);

/** Walk PRPs the way a controller does and return the page addresses it would transfer. */
function walk(sqe: DataView, length: number, lists: PrpListSpace): bigint[] {
  const p1 = prp1(sqe);
  const off = Number(p1 % BigInt(PAGE));
  const pages = Math.ceil((off + length) / PAGE);
  const out = [p1];
  if (pages === 1) return out;
  if (pages === 2) return [...out, prp2(sqe)];
  let listAddr = prp2(sqe);
  const perPage = PAGE / 8;
  const base = lists.window.iova;
  let idx = Number((listAddr % BigInt(PAGE)) / 8n);
  while (out.length < pages) {
    const e = lists.window.view.getBigUint64(Number(listAddr - base) + 0, true);
    const remaining = pages - out.length;
    if (idx === perPage - 1 && remaining > 1) {
      listAddr = e;
      idx = 0;
      continue;
    }
    assert.is(e % BigInt(PAGE), 0n, 'list entries are page-aligned');
    out.push(e);
    listAddr += 8n;
    idx++;
  }
  return out;
}

test('one page: PRP1 only, PRP2 zero, no list', () => {
  const { data, lists, sqe } = setup();
  assert.is(fillPrp(sqe, SQE_PRP1, data, 0, 4096, lists, 0), 0);
  assert.is(prp1(sqe), data.iova);
  assert.is(prp2(sqe), 0n);
});

test('two pages: PRP2 is the second page', () => {
  const { data, sqe } = setup();
  assert.is(fillPrp(sqe, SQE_PRP1, data, 8192, 8192), 0);
  assert.is(prp1(sqe), data.iova + 8192n);
  assert.is(prp2(sqe), data.iova + 12288n);
});

test('unaligned start: PRP1 keeps the offset, the rest are page-aligned', () => {
  const { data, sqe, lists } = setup();
  // 512 bytes at offset 3840 cross into the next page: two pages, no list.
  assert.is(fillPrp(sqe, SQE_PRP1, data, 3840, 512), 0);
  assert.is(prp1(sqe), data.iova + 3840n);
  assert.is(prp2(sqe), data.iova + 4096n);
  // 8 KiB at offset 100 touch three pages: a list of two.
  const slot = lists.alloc();
  assert.is(fillPrp(sqe, SQE_PRP1, data, 100, 8192, lists, slot), 2);
  assert.equal(walk(sqe, 8192, lists), [data.iova + 100n, data.iova + 4096n, data.iova + 8192n]);
});

test('128 KiB: PRP1 plus a list of 31 entries', () => {
  const { data, sqe, lists } = setup();
  const slot = lists.alloc();
  assert.is(fillPrp(sqe, SQE_PRP1, data, 65536, 128 * 1024, lists, slot), 31);
  assert.is(prp2(sqe), lists.window.iova + BigInt(lists.slotOffset(slot)));
  const pages = walk(sqe, 128 * 1024, lists);
  assert.is(pages.length, 32);
  pages.forEach((p, i) => assert.is(p, data.iova + 65536n + BigInt(i * PAGE)));
  // Unaligned 128 KiB: 33 pages, 32 list entries.
  assert.is(fillPrp(sqe, SQE_PRP1, data, 65536 + 8, 128 * 1024, lists, slot), 32);
  assert.is(walk(sqe, 128 * 1024, lists).length, 33);
});

test('lists longer than a page chain through their last entry', () => {
  const { data, sqe, lists } = setup(4 << 20, 3);
  const slot = lists.alloc();
  const len = 3 << 20; // 768 pages: 767 listed entries, more than 512 per list page
  const n = fillPrp(sqe, SQE_PRP1, data, 0, len, lists, slot);
  assert.is(n, prpListEntries(768, PAGE));
  assert.is(n, 768, '767 data entries + 1 chain pointer');
  const base = lists.slotOffset(slot);
  const chain = lists.window.view.getBigUint64(base + 511 * 8, true);
  assert.is(chain, lists.window.iova + BigInt(base + PAGE), 'last entry of the first list page points at the next one');
  const pages = walk(sqe, len, lists);
  assert.is(pages.length, 768);
  pages.forEach((p, i) => {
    if (p !== data.iova + BigInt(i * PAGE)) assert.unreachable(`page ${i}`);
  });
});

test('a list that exactly fills a page needs no chain pointer', () => {
  assert.is(prpListEntries(513, PAGE), 512);
  assert.is(prpListEntries(514, PAGE), 514);
  const { data, sqe, lists } = setup(4 << 20, 2);
  const slot = lists.alloc();
  assert.is(fillPrp(sqe, SQE_PRP1, data, 0, 513 * PAGE, lists, slot), 512);
  assert.is(walk(sqe, 513 * PAGE, lists).length, 513);
});

test('too long for a slot, or a list needed but none given: ERR_KIT_PRP', () => {
  const { data, sqe, lists } = setup();
  assert.is(lists.maxTransfer, 513 * PAGE);
  assert.is(
    code(() => fillPrp(sqe, SQE_PRP1, data, 0, 514 * PAGE, lists, 0)),
    'ERR_KIT_PRP',
  );
  assert.is(
    code(() => fillPrp(sqe, SQE_PRP1, data, 0, 3 * PAGE)),
    'ERR_KIT_PRP',
  );
  assert.is(
    code(() => fillPrp(sqe, SQE_PRP1, data, data.size - 10, 20)),
    'ERR_KIT_PRP',
  );
});

test('list space must be device-read-only; slots are a free stack', () => {
  const dma = new IommuDmaAllocator({ backend: new RecordingBackend(), memory: new HeapMemoryProvider() });
  assert.is(
    code(() => new PrpListSpace(dma.alloc(PAGE, DEVICE_WRITES))),
    'ERR_KIT_ARG',
  );
  const lists = new PrpListSpace(dma.alloc(2 * PAGE, DEVICE_READS));
  assert.is(lists.slots, 2);
  const a = lists.alloc(),
    b = lists.alloc();
  assert.is(lists.alloc(), -1);
  lists.free(a);
  assert.is(
    code(() => lists.free(a)),
    'ERR_KIT_POOL_FREE',
  );
  assert.is(lists.slotIova(b), Number(lists.window.iova) + PAGE);
});

test.run();
