/**
 * The device side of PRPs (NVMe 1.4 §4.3, memory page size 4 KiB from CC.MPS = 0): turn PRP1,
 * PRP2 and any PRP lists into a list of (IOVA, length) segments, reading list pages through the
 * IOMMU, by the rules of spec/nvme/prp.ts (the driver's kit builds PRPs by the same rules).
 * Segments go into preallocated typed arrays: nothing is allocated per command.
 */
import type { DeviceDma } from '../dma.js';
import { memoryPageBytes } from '../../spec/nvme/registers.js';
import { PRP1_ALIGN, PRP_ENTRY_BYTES, PRP_LIST_ALIGN, prp2Use, Prp2, prpEntryChains, prpPageCount } from '../../spec/nvme/prp.js';

/** The memory page the model supports (CC.MPS = 0). */
export const PAGE = memoryPageBytes(0);
/**
 * Offsets and alignments are taken with bit masks, not `%`: an IOVA is an integer below 2^53
 * held as a double, and `x & m` (on the low 32 bits) is exact for these masks where `x % m` on a
 * double costs a floating-point remainder.
 */
const IN_PAGE = PAGE - 1;
const PRP1_MISALIGNED = PRP1_ALIGN - 1;
const LIST_MISALIGNED = PRP_LIST_ALIGN - 1;

/** Why a walk failed; `ok` otherwise. */
export const PrpResult = Object.freeze({
  OK: 0,
  /** A list page could not be read through the IOMMU: Data Transfer Error. */
  LIST_FAULT: 1,
  /**
   * An entry after PRP1 (data or chain pointer) had a non-zero offset, PRP1 was not dword aligned,
   * or PRP2 as a list pointer was not qword aligned: Invalid PRP Offset.
   */
  BAD_OFFSET: 2,
  /**
   * The list is not one the transfer can have: a chain pointer to a list page already walked, more
   * chain pointers than the transfer's length needs, or a length beyond what the walker was built
   * for. Invalid Field in Command (PRP2 names an unusable list).
   */
  BAD_LIST: 3,
});

/**
 * Chain pointers a PRP list needs (§4.3) when its first entry is `entryOffset` bytes into a list
 * page and `entries` data entries are to come: the first page holds (page - offset) / 8 entries,
 * every later page 511 data entries and a chain pointer, the last one up to 512.
 */
export function prpChainsNeeded(entryOffset: number, entries: number, pageSize: number): number {
  const perPage = pageSize / PRP_ENTRY_BYTES;
  const first = (pageSize - entryOffset) / PRP_ENTRY_BYTES;
  if (entries <= first) return 0;
  const left = entries - (first - 1);
  return left <= perPage ? 1 : 1 + Math.ceil((left - perPage) / (perPage - 1));
}

export class PrpWalker {
  /** Segment IOVAs and lengths of the last walk. */
  readonly addr: Float64Array;
  readonly len: Uint32Array;
  count = 0;
  private readonly dma: DeviceDma;
  private readonly maxBytes: number;
  private readonly maxSegments: number;
  /** List pages walked by the current walk (page addresses), to refuse a chain that revisits one. */
  private readonly listPages: Float64Array;

  constructor(dma: DeviceDma, maxBytes: number) {
    this.dma = dma;
    this.maxBytes = maxBytes;
    this.maxSegments = Math.ceil(maxBytes / PAGE) + 1;
    this.addr = new Float64Array(this.maxSegments);
    this.len = new Uint32Array(this.maxSegments);
    // The most list pages any walk may touch: the first (PRP2 at its last entry) plus the chains.
    this.listPages = new Float64Array(1 + prpChainsNeeded(PAGE - PRP_ENTRY_BYTES, this.maxSegments, PAGE));
  }

  /**
   * Describe `bytes` bytes (at most the constructor's maxBytes) given PRP1 and PRP2. Bounded: the
   * list entries read are at most the pages the length needs plus the chain pointers that many
   * pages need (§4.3: the length fixes the number of entries), whatever the list holds.
   */
  walk(prp1: number, prp2: number, bytes: number): number {
    this.count = 0;
    if (!(bytes > 0 && bytes <= this.maxBytes)) return PrpResult.BAD_LIST;
    if ((prp1 & PRP1_MISALIGNED) !== 0) return PrpResult.BAD_OFFSET;
    const inPage = prp1 & IN_PAGE;
    const first = Math.min(bytes, PAGE - inPage);
    this.push(prp1, first);
    let left = bytes - first;
    const use = prp2Use(inPage, bytes, PAGE);
    if (use === Prp2.UNUSED) return PrpResult.OK;
    if (use === Prp2.PAGE) {
      // PRP2 is the second (and last) page: it must have no offset.
      if ((prp2 & IN_PAGE) !== 0) return PrpResult.BAD_OFFSET;
      this.push(prp2, left);
      return PrpResult.OK;
    }
    // PRP2 points into a PRP list (qword aligned, may start mid-page); the last entry of a list
    // page chains to the next list page when more than one page is still to come.
    if ((prp2 & LIST_MISALIGNED) !== 0) return PrpResult.BAD_OFFSET;
    let entry = prp2;
    let pagesLeft = prpPageCount(inPage, bytes, PAGE) - 1;
    const maxChains = prpChainsNeeded(prp2 & IN_PAGE, pagesLeft, PAGE);
    const pages = this.listPages;
    pages[0] = prp2 - (prp2 & IN_PAGE);
    let chains = 0;
    while (pagesLeft > 0) {
      const e = this.dma.readU64(entry);
      if (e < 0) return PrpResult.LIST_FAULT;
      if (prpEntryChains(entry & IN_PAGE, pagesLeft, PAGE)) {
        // A chain pointer is an entry of the list: page offset 0, like every entry after PRP1.
        if ((e & IN_PAGE) !== 0) return PrpResult.BAD_OFFSET;
        if (chains === maxChains) return PrpResult.BAD_LIST;
        for (let i = 0; i <= chains; i++) if (pages[i] === e) return PrpResult.BAD_LIST;
        pages[++chains] = e;
        entry = e;
        continue;
      }
      if ((e & IN_PAGE) !== 0) return PrpResult.BAD_OFFSET;
      const n = Math.min(left, PAGE);
      this.push(e, n);
      left -= n;
      pagesLeft--;
      entry += PRP_ENTRY_BYTES;
    }
    return PrpResult.OK;
  }

  /** Copy `len` bytes from `src[off..]` to the walked segments (device writes host memory). */
  toHost(src: Uint8Array, off: number): boolean {
    for (let i = 0; i < this.count; i++) {
      const n = this.len[i]!;
      if (!this.dma.write(this.addr[i]!, src, off, n)) return false;
      off += n;
    }
    return true;
  }

  /** Copy from the walked segments into `dst[off..]` (device reads host memory). */
  fromHost(dst: Uint8Array, off: number): boolean {
    for (let i = 0; i < this.count; i++) {
      const n = this.len[i]!;
      if (!this.dma.read(this.addr[i]!, dst, off, n)) return false;
      off += n;
    }
    return true;
  }

  private push(addr: number, len: number): void {
    // Merge with the previous segment when contiguous (fewer IOMMU checks and copies).
    const c = this.count;
    if (c > 0 && this.addr[c - 1]! + this.len[c - 1]! === addr) {
      this.len[c - 1] = this.len[c - 1]! + len;
      return;
    }
    this.addr[c] = addr;
    this.len[c] = len;
    this.count = c + 1;
  }
}
