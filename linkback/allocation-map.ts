/**
 * What a server knows of a device's allocation from the requests it passed on: ranges trimmed
 * (holes) or zeroed (zeroes, and holes unless the client asked for none) until written again.
 * Everything else is "data" (flags 0), which is always a correct answer: it only makes a copy less
 * sparse.
 *
 * An interval set with a cap: sorted, non-overlapping, non-touching-with-equal-flags ranges in three
 * parallel arrays. When a change would pass the cap, the smallest ranges are forgotten (they become
 * "data"), so memory stays bounded whatever a client sends. Changes cost O(ranges) (an array
 * splice); `describe` is a binary search then a walk, allocating nothing.
 *
 * It is correct only if every write to the device goes through the code that feeds it: the map of
 * an NBD export lives in the export (manager side), next to the only path writes take, and outlives
 * the device behind it (a restarted driver container).
 */
import { type ExtentList } from './block-device.js';

export class AllocationMap {
  /** Largest number of ranges held. */
  readonly maxRanges: number;
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private readonly flags: number[] = [];
  /** Ranges forgotten to stay under the cap, for counters. */
  forgotten = 0;

  constructor(maxRanges: number) {
    this.maxRanges = maxRanges;
  }

  /** Ranges held now. */
  get size(): number {
    return this.starts.length;
  }

  /** [offset, offset + length) now has `flags` (0: data, i.e. nothing known). */
  mark(offset: number, length: number, flags: number): void {
    if (length <= 0) return;
    const end = offset + length;
    const { starts, ends } = this;
    const i = this.firstEndingAfter(offset);
    let j = i;
    while (j < starts.length && starts[j]! < end) j++;
    if (flags === 0 && i === j) return; // nothing known there: nothing to forget
    const put: number[] = [];
    if (i < j && starts[i]! < offset) put.push(starts[i]!, offset, this.flags[i]!);
    if (flags !== 0) put.push(offset, end, flags);
    if (i < j && ends[j - 1]! > end) put.push(end, ends[j - 1]!, this.flags[j - 1]!);
    const n = put.length / 3;
    const s: number[] = new Array(n);
    const e: number[] = new Array(n);
    const f: number[] = new Array(n);
    for (let k = 0; k < n; k++) {
      s[k] = put[3 * k]!;
      e[k] = put[3 * k + 1]!;
      f[k] = put[3 * k + 2]!;
    }
    starts.splice(i, j - i, ...s);
    ends.splice(i, j - i, ...e);
    this.flags.splice(i, j - i, ...f);
    // Merge touching ranges of the same flags around what changed (highest first: indices below stay valid).
    for (let k = i + n - 1; k >= i - 1; k--) this.mergeAt(k);
    while (starts.length > this.maxRanges) this.forgetSmallest();
  }

  /**
   * Fill `out` (appending) with the extents of [offset, offset + length): known ranges with their
   * flags, data (0) between them; stops when `out` is full.
   */
  describe(offset: number, length: number, out: ExtentList): void {
    const end = offset + length;
    const { starts, ends, flags } = this;
    let i = this.firstEndingAfter(offset);
    let pos = offset;
    while (pos < end) {
      let to: number;
      let f: number;
      if (i < starts.length && starts[i]! <= pos) {
        to = Math.min(ends[i]!, end);
        f = flags[i]!;
        i++;
      } else {
        to = i < starts.length ? Math.min(starts[i]!, end) : end;
        f = 0;
      }
      if (!out.push(to - pos, f)) return;
      pos = to;
    }
  }

  /** Forget everything (every range reads as data). */
  clear(): void {
    this.starts.length = 0;
    this.ends.length = 0;
    this.flags.length = 0;
  }

  /** Index of the first range ending after `offset` (binary search). */
  private firstEndingAfter(offset: number): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Merge range k with range k + 1 when they touch and have the same flags. */
  private mergeAt(k: number): void {
    const { starts, ends, flags } = this;
    if (k < 0 || k + 1 >= starts.length) return;
    if (ends[k] === starts[k + 1] && flags[k] === flags[k + 1]) {
      ends[k] = ends[k + 1]!;
      starts.splice(k + 1, 1);
      ends.splice(k + 1, 1);
      flags.splice(k + 1, 1);
    }
  }

  private forgetSmallest(): void {
    const { starts, ends } = this;
    let best = 0;
    for (let k = 1; k < starts.length; k++) if (ends[k]! - starts[k]! < ends[best]! - starts[best]!) best = k;
    starts.splice(best, 1);
    ends.splice(best, 1);
    this.flags.splice(best, 1);
    this.forgotten++;
  }
}

/** A request the tracker follows while the device has it: the server's own request slot. */
export interface TrackedRange {
  offset: number;
  length: number;
  /** Another request overlapping this one was in flight at the same time: its outcome is not recorded. */
  tainted: boolean;
  prevTracked: TrackedRange | null;
  nextTracked: TrackedRange | null;
}

/**
 * Feeds an AllocationMap from requests as they pass, so that it never claims more than is true:
 * - a write marks its range data before the device sees it (a query racing the write gets "data");
 * - a trim or write-zeroes records its hole / zeroes only when it succeeded and no overlapping
 *   write, trim or write-zeroes was in flight at any time during it (the device may have applied
 *   them in either order); otherwise the range stays as it was, or data where a write touched it.
 * In-flight requests sit on two intrusive lists (no allocation per request); a write scans only the
 * zeroing requests in flight, which are rare.
 */
export class AllocationTracker {
  readonly map: AllocationMap;
  private writes: TrackedRange | null = null;
  private zeroes: TrackedRange | null = null;

  constructor(map: AllocationMap) {
    this.map = map;
  }

  writeStarted(op: TrackedRange): void {
    this.map.mark(op.offset, op.length, 0);
    taintOverlapping(this.zeroes, op);
    this.writes = push(this.writes, op);
  }

  writeEnded(op: TrackedRange): void {
    this.writes = unlink(this.writes, op);
  }

  zeroStarted(op: TrackedRange): void {
    op.tainted = false;
    if (taintOverlapping(this.writes, op) || taintOverlapping(this.zeroes, op)) op.tainted = true;
    this.zeroes = push(this.zeroes, op);
  }

  /** The trim or write-zeroes finished: with `ok`, its range now has `flags` unless it was tainted. */
  zeroEnded(op: TrackedRange, ok: boolean, flags: number): void {
    this.zeroes = unlink(this.zeroes, op);
    if (ok && !op.tainted) this.map.mark(op.offset, op.length, flags);
  }
}

/** Taint every range of `list` overlapping `op`; true when there was one. */
function taintOverlapping(list: TrackedRange | null, op: TrackedRange): boolean {
  let hit = false;
  const end = op.offset + op.length;
  for (let r = list; r !== null; r = r.nextTracked) {
    if (r.offset < end && op.offset < r.offset + r.length) {
      r.tainted = true;
      hit = true;
    }
  }
  return hit;
}

function push(head: TrackedRange | null, op: TrackedRange): TrackedRange {
  op.prevTracked = null;
  op.nextTracked = head;
  if (head !== null) head.prevTracked = op;
  return op;
}

function unlink(head: TrackedRange | null, op: TrackedRange): TrackedRange | null {
  const { prevTracked: p, nextTracked: n } = op;
  if (p !== null) p.nextTracked = n;
  if (n !== null) n.prevTracked = p;
  op.prevTracked = null;
  op.nextTracked = null;
  return head === op ? n : head;
}
