/**
 * Confinement before any driver code: a driver module's top-level code runs when the container
 * evaluates it, after confine() (the container reads the code from fd 4 first and links it only
 * once seccomp is on), so even an open at module evaluation is refused.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { builtFixture, simPolicy, until, withModule } from '../helpers.js';

test("a driver module's top-level code already runs confined: its open at evaluation is refused", async () => {
  const s = new Supervisor(withModule(simPolicy('hostile-top-level'), builtFixture('fixtures/drivers/top-level.js')));
  try {
    await s.start();
    await until('the outcome line', () => s.events.some((e) => e.text.includes('top-level open /etc/passwd: ')), 10_000);
    const line = s.events.find((e) => e.text.includes('top-level open /etc/passwd: '))!.text;
    assert.match(line, /top-level open \/etc\/passwd: refused EPERM$/);
    assert.is(s.state, 'running');
  } finally {
    await s.stop();
  }
});

test.run();
