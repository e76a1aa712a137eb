/**
 * The manager's time seam: monotonic time and timers, for the supervisor (ready timeout, hang
 * checks, restart backoff, stop deadline) and whatever else must be tested on fake time. The real
 * clock is Node's; tests pass a fake one (test/sandbox/fake-clock.ts) and move time by hand.
 */

/** A timer as the seam hands it out; only the seam that made it may clear it. */
export interface ClockTimer {
  /** Do not keep the process alive for this timer (a bound, not a reason to run). */
  unref(): void;
}

export interface ManagerClock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Wall-clock milliseconds since the epoch (event times, uptime since). */
  wall(): number;
  setTimeout(fn: () => void, ms: number): ClockTimer;
  clearTimeout(timer: ClockTimer | undefined): void;
  setInterval(fn: () => void, ms: number): ClockTimer;
  clearInterval(timer: ClockTimer | undefined): void;
}

export const realClock: ManagerClock = {
  now: () => performance.now(),
  wall: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout | undefined),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (t) => clearInterval(t as NodeJS.Timeout | undefined),
};
