/**
 * A fake ManagerClock (sandbox/manager/clock.ts) for tests: time moves only when the test says
 * (`advance`), and timers due by then run in order of their due time. Nothing sleeps.
 */
import type { ClockTimer, ManagerClock } from '../../sandbox/manager/clock.js';

interface Timer extends ClockTimer {
  due: number;
  fn: () => void;
  every: number | undefined;
  seq: number;
  cleared: boolean;
}

export class FakeClock implements ManagerClock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Set<Timer>();

  now(): number { return this.t; }
  wall(): number { return 1_800_000_000_000 + this.t; }

  setTimeout(fn: () => void, ms: number): ClockTimer { return this.add(fn, ms, undefined); }
  setInterval(fn: () => void, ms: number): ClockTimer { return this.add(fn, ms, Math.max(1, ms)); }
  clearTimeout(timer: ClockTimer | undefined): void { this.clear(timer); }
  clearInterval(timer: ClockTimer | undefined): void { this.clear(timer); }

  /** Timers pending, with the time each is due (for assertions). */
  get pending(): number[] {
    return [...this.timers].map((x) => x.due).sort((a, b) => a - b);
  }

  /** Move time forward by `ms`, running every timer due by then, in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const x of this.timers) if (x.due <= end && (!next || x.due < next.due || (x.due === next.due && x.seq < next.seq))) next = x;
      if (!next) break;
      this.t = Math.max(this.t, next.due);
      if (next.every !== undefined) { next.due += next.every; next.seq = this.seq++; } else this.timers.delete(next);
      next.fn();
    }
    this.t = end;
  }

  private add(fn: () => void, ms: number, every: number | undefined): ClockTimer {
    const timer: Timer = { due: this.t + Math.max(0, ms), fn, every, seq: this.seq++, cleared: false, unref() {} };
    this.timers.add(timer);
    return timer;
  }

  private clear(timer: ClockTimer | undefined): void {
    if (timer) this.timers.delete(timer as Timer);
  }
}
