/**
 * A hostile 82574L in the manner of Thunderclap (Markettos et al., NDSS 2019), who ran QEMU's
 * e1000e model on an FPGA and, from its transmit-descriptor hooks, read the whole page around each
 * buffer, wrote into neighbouring pages, and kept using buffer addresses after the driver had
 * reclaimed them. The fault class `e1000e.thunderclap` makes the model do the same on every TX
 * descriptor the plan fires on:
 *
 * - reads every page from `span` pages before the buffer's page to `span` pages after its end;
 * - with `write=1`, writes 64 bytes of 7Ch at the start of the page before and the page after;
 * - reads again (and, with `write=1`, writes into) the last `reuse` buffer addresses it was given,
 *   which the driver has reclaimed and handed out again since.
 *
 * Every access goes through the function's IOMMU-checked DMA engine, one page (or one buffer) at a
 * time, and is recorded: refused ones must each have left exactly one IOMMU fault naming this
 * function (checked at the access: `unlogged` counts any that did not); allowed ones are kept per
 * page. `thunderclapReport` sets them against the sandbox's windows: what the device could not
 * reach, and what it could still see and change inside the sandbox's own windows (SADA's and
 * Thunderclap's sub-page lesson: what shares a page, or a window, with a DMA buffer is exposed).
 */
import type { FaultInjector } from '../faults/injector.js';
import type { E1000eCore } from './core.js';

const PAGE = 4096;
/** Bytes re-read at a reclaimed buffer address: one RX/TX buffer of the driver (2 KiB). */
const BUFFER = 2048;
const MARK = 0x7c;
const MARK_BYTES = 64;

/** What the hostile device got out of one page (IOVA-aligned). */
export interface PageSeen {
  readonly iova: number;
  /** Bytes read and written that the IOMMU allowed. */
  read: number;
  written: number;
  /** Accesses the IOMMU refused. */
  refused: number;
  /** Non-zero bytes among those read: there was data to see. */
  nonZero: number;
  /** Why the device went there: the buffer's own page, pages beyond it, neighbour writes, reused addresses. */
  readonly why: Set<'page' | 'beyond' | 'neighbour' | 'reuse'>;
}

export class Thunderclap {
  /** Accesses made, and refused by the IOMMU. */
  accesses = 0;
  refused = 0;
  /** Refused accesses that did not leave exactly one IOMMU fault naming this function: must stay 0. */
  unlogged = 0;
  /** Reads of reclaimed buffer addresses the IOMMU allowed: data of later packets seen. */
  reuseHits = 0;
  readonly pages = new Map<number, PageSeen>();
  private readonly span: number;
  private readonly write: boolean;
  private readonly recent: number[] = [];
  private readonly reuse: number;
  private readonly scratch = new Uint8Array(PAGE);
  private readonly mark = new Uint8Array(MARK_BYTES).fill(MARK);

  constructor(
    private readonly injector: FaultInjector,
    private readonly core: E1000eCore,
  ) {
    this.span = injector.num('span');
    this.write = injector.num('write') === 1;
    this.reuse = injector.num('reuse');
  }

  /** A TX descriptor with a buffer at `addr` of `len` bytes was processed. */
  txDescriptor(addr: number, len: number): void {
    if (len > 0 && this.injector.fire()) {
      const first = Math.floor(addr / PAGE) * PAGE;
      const last = Math.floor((addr + Math.max(len, 1) - 1) / PAGE) * PAGE;
      for (let p = first - this.span * PAGE; p <= last + this.span * PAGE; p += PAGE) {
        if (p >= 0) this.access(p, PAGE, 'read', p >= first && p <= last ? 'page' : 'beyond');
      }
      if (this.write) {
        if (first >= PAGE) this.access(first - PAGE, MARK_BYTES, 'write', 'neighbour');
        this.access(last + PAGE, MARK_BYTES, 'write', 'neighbour');
      }
      for (const old of this.recent) {
        if (old === addr) continue;
        if (this.access(old, BUFFER, 'read', 'reuse')) this.reuseHits++;
        if (this.write) this.access(old, MARK_BYTES, 'write', 'reuse');
      }
    }
    if (this.reuse > 0 && !this.recent.includes(addr)) {
      this.recent.push(addr);
      if (this.recent.length > this.reuse) this.recent.shift();
    }
  }

  private access(iova: number, len: number, kind: 'read' | 'write', why: 'page' | 'beyond' | 'neighbour' | 'reuse'): boolean {
    const core = this.core;
    const fn = core.fn!;
    const before = fn.iommu.faultCount;
    const ok = kind === 'read' ? core.dmaRead(iova, this.scratch, 0, len) : core.dmaWrite(iova, this.mark, 0, len);
    this.accesses++;
    const page = Math.floor(iova / PAGE) * PAGE;
    let seen = this.pages.get(page);
    if (seen === undefined) {
      seen = { iova: page, read: 0, written: 0, refused: 0, nonZero: 0, why: new Set() };
      this.pages.set(page, seen);
    }
    seen.why.add(why);
    if (!ok) {
      this.refused++;
      seen.refused++;
      const f = fn.iommu.faults(fn.address).at(-1);
      if (fn.iommu.faultCount !== before + 1 || f === undefined || f.iova !== iova || f.access !== kind) this.unlogged++;
      return false;
    }
    if (kind === 'read') {
      seen.read += len;
      for (let i = 0; i < len; i++) if (this.scratch[i] !== 0) seen.nonZero++;
    } else {
      seen.written += len;
    }
    return true;
  }
}

/** One of the sandbox's DMA windows, as the report names it. */
export interface ReportWindow {
  readonly label: string;
  readonly iova: number | bigint;
  readonly size: number;
  /** What it holds: 'descriptors', 'packets', or anything else worth saying. */
  readonly holds: string;
}

export interface ThunderclapReport {
  readonly device: string;
  readonly accesses: number;
  /** Accesses the IOMMU refused, and of those, how many left no fault naming the device (must be 0). */
  readonly refused: number;
  readonly refusedUnlogged: number;
  /** Pages the device reached that lie in none of the sandbox's windows (must be 0: the IOMMU let them through). */
  readonly outsideWindowsAllowed: number;
  /** What the device could still see and change, per window of the sandbox. */
  readonly inside: readonly {
    window: string;
    holds: string;
    pagesRead: number;
    bytesRead: number;
    bytesWritten: number;
    nonZeroBytesSeen: number;
    reusedAddresses: boolean;
  }[];
  readonly reuseHits: number;
  /** The same for people. */
  readonly text: string;
}

/** Set what the hostile device did against the sandbox's windows. */
export function thunderclapReport(t: Thunderclap, device: string, windows: readonly ReportWindow[]): ThunderclapReport {
  const inside = windows.map((w) => ({
    window: w.label,
    holds: w.holds,
    pagesRead: 0,
    bytesRead: 0,
    bytesWritten: 0,
    nonZeroBytesSeen: 0,
    reusedAddresses: false,
  }));
  let outside = 0;
  for (const p of t.pages.values()) {
    if (p.read === 0 && p.written === 0) continue;
    const i = windows.findIndex((w) => p.iova >= Number(w.iova) && p.iova < Number(w.iova) + w.size);
    if (i < 0) {
      outside++;
      continue;
    }
    const s = inside[i]!;
    if (p.read > 0) s.pagesRead++;
    s.bytesRead += p.read;
    s.bytesWritten += p.written;
    s.nonZeroBytesSeen += p.nonZero;
    if (p.why.has('reuse')) s.reusedAddresses = true;
  }
  const lines = [
    `hostile 82574L at ${device}: ${t.accesses} accesses, ${t.refused} refused by the IOMMU (${t.unlogged} of them not logged as its faults), ${outside} pages reached outside the sandbox's windows`,
    'what a malicious device can still see inside the sandbox:',
    ...inside
      .filter((s) => s.bytesRead > 0 || s.bytesWritten > 0)
      .map(
        (s) =>
          `  ${s.window} (${s.holds}): ${s.bytesRead} bytes read over ${s.pagesRead} pages (${s.nonZeroBytesSeen} non-zero), ${s.bytesWritten} bytes written${s.reusedAddresses ? ', reclaimed buffers read again' : ''}`,
      ),
  ];
  return {
    device,
    accesses: t.accesses,
    refused: t.refused,
    refusedUnlogged: t.unlogged,
    outsideWindowsAllowed: outside,
    inside,
    reuseHits: t.reuseHits,
    text: lines.join('\n'),
  };
}
