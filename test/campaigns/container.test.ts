/**
 * The injector inside a real driver container: only a Supervisor given `campaign` builds the code
 * image with it (the first container only); the plain image `dmabox up` uses never carries it, and
 * no policy field can ask for it. An injected crash in the container is a real exit, restarted, with
 * nothing acknowledged lost.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bundleDriver, driverRef } from '../../sandbox/manager/driver-code.js';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { parsePolicies } from '../../policies/index.js';
import { deviceFixture, kinds, pattern, simPolicy } from '../sandbox/helpers.js';

const plan = (fault: string, first: number) => ({
  fault,
  seed: 5,
  first,
  probability: 100,
  interval: 1,
  times: 1,
  variants: [] as string[],
  canary: 0,
  neighbour: 0,
});

test('the plain code image has no injector; a campaign image has it; no policy field can ask for one', async () => {
  const ref = driverRef(simPolicy('plain'));
  const plain = Buffer.from(await bundleDriver(ref));
  assert.not.ok(plain.includes('campaigns/inject'), 'the plain image carries the injector');
  assert.not.ok(plain.includes('startInjected'));
  const armed = Buffer.from(await bundleDriver(ref, { plan: plan('crash', 3) }));
  assert.ok(armed.includes('campaigns/inject/injector.js'));
  assert.ok(armed.includes('startInjected'));
  assert.throws(
    () => parsePolicies(`version: 1\nname: x\ndevice: sim:nvme\ndriver: nvme\nwindows: [{ size: 1MiB }]\ncampaign: { fault: crash }\n`, 'p.yaml'),
    /p\.yaml:6: campaign: unknown field/,
  );
  assert.is(new Supervisor(simPolicy('unarmed')).campaign, false);
});

test('an injected crash in the container: the first container exits, the next serves, acknowledged data intact', async () => {
  const s = new Supervisor(simPolicy('camp-crash'), { hangMs: 800, heartbeatMs: 200, ...deviceFixture(), campaign: { plan: plan('crash', 2) } });
  assert.is(s.campaign, true);
  try {
    await s.start();
    const a = pattern(16 * 1024, 3);
    await s.block.write(10, a);
    assert.equal(await s.block.read(10, 32), a);
    const k = kinds(s);
    assert.ok(k.includes('exit'), `events: ${k.join(' ')}`);
    assert.ok(k.filter((x) => x === 'spawn').length >= 2, `events: ${k.join(' ')}`);
    assert.ok(s.events.some((e) => e.text.includes('fault injector armed')));
    assert.ok(
      s.events.some((e) => /campaign: crash/.test(e.text)),
      s.events.map((e) => e.text).join('\n'),
    );
  } finally {
    await s.stop();
  }
});

test.run();
