/**
 * Fake time for the bridge tests: a BridgeClock whose milliseconds pass only when a test calls
 * `advance(ms)`, firing due timers in order and letting the event loop run after each. Nothing
 * here sleeps: what is not a timer (the fake TAP's readability, promise chains, the bridge's yields)
 * runs on the real event loop, and tests wait for it with `turns()`, bounded in event-loop turns.
 */
import type { BridgeClock, BridgeTimer } from '../../../linkback/tap/clock.js';

interface Entry {
  due: number;
  seq: number;
  fire: () => void;
}

/** Let the event loop run `n` times (immediates, I/O callbacks, every microtask between them). */
export async function spin(n = 8): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Wait, in event-loop turns (no time passes), until `cond` holds; fails after `maxTurns`. */
export async function turns(cond: () => boolean, what: string, maxTurns = 20_000): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i >= maxTurns) throw new Error(`still waiting for ${what} after ${maxTurns} event-loop turns`);
    await new Promise<void>((r) => setImmediate(r));
  }
}

export class FakeClock implements BridgeClock {
  private t = 0;
  private seq = 0;
  private readonly entries = new Set<Entry>();

  now(): number {
    return this.t;
  }

  /** Timers armed now. */
  get pending(): number {
    return this.entries.size;
  }

  timer(fire: () => void): BridgeTimer {
    let entry: Entry | null = null;
    const entries = this.entries;
    const onFire = (): void => {
      entry = null;
      fire();
    };
    return {
      start: (ms: number) => {
        if (entry !== null) entries.delete(entry);
        entry = this.schedule(ms, onFire);
      },
      cancel: () => {
        if (entry !== null) entries.delete(entry);
        entry = null;
      },
      get pending() {
        return entry !== null;
      },
    };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.schedule(ms, resolve);
    });
  }

  nextTurn(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  /** Move time on by `ms`, firing every timer that falls due, in order, the event loop running after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await spin();
    for (;;) {
      let next: Entry | null = null;
      for (const e of this.entries) {
        if (e.due <= end && (next === null || e.due < next.due || (e.due === next.due && e.seq < next.seq))) next = e;
      }
      if (next === null) break;
      this.entries.delete(next);
      this.t = next.due;
      next.fire();
      await spin();
    }
    this.t = end;
    await spin();
  }

  /**
   * Advance by `ms` and return what `p` settles to, failing if it has not settled by then: for
   * calls bounded by the bridge's timers (stop() within `waitMs`).
   */
  async within<T>(p: Promise<T>, ms: number): Promise<T> {
    let settled = false;
    p.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await this.advance(ms);
    if (!settled) throw new Error(`not settled within ${ms} ms of fake time`);
    return p;
  }

  private schedule(ms: number, fire: () => void): Entry {
    const e: Entry = { due: this.t + Math.max(0, ms), seq: this.seq++, fire };
    this.entries.add(e);
    return e;
  }
}
