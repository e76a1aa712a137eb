/**
 * The real clock's timer, on real time but without sleeping: each check waits for a timer's own
 * callback (an awaited event), with a later timer as the fence for "did not fire again".
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { realClock } from '../../../linkback/tap/clock.js';

/** Resolves when a fresh timer of `ms` fires. */
function fence(ms: number): Promise<void> {
  return new Promise((resolve) => realClock.timer(resolve).start(ms));
}

test('a timer fires once per start; restarting an armed timer moves it rather than adding a second firing', async () => {
  let fired = 0;
  let wake: () => void = () => undefined;
  const t = realClock.timer(() => {
    fired++;
    wake();
  });
  assert.not.ok(t.pending);
  const first = new Promise<void>((r) => {
    wake = r;
  });
  t.start(2);
  t.start(2); // refresh: still one firing
  assert.ok(t.pending);
  await first;
  assert.not.ok(t.pending);
  await fence(10);
  assert.is(fired, 1);
  // Re-armed after firing (the same Node timer, refreshed).
  const second = new Promise<void>((r) => {
    wake = r;
  });
  t.start(2);
  await second;
  assert.is(fired, 2);
});

test('cancel disarms; a cancelled timer can be started again, also with another duration', async () => {
  let fired = 0;
  let wake: () => void = () => undefined;
  const t = realClock.timer(() => {
    fired++;
    wake();
  });
  t.start(1);
  t.cancel();
  assert.not.ok(t.pending);
  t.cancel(); // no effect when not armed
  await fence(10);
  assert.is(fired, 0, 'a cancelled timer does not fire');
  const again = new Promise<void>((r) => {
    wake = r;
  });
  t.start(3);
  t.start(1); // another duration: moved to 1 ms
  await again;
  await fence(10);
  assert.is(fired, 1);
});

test('now() is monotonic, sleep() and nextTurn() resolve', async () => {
  const a = realClock.now();
  await realClock.nextTurn();
  await realClock.sleep(1);
  assert.ok(realClock.now() >= a);
});

test.run();
