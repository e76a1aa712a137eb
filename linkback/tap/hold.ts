/**
 * Frames held across a driver restart. At suspend() the queued frames are copied out of the old
 * port's TX buffers into the bridge's own memory (made at the first suspension, `maxFrame` bytes
 * per queue entry) and the buffers given back, so the bridge keeps no view of the old port and its
 * driver may unmap its windows. At resume() they are copied into the new port's buffers, in order.
 * A frame whose memory is gone (the old port throws or reports an offset outside its memory), or
 * that the new port has no buffer for or cannot send (or that was not copied when the new port
 * threw), is counted in `swapDrops`.
 *
 * While held, the queue's buffer indices are slots of the holding area, not port buffers.
 */
import type { BridgeCounters } from './counters.js';
import type { NicPort } from './nic-port.js';
import type { TxPump } from './tx-pump.js';

export class HoldArea {
  private held: Uint8Array | null = null;
  private slot = 0;
  private readonly counters: BridgeCounters;

  constructor(counters: BridgeCounters) {
    this.counters = counters;
  }

  /** Queued frames out of the old port's buffers into the holding area; each buffer given back. */
  hold(tx: TxPump, old: NicPort): void {
    const q = tx.queue,
      meta = tx.meta;
    if (this.held === null) {
      this.slot = old.maxFrame;
      this.held = new Uint8Array(q.capacity * this.slot);
    }
    const held = this.held,
      slot = this.slot;
    let oldBytes: Uint8Array | null = null;
    try {
      oldBytes = old.txBytes;
    } catch {
      /* the old port is gone with its memory */
    }
    let kept = 0;
    for (let i = 0; i < q.count; i++) {
      const buf = q.buf[i]!,
        len = q.len[i]!,
        m = meta[i]!;
      let src = -1;
      try {
        src = old.txOffset(buf);
      } catch {
        /* as above */
      }
      if (oldBytes !== null && src >= 0 && src + len <= oldBytes.length && len <= slot) {
        held.set(oldBytes.subarray(src, src + len), kept * slot);
        kept = keep(tx, kept, kept, len, m);
      } else {
        this.counters.events.swapDrops++;
      }
      try {
        old.txFree(buf);
      } catch {
        /* a dead port's buffers die with it */
      }
    }
    q.count = kept;
  }

  /** Held frames into the new port's TX buffers, in order; the queue holds its buffers again. */
  restore(tx: TxPump, next: NicPort): void {
    const q = tx.queue,
      meta = tx.meta;
    const held = this.held,
      slot = this.slot;
    if (held === null) return; // never suspended with a port: nothing held
    let kept = 0,
      i = 0;
    try {
      const bytes = next.txBytes;
      for (; i < q.count; i++) {
        const len = q.len[i]!,
          m = meta[i]!,
          from = q.buf[i]! * slot;
        const nb = len <= next.maxFrame ? next.txAlloc() : -1;
        if (nb < 0) {
          this.counters.events.swapDrops++;
          continue;
        }
        bytes.set(held.subarray(from, from + len), next.txOffset(nb));
        kept = keep(tx, kept, nb, len, m);
      }
    } catch (e) {
      // The new port failed already: what was not copied is lost with the restart.
      this.counters.portError(e);
      this.counters.events.swapDrops += q.count - i;
    }
    q.count = kept;
  }
}

/** Entry `at` of the queue becomes (buf, len, meta); returns the next free entry. */
function keep(tx: TxPump, at: number, buf: number, len: number, m: number): number {
  tx.queue.buf[at] = buf;
  tx.queue.len[at] = len;
  tx.meta[at] = m;
  return at + 1;
}
