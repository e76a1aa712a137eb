/**
 * Building PRPs for NVMe data pointers (NVMe 1.4 §4.3): PRP1, PRP2 and, for a transfer over more
 * than two memory pages, a PRP list, by the rules in spec/nvme/prp.ts (which the simulated
 * controller's walker follows too).
 *
 * Lists live in a window the device may only read (`PrpListSpace`), cut into slots of whole pages
 * handed out from a free stack (free-stack.ts), so building a command's PRPs allocates nothing and
 * writes no bigint. IOVAs are handled as numbers (exact below 2^53) and written as two 32-bit halves.
 */
import type { DmaWindow } from '../contract/platform.js';
import { PRP_ENTRY_BYTES, prp2Use, Prp2, prpEntryChains, prpListEntries, prpMaxTransfer, prpPageCount } from '../../spec/nvme/prp.js';
import { KitError } from './errors.js';
import { FreeIndexStack } from './free-stack.js';

const TWO32 = 0x1_0000_0000;

/** Write `value` (an integer below 2^53) as a little-endian 64-bit field. */
/**
 * Write one PRP entry (an IOVA below 2^53, as a number) at `view[at]`: two 32-bit little-endian
 * halves, so filling lists builds no bigint.
 */
export function putPrpEntry(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % TWO32, true);
  view.setUint32(at + 4, Math.floor(value / TWO32), true);
}
const putU64 = putPrpEntry;

/** Slots of PRP list pages in one device-read-only window, each slot `slotPages` pages. */
export class PrpListSpace {
  readonly window: DmaWindow;
  readonly pageSize: number;
  readonly slotPages: number;
  readonly slots: number;
  /** The largest transfer (bytes, page-aligned start) one slot can describe. */
  readonly maxTransfer: number;
  private readonly iovaBase: number;
  private readonly freeSlots: FreeIndexStack;

  constructor(window: DmaWindow, options: { pageSize?: number; slotPages?: number } = {}) {
    const pageSize = options.pageSize ?? 4096;
    const slotPages = options.slotPages ?? 1;
    if (!Number.isInteger(pageSize) || pageSize < 4096 || 2 ** Math.round(Math.log2(pageSize)) !== pageSize) {
      throw new KitError('ERR_KIT_ARG', `PRP list space: page size ${pageSize} is not a power of two >= 4096 (CC.MPS)`);
    }
    if (!Number.isInteger(slotPages) || slotPages < 1) throw new KitError('ERR_KIT_ARG', `PRP list space: slotPages ${slotPages} must be >= 1`);
    if (window.perm.write) {
      throw new KitError('ERR_KIT_ARG', 'PRP list space: the window lets the device write; PRP lists are only read by the device', {
        fix: 'allocate it with DEVICE_READS (least privilege)',
      });
    }
    if (window.iova % BigInt(pageSize) !== 0n) throw new KitError('ERR_KIT_ARG', `PRP list space: window IOVA is not ${pageSize}-aligned`);
    if (window.iova + BigInt(window.size) > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new KitError('ERR_KIT_ARG', `PRP list space: window IOVA 0x${window.iova.toString(16)} is above 2^53`);
    }
    const slots = Math.floor(window.size / (pageSize * slotPages));
    if (slots < 1) throw new KitError('ERR_KIT_ARG', `PRP list space: a ${window.size}-byte window holds no ${slotPages}-page slot`);
    this.window = window;
    this.pageSize = pageSize;
    this.slotPages = slotPages;
    this.slots = slots;
    this.maxTransfer = prpMaxTransfer(slotPages, pageSize);
    this.iovaBase = Number(window.iova);
    this.freeSlots = new FreeIndexStack(slots, 'PRP list slot');
  }

  get available(): number {
    return this.freeSlots.available;
  }

  /** A free slot, or -1. */
  alloc(): number {
    return this.freeSlots.take();
  }

  /** Give a slot back; freeing it twice, or a slot the space does not have, throws ERR_KIT_POOL_FREE. */
  free(slot: number): void {
    this.freeSlots.give(slot);
  }

  slotOffset(slot: number): number {
    return slot * this.slotPages * this.pageSize;
  }

  slotIova(slot: number): number {
    return this.iovaBase + this.slotOffset(slot);
  }
}

/**
 * Fill PRP1/PRP2 for `length` bytes at `offset` in `data`, writing them as 64-bit little-endian
 * fields at `dst[at]` and `dst[at + 8]` (pass the SQE's view and its offset + SQE.PRP1.offset),
 * and the PRP list into `lists` slot `slot` when one is needed. Returns the number of list entries
 * written (0: no list; the slot is then untouched and may be freed at once).
 */
export function fillPrp(
  dst: DataView,
  at: number,
  data: DmaWindow,
  offset: number,
  length: number,
  lists?: PrpListSpace,
  slot = -1,
  pageSize = lists?.pageSize ?? 4096,
): number {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0 || offset + length > data.size) {
    throw new KitError('ERR_KIT_PRP', `PRP: ${length} bytes at offset ${offset} are not inside the ${data.size}-byte window`);
  }
  const first = Number(data.iova) + offset;
  const inPage = first % pageSize;
  const pages = prpPageCount(inPage, length, pageSize);
  const firstPage = first - inPage;
  putU64(dst, at, first);
  const use = prp2Use(inPage, length, pageSize);
  if (use === Prp2.UNUSED) {
    putU64(dst, at + PRP_ENTRY_BYTES, 0);
    return 0;
  }
  if (use === Prp2.PAGE) {
    putU64(dst, at + PRP_ENTRY_BYTES, firstPage + pageSize);
    return 0;
  }
  if (lists === undefined || slot < 0) {
    throw new KitError('ERR_KIT_PRP', `PRP: ${length} bytes over ${pages} pages need a PRP list, and no list slot was given`, {
      fix: 'pass a PrpListSpace and a slot from its alloc()',
    });
  }
  if (lists.pageSize !== pageSize) throw new KitError('ERR_KIT_ARG', `PRP: page size ${pageSize} differs from the list space's ${lists.pageSize}`);
  const needed = prpListEntries(pages, pageSize);
  const capacity = (lists.slotPages * pageSize) / PRP_ENTRY_BYTES;
  if (needed > capacity) {
    throw new KitError('ERR_KIT_PRP', `PRP: ${length} bytes need ${needed} list entries; a slot holds ${capacity}`, {
      fix: `split the transfer (at most ${lists.maxTransfer} bytes per command) or use more pages per slot`,
    });
  }
  const listIova = lists.slotIova(slot);
  const listStart = lists.slotOffset(slot);
  const lv = lists.window.view;
  putU64(dst, at + PRP_ENTRY_BYTES, listIova);
  // List entries follow one another from the slot's first page; `pos` is relative to the slot.
  let pos = 0;
  for (let p = 1; p < pages; p++) {
    if (prpEntryChains(pos % pageSize, pages - p, pageSize)) {
      // The last entry of a full list page, with more than one data page to go: chain to the next page.
      putU64(lv, listStart + pos, listIova + pos + PRP_ENTRY_BYTES);
      pos += PRP_ENTRY_BYTES;
    }
    putU64(lv, listStart + pos, firstPage + p * pageSize);
    pos += PRP_ENTRY_BYTES;
  }
  return pos / PRP_ENTRY_BYTES;
}
