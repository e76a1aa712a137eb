/**
 * A device model that works forever, at the device process boundary. A driver whose attack makes
 * a model loop (a PRP list chaining to itself) is impossible to build once the models are bounded,
 * so the hang is a device-process fixture (fixtures/device.ts, mode `hang`, given by
 * fixtures/device-launcher.ts to the first device process only: it spins 200 ms after READY, the
 * ones after it behave). Before the device process existed
 * the model ran in the manager, and such a loop stopped the manager's event loop, every sandbox
 * with it. Now: the manager's loop never stalls, the hung device process is killed at the
 * heartbeat bound, the sandbox restarts with a fresh device process and serves, the data written
 * before is intact, and a bystander sandbox serves all along.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { deviceFixture, loopGapMeter, pattern, simPolicy, until } from '../helpers.js';
import { fixtureLauncher } from '../fixtures/device-launcher.js';

test('a device model that hangs: the manager stays responsive, the device is restarted, a bystander keeps serving', async () => {
  const bystander = new Supervisor(simPolicy('hostile-device-bystander'));
  const s = new Supervisor(simPolicy('hostile-device-hang'), {
    ...deviceFixture('hang'),
    // Only the first device process hangs; its successor behaves.
    launcher: fixtureLauncher({ mode: (n) => (n === 0 ? 'hang' : 'control') }),
    deviceHeartbeatMs: 100,
  });
  const gap = loopGapMeter();
  let served = 0,
    running = true;
  try {
    await bystander.start();
    const d = pattern(4096, 3);
    await bystander.block.write(0, d);
    const reads = (async () => {
      while (running) {
        assert.equal(await bystander.block.read(0, 8), d);
        served++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const hungPid = await new Promise<number>((resolve) => {
      s.on('event', (e) => {
        const m = /^device process pid (\d+)/.exec(e.text);
        if (e.kind === 'device' && m) resolve(Number(m[1]));
      });
      s.start().catch(() => undefined);
    });
    await until('the hung device process to be killed and the sandbox to serve again', () => s.restarts >= 1 && s.state === 'running', 30_000);
    const texts = s.events.map((e) => `${e.kind}: ${e.text}`);
    assert.ok(
      texts.some((t) => t.includes('fixture: hangs in 200 ms')),
      texts.join('\n'),
    );
    assert.ok(
      texts.some((t) => t.startsWith('device: ') && t.includes('no heartbeat for 400 ms')),
      texts.join('\n'),
    );
    assert.is.not((s.status().deviceProcess as { pid: number }).pid, hungPid, 'a fresh device process');
    const a = pattern(8192, 9);
    await s.block.write(64, a);
    assert.equal(await s.block.read(64, 16), a, 'the restarted sandbox serves');
    const before = served;
    await until('the bystander to serve on', () => served > before + 5, 10_000);
    running = false;
    await reads;
    assert.is(bystander.restarts, 0, 'the bystander never noticed');
    assert.ok(gap.maxGap < 1000, `the manager's event loop never stalled (${Math.round(gap.maxGap)} ms at most)`);
  } finally {
    running = false;
    gap.stop();
    await Promise.all([s.stop(), bystander.stop()]);
  }
});

test.run();
