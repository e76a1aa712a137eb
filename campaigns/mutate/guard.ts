/**
 * The loop guard a mutant's loops call (instrument.ts puts it in every `for`/`while` condition and
 * around every `for...of` iterable): a mutant that loops forever without yielding would stop the
 * event loop, and with it the trial's own watchdog. Every 1024 iterations the guard looks at the
 * clock; the first look in a turn of the event loop starts that turn's clock (a `setImmediate`
 * ends it), and a turn that has run loops for longer than the budget throws ERR_INJECTED_LOOP into
 * the driver's code, at once and at every later look in that turn. Legitimate driver code never
 * spends a second in one synchronous turn; a mutant that does is the fault, bounded.
 */
import { InjectError } from '../inject/errors.js';

let budgetMs = 1000;
let count = 0;
let turnStart = -1;

function endTurn(): void {
  turnStart = -1;
}

/** The budget of one synchronous turn, ms (tests shorten it). Returns the previous one. */
export function setGuardBudget(ms: number): number {
  const old = budgetMs;
  budgetMs = ms;
  return old;
}

/** Called on every iteration of a mutant's loop; true, or throws once the turn is over budget. */
export function guard(): boolean {
  if ((++count & 0x3ff) !== 0) return true;
  const now = performance.now();
  if (turnStart < 0) {
    turnStart = now;
    setImmediate(endTurn);
    return true;
  }
  if (now - turnStart > budgetMs)
    throw new InjectError('ERR_INJECTED_LOOP', `a mutant's loop ran ${Math.round(now - turnStart)} ms without yielding (budget ${budgetMs} ms)`);
  return true;
}

/** A `for...of` iterable, guarded per element. */
export function* guardIter<T>(items: Iterable<T>): Generator<T> {
  for (const x of items) {
    guard();
    yield x;
  }
}
