/**
 * The time a TAP bridge runs on: its retry and back-off timer, the waits of its RX loop after a
 * failing port, the turn it yields after each drain, and the clock its link checks read. Real time
 * by default (`realClock`); tests hand in a fake and move time themselves, so no test sleeps to
 * wait for a timer.
 *
 * The bridge re-arms its timer up to once a millisecond under back-pressure, so a timer is made
 * once and re-armed without allocating (Node's `refresh()` on the same ms).
 */

/** A one-shot timer made once and armed many times. */
export interface BridgeTimer {
  /** Fire once, `ms` from now; an armed timer is moved to `ms` from now. */
  start(ms: number): void;
  /** Disarm; no effect on a timer that is not armed. */
  cancel(): void;
  /** Armed and not yet fired. */
  readonly pending: boolean;
}

export interface BridgeClock {
  /** Monotonic milliseconds. */
  now(): number;
  /** A timer calling `fire` each time it expires. */
  timer(fire: () => void): BridgeTimer;
  /** Resolve after `ms`. */
  sleep(ms: number): Promise<void>;
  /** Resolve on a later turn of the event loop, after pending I/O callbacks, without waiting for time. */
  nextTurn(): Promise<void>;
}

class NodeTimer implements BridgeTimer {
  private handle: NodeJS.Timeout | null = null;
  private ms = -1;
  private armed = false;
  private readonly onTimeout: () => void;

  constructor(fire: () => void) {
    this.onTimeout = () => {
      this.armed = false;
      fire();
    };
  }

  get pending(): boolean {
    return this.armed;
  }

  start(ms: number): void {
    this.armed = true;
    // refresh() re-arms the same timer (fired or not) for its own duration: no allocation.
    if (this.handle !== null && ms === this.ms) {
      this.handle.refresh();
      return;
    }
    if (this.handle !== null) clearTimeout(this.handle);
    this.ms = ms;
    this.handle = setTimeout(this.onTimeout, ms);
  }

  cancel(): void {
    if (this.handle === null) return;
    // A cleared Node timer cannot be refreshed: the next start() makes a new one.
    clearTimeout(this.handle);
    this.handle = null;
    this.armed = false;
  }
}

export const realClock: BridgeClock = Object.freeze({
  now: () => performance.now(),
  timer: (fire: () => void): BridgeTimer => new NodeTimer(fire),
  sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
  nextTurn: () => new Promise<void>((resolve) => setImmediate(resolve)),
});
