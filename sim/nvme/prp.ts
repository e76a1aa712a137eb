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
  /** An entry after PRP1 had a non-zero offset, or PRP1 was not dword aligned: PRP Offset Invalid. */
  BAD_OFFSET: 2,
});

export class PrpWalker {
  /** Segment IOVAs and lengths of the last walk. */
  readonly addr: Float64Array;
  readonly len: Uint32Array;
  count = 0;
  private readonly dma: DeviceDma;
  private readonly maxSegments: number;

  constructor(dma: DeviceDma, maxBytes: number) {
    this.dma = dma;
    this.maxSegments = Math.ceil(maxBytes / PAGE) + 1;
    this.addr = new Float64Array(this.maxSegments);
    this.len = new Uint32Array(this.maxSegments);
  }

  /** Describe `bytes` bytes (at most the constructor's maxBytes) given PRP1 and PRP2. */
  walk(prp1: number, prp2: number, bytes: number): number {
    this.count = 0;
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
    while (pagesLeft > 0) {
      const e = this.dma.readU64(entry);
      if (e < 0) return PrpResult.LIST_FAULT;
      if (prpEntryChains(entry & IN_PAGE, pagesLeft, PAGE)) {
        if ((e & LIST_MISALIGNED) !== 0) return PrpResult.BAD_OFFSET;
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
