/**
 * Physical Region Page entries for NVMe data pointers (NVMe 1.4 §4.3).
 *
 * A command's DPTR is PRP1 (bytes 24..31 of the submission entry) and PRP2 (32..39), §4.2:
 * - PRP1 is the address of the first byte; it may have an offset into its memory page (the page
 *   size is CC.MPS, 4 KiB here). Every later entry is page-aligned.
 * - The transfer ends in PRP1's page: PRP2 is 0 (unused).
 * - It ends in the next page: PRP2 is that page's address.
 * - Otherwise PRP2 points to a PRP list (qword-aligned) of the remaining page addresses. When a
 *   list does not fit in the rest of its memory page, the last entry of that page points to the
 *   next list page (§4.3, Figure 88) instead of data.
 *
 * Lists live in a window the device may only read (`PrpListSpace`), cut into slots of whole pages
 * with a free stack, so building a command's PRPs allocates nothing and writes no bigint.
 * IOVAs are handled as numbers (exact below 2^53) and written as two 32-bit halves.
 */
import type { DmaWindow } from '../contract/platform.js';
import { KitError } from './errors.js';

export const PRP_ENTRY = 8;
/** Offsets of PRP1/PRP2 in a 64-byte submission queue entry (NVMe 1.4 §4.2, Figure 105: DPTR). */
export const SQE_PRP1 = 24;
export const SQE_PRP2 = 32;

function putU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % 0x1_0000_0000, true);
  view.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** How many memory pages a transfer touches. */
export function prpPageCount(firstOffsetInPage: number, length: number, pageSize = 4096): number {
  return Math.ceil((firstOffsetInPage + length) / pageSize);
}

/** How many list entries (including chain pointers) a transfer needs in a list starting page-aligned. */
export function prpListEntries(dataPages: number, pageSize = 4096): number {
  const listed = dataPages - 1;
  if (listed <= 1) return 0;
  const perPage = pageSize / PRP_ENTRY;
  // Every full list page but the last gives one slot to the chain pointer.
  let entries = 0, left = listed;
  while (left > perPage) {
    entries += perPage;
    left -= perPage - 1;
  }
  return entries + left;
}

export class PrpListSpace {
  readonly window: DmaWindow;
  readonly pageSize: number;
  readonly slotPages: number;
  readonly slots: number;
  /** The largest transfer (bytes, page-aligned start) one slot can describe. */
  readonly maxTransfer: number;
  private readonly iovaBase: number;
  private readonly stack: Uint32Array;
  private readonly out: Uint8Array;
  private top: number;

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
    const slots = Math.floor(window.size / (pageSize * slotPages));
    if (slots < 1) throw new KitError('ERR_KIT_ARG', `PRP list space: a ${window.size}-byte window holds no ${slotPages}-page slot`);
    this.window = window;
    this.pageSize = pageSize;
    this.slotPages = slotPages;
    this.slots = slots;
    const perPage = pageSize / PRP_ENTRY;
    // Entries a slot can hold, chain pointers subtracted; +1 for PRP1's page.
    this.maxTransfer = (slotPages * (perPage - 1) + 1 + 1) * pageSize;
    this.iovaBase = Number(window.iova);
    this.stack = new Uint32Array(slots);
    this.out = new Uint8Array(slots);
    for (let i = 0; i < slots; i++) this.stack[i] = slots - 1 - i;
    this.top = slots;
  }

  get available(): number {
    return this.top;
  }

  /** A free slot, or -1. */
  alloc(): number {
    if (this.top === 0) return -1;
    const s = this.stack[--this.top]!;
    this.out[s] = 1;
    return s;
  }

  free(slot: number): void {
    if ((slot >>> 0) !== slot || slot >= this.slots || this.out[slot] === 0) {
      throw new KitError('ERR_KIT_POOL_FREE', `PRP list slot ${slot}: not allocated (freed twice?)`);
    }
    this.out[slot] = 0;
    this.stack[this.top++] = slot;
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
 * fields at `dst[at]` and `dst[at + 8]` (pass the SQE's view and its offset + SQE_PRP1), and the
 * PRP list into `lists` slot `slot` when one is needed. Returns the number of list entries
 * written (0: no list; the slot is then untouched and may be freed at once).
 */
export function fillPrp(dst: DataView, at: number, data: DmaWindow, offset: number, length: number,
  lists?: PrpListSpace, slot = -1, pageSize = lists?.pageSize ?? 4096): number {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0 || offset + length > data.size) {
    throw new KitError('ERR_KIT_PRP', `PRP: ${length} bytes at offset ${offset} are not inside the ${data.size}-byte window`);
  }
  const first = Number(data.iova) + offset;
  const inPage = first % pageSize;
  const pages = Math.ceil((inPage + length) / pageSize);
  putU64(dst, at, first);
  const firstPage = first - inPage;
  if (pages === 1) {
    putU64(dst, at + 8, 0);
    return 0;
  }
  if (pages === 2) {
    putU64(dst, at + 8, firstPage + pageSize);
    return 0;
  }
  if (lists === undefined || slot < 0) {
    throw new KitError('ERR_KIT_PRP', `PRP: ${length} bytes over ${pages} pages need a PRP list, and no list slot was given`, {
      fix: 'pass a PrpListSpace and a slot from its alloc()',
    });
  }
  if (lists.pageSize !== pageSize) throw new KitError('ERR_KIT_ARG', `PRP: page size ${pageSize} differs from the list space's ${lists.pageSize}`);
  const perPage = pageSize / PRP_ENTRY;
  const needed = prpListEntries(pages, pageSize);
  const capacity = lists.slotPages * perPage;
  if (needed > capacity) {
    throw new KitError('ERR_KIT_PRP', `PRP: ${length} bytes need ${needed} list entries; a slot holds ${capacity}`, {
      fix: `split the transfer (at most ${lists.maxTransfer} bytes per command) or use more pages per slot`,
    });
  }
  const listIova = lists.slotIova(slot);
  const lv = lists.window.view;
  let pos = lists.slotOffset(slot);
  let entryInPage = 0;
  let listPage = 0;
  putU64(dst, at + 8, listIova);
  let written = 0;
  for (let p = 1; p < pages; p++) {
    const remaining = pages - p;
    if (entryInPage === perPage - 1 && remaining > 1) {
      // Last slot of a full list page with more than one entry to go: chain to the next list page.
      listPage++;
      putU64(lv, pos, listIova + listPage * pageSize);
      written++;
      pos = lists.slotOffset(slot) + listPage * pageSize;
      entryInPage = 0;
    }
    putU64(lv, pos, firstPage + p * pageSize);
    pos += PRP_ENTRY;
    entryInPage++;
    written++;
  }
  return written;
}
