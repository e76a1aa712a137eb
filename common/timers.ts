/**
 * The time seam: monotonic and wall-clock time and timers, for every bound the manager keeps on a
 * container (HELLO, the heartbeat watchdog, reply deadlines, token buckets, the supervisor's ready
 * timeout, hang checks, restart backoff, stop deadline). Production uses Node's (`realTimers`);
 * tests pass fake time (test/helpers/fake-timers.ts) and move it by hand, so no test sleeps to
 * wait for a timer.
 */

/** A timer as the seam hands it out; only the seam that made it may clear it. */
export interface Timer {
  /** Do not keep the process alive for this timer (a bound, not a reason to run). */
  unref(): void;
}

export interface Timers {
  /** Monotonic milliseconds. */
  now(): number;
  /** Wall-clock milliseconds since the epoch (event times, "up since"). */
  wall(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer | undefined): void;
  setInterval(fn: () => void, ms: number): Timer;
  clearInterval(timer: Timer | undefined): void;
}

export const realTimers: Timers = Object.freeze({
  now: () => performance.now(),
  wall: () => Date.now(),
  setTimeout: (fn: () => void, ms: number): Timer => setTimeout(fn, ms),
  clearTimeout: (t: Timer | undefined) => clearTimeout(t as NodeJS.Timeout | undefined),
  setInterval: (fn: () => void, ms: number): Timer => setInterval(fn, ms),
  clearInterval: (t: Timer | undefined) => clearInterval(t as NodeJS.Timeout | undefined),
});
