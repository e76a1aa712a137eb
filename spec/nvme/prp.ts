/**
 * The PRP rules (NVMe 1.4 §4.3 "Physical Region Page Entry and List"), shared by the side that
 * builds PRPs (drivers/kit/prp.ts, drivers/nvme/ioqueue.ts) and the side that walks them
 * (sim/nvme/prp.ts), so that both agree on every case by construction.
 *
 * A command's data pointer is PRP1 and PRP2 (spec/nvme/queue.ts SQE.PRP1, SQE.PRP2):
 * - PRP1 addresses the first byte; it may carry an offset into its memory page (CC.MPS), which
 *   must be dword aligned (bits 1:0 clear). Every later entry addresses a whole page (offset 0).
 * - A transfer that ends in PRP1's page: PRP2 is not used.
 * - One that ends in the next page: PRP2 addresses that page.
 * - Otherwise PRP2 is a PRP list pointer (qword aligned, and may start inside a page) to the
 *   entries of the remaining pages, in order. When more entries follow than fit in the rest of a
 *   list page, the last entry of that page points to the next list page instead of data.
 */

/** Bytes of one PRP entry: a 64-bit address. */
export const PRP_ENTRY_BYTES = 8;

/** PRP1's offset must be dword aligned: its bits 1:0 are 0. */
export const PRP1_ALIGN = 4;

/**
 * A PRP list pointer in PRP2 is qword aligned and may start inside a page; a chain entry (the last
 * entry of a list page pointing to the next one) is a PRP entry inside a list, so like every such
 * entry it has a page offset of 0 (§4.3; QEMU's controller answers Invalid PRP Offset otherwise).
 */
export const PRP_LIST_ALIGN = PRP_ENTRY_BYTES;

/** What PRP2 holds for a transfer (see `prp2Use`). */
export const Prp2 = Object.freeze({
  /** The transfer ends in PRP1's page: PRP2 is reserved (0). */
  UNUSED: 0,
  /** It ends in the next page: PRP2 addresses that page. */
  PAGE: 1,
  /** It spans more pages: PRP2 points to a PRP list. */
  LIST: 2,
});

/** Memory pages a transfer of `length` bytes touches when its first byte is `offsetInPage` into a page. */
export function prpPageCount(offsetInPage: number, length: number, pageSize: number): number {
  return Math.ceil((offsetInPage + length) / pageSize);
}

/** What PRP2 holds for `length` bytes whose first byte is `offsetInPage` into its memory page. */
export function prp2Use(offsetInPage: number, length: number, pageSize: number): number {
  const end = offsetInPage + length;
  return end <= pageSize ? Prp2.UNUSED : end <= 2 * pageSize ? Prp2.PAGE : Prp2.LIST;
}

/** List entries that fit in one list page. */
export function prpEntriesPerPage(pageSize: number): number {
  return pageSize / PRP_ENTRY_BYTES;
}

/**
 * Whether the list entry at byte `entryOffsetInPage` of its list page is a chain pointer to the
 * next list page rather than a data page, when `pagesLeft` data pages (this one included) still
 * need an entry: it is the page's last entry and more than one page is left.
 */
export function prpEntryChains(entryOffsetInPage: number, pagesLeft: number, pageSize: number): boolean {
  return entryOffsetInPage === pageSize - PRP_ENTRY_BYTES && pagesLeft > 1;
}

/**
 * Entries (data entries and chain pointers) of the PRP list for a transfer touching `dataPages`
 * pages, the list starting at the beginning of a list page: 0 when no list is needed.
 */
export function prpListEntries(dataPages: number, pageSize: number): number {
  const listed = dataPages - 1;
  // One page: PRP1 alone; two: PRP1 and PRP2 (§4.3). Only beyond that is there a list.
  if (listed <= 1) return 0;
  const perPage = prpEntriesPerPage(pageSize);
  // Every full list page but the last gives its last entry to the chain pointer.
  let entries = 0;
  let left = listed;
  while (left > perPage) {
    entries += perPage;
    left -= perPage - 1;
  }
  return entries + left;
}

/**
 * The largest transfer (bytes, from a page-aligned start) a list of `listPages` page-aligned list
 * pages describes: PRP1's page plus every entry but the chain pointers.
 */
export function prpMaxTransfer(listPages: number, pageSize: number): number {
  return (listPages * (prpEntriesPerPage(pageSize) - 1) + 1 + 1) * pageSize;
}
