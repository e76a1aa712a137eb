/**
 * Confinement before any driver code: a driver module's top-level code runs when the container
 * evaluates it, after confine() (the container reads the code from fd 4 first and links it only
 * once seccomp is on), so even an open at module evaluation is refused. The same holds for a
 * prepared spare, which evaluates the code before it takes over (sandbox/container/prepare.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import type { Spare } from '../../../sandbox/manager/spare.js';
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

test("a prepared spare evaluates the driver's code before it takes over, confined all the same: the open is refused there too", async () => {
  const policy = withModule(
    simPolicy('hostile-top-spare', '', '{ maxRestarts: 5, window: 60s, backoff: { initial: 1ms, max: 1ms } }'),
    builtFixture('fixtures/drivers/top-level.js'),
  );
  const s = new Supervisor(policy, { spares: true });
  try {
    await s.start();
    const spares = s as unknown as { spareDriver?: Spare };
    await until('the spare launched', () => spares.spareDriver?.usable === true, 20_000);
    const pid = spares.spareDriver!.launched!.pid;
    assert.ok(spares.spareDriver!.prepared);
    const before = s.events.length;
    const old = s.pid!;
    s.kill('test');
    await until('the spare serving', () => s.state === 'running' && s.pid !== undefined && s.pid !== old, 20_000);
    assert.is(s.pid, pid, 'the spare took over');
    const after = s.events.slice(before).map((e) => e.text);
    assert.ok(
      after.some((t) => t.includes('(a spare, before the takeover, where it evaluated the driver')),
      after.join('\n'),
    );
    const line = after.find((t) => t.includes('top-level open /etc/passwd: '));
    assert.ok(line, after.join('\n'));
    assert.match(line, /top-level open \/etc\/passwd: refused EPERM$/);
  } finally {
    await s.stop();
  }
});

test.run();
