/**
 * The container's clock (sandbox/container/clock.ts): monotonic time, sleeps that let the event loop
 * turn (0 ms included: a driver polling in a loop must not starve I/O), and idle() yielding the CPU.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Sys } from 'linux-sys';
import { containerClock } from '../../../sandbox/container/clock.js';

test('now is monotonic, sleep(0) lets an immediate run first, sleep(ms) waits at least about ms, idle yields through the seam', async () => {
  let yields = 0;
  const clock = containerClock({ schedYield: () => void yields++ } as unknown as Sys);
  const a = clock.now();
  let turned = false;
  setImmediate(() => (turned = true));
  await clock.sleep(0);
  assert.ok(turned, 'sleep(0) let the event loop turn');
  const t0 = clock.now();
  await clock.sleep(20);
  assert.ok(clock.now() - t0 >= 15, `slept ${clock.now() - t0} ms`);
  assert.ok(clock.now() >= a);
  clock.idle!();
  assert.is(yields, 1);
});

test.run();
