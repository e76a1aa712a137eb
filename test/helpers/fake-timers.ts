/**
 * Fake time for the time seam (common/timers.ts): nothing runs until the test moves time with
 * `advance`, which runs every timer that falls due, earliest first (timers those callbacks set run
 * too when they fall inside the step). As in Node, a delay below 1 ms is 1 ms. Stream and socket
 * events still flow on the real event loop: a test moves time in small steps and awaits a turn
 * between them.
 */
import type { Timer, Timers } from '../../common/timers.js';

interface Fake extends Timer {
  readonly id: number;
  at: number;
  readonly every: number;
  readonly fn: () => void;
}

export class FakeTimers implements Timers {
  private t = 0;
  private nextId = 1;
  private readonly live = new Map<number, Fake>();

  now(): number {
    return this.t;
  }

  wall(): number {
    return 1_800_000_000_000 + this.t;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, 0);
  }

  setInterval(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, Math.max(1, ms));
  }

  clearTimeout(timer: Timer | undefined): void {
    if (timer) this.live.delete((timer as Fake).id);
  }

  clearInterval(timer: Timer | undefined): void {
    this.clearTimeout(timer);
  }

  /** The times the pending timers are due, earliest first (for assertions). */
  get pending(): number[] {
    return [...this.live.values()].map((f) => f.at).sort((a, b) => a - b);
  }

  /** Move time forward by `ms`, firing what falls due on the way, earliest first. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: Fake | undefined;
      for (const f of this.live.values()) if (f.at <= end && (next === undefined || f.at < next.at || (f.at === next.at && f.id < next.id))) next = f;
      if (next === undefined) break;
      this.t = next.at;
      if (next.every > 0) next.at += next.every;
      else this.live.delete(next.id);
      next.fn();
    }
    this.t = end;
  }

  private add(fn: () => void, ms: number, every: number): Fake {
    const f: Fake = { id: this.nextId++, at: this.t + Math.max(1, ms), every, fn, unref() {} };
    this.live.set(f.id, f);
    return f;
  }
}
