/**
 * The hypercall endpoints' time seam: monotonic time and timers, for the HELLO timeout, the
 * heartbeat watchdog and the guest's heartbeats, every request's reply deadline and the token
 * buckets. Production uses Node's (`realTimers`); tests pass fake time and move it by hand, so no
 * test sleeps to wait for a timer. The shape is the manager's clock seam's (now, setTimeout,
 * clearTimeout, setInterval, clearInterval; handles that can be unref'd), so one object can serve
 * both.
 */

/** A timer as the seam hands it out; only the seam that made it may clear it. */
export interface TimerHandle {
  /** Do not keep the process alive for this timer (a bound, not a reason to run). */
  unref(): void;
}

export interface Timers {
  /** Monotonic milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(timer: TimerHandle | undefined): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(timer: TimerHandle | undefined): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout | undefined),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (t) => clearInterval(t as NodeJS.Timeout | undefined),
};
