/**
 * The model's fault switches for tests, beside the function's own hang switch (PciFunction.hang):
 * `swallow(n)` fetches the next n I/O commands and never completes them; an Abort (§5.1) naming
 * one completes it as aborted, unless `unabortable` is set (then only a reset frees it).
 * (Controller fatal status and injected completions are SimNvme's `fatal()` and `injectCompletion()`.)
 */

export class FaultSwitches {
  /** Held commands are immune to Abort: Abort answers "not aborted", which forces a reset. */
  unabortable = false;
  /** Commands fetched and held, as sqid << 16 | cid. */
  private readonly held = new Set<number>();
  private swallowNext = 0;

  /** Fetch the next `n` I/O commands and never complete them. */
  swallow(n: number): void {
    this.swallowNext = n;
  }

  /** For each fetched I/O command: true when it is to be held (swallowed). One compare while disarmed. */
  hold(sqid: number, cid: number): boolean {
    if (this.swallowNext === 0) return false;
    this.swallowNext--;
    this.held.add(key(sqid, cid));
    return true;
  }

  /** An Abort names command `cid` of SQ `sqid`: true when it was held and may be aborted (it is let go). */
  release(sqid: number, cid: number): boolean {
    return !this.unabortable && this.held.delete(key(sqid, cid));
  }

  /** SQ `sqid` was deleted: its held commands are dropped (a real device would complete them as aborted). */
  dropQueue(sqid: number): void {
    for (const k of [...this.held]) if (k >>> 16 === sqid) this.held.delete(k);
  }

  /** Controller reset: nothing is held and nothing is armed. */
  clear(): void {
    this.held.clear();
    this.swallowNext = 0;
  }
}

function key(sqid: number, cid: number): number {
  return ((sqid << 16) | cid) >>> 0;
}
