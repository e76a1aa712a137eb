/** The per-event decision: Linux fault-injection's after, interval, times and probability, replayed from the seed. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FaultInjector } from '../../../sim/faults/injector.js';
import { parsePlan } from '../../../sim/faults/plan.js';

function firings(text: string, events: number): number[] {
  const inj = new FaultInjector(parsePlan(text));
  const out: number[] = [];
  for (let i = 1; i <= events; i++) if (inj.fire()) out.push(i);
  assert.is(inj.events, events);
  assert.is(inj.fired, out.length);
  return out;
}

test('defaults: the first eligible event fires, once', () => {
  assert.equal(firings('nvme.status', 10), [1]);
});

test('after, interval and times pick the events', () => {
  assert.equal(firings('nvme.status:after=3,times=2', 10), [4, 5]);
  assert.equal(firings('nvme.status:interval=3,times=-1', 10), [3, 6, 9]);
  assert.equal(firings('nvme.status:after=2,interval=4,times=2', 20), [6, 10]);
  assert.equal(firings('nvme.status:times=0', 10), []);
});

test('spent once times is reached; a summary for reports', () => {
  const inj = new FaultInjector(parsePlan('nvme.irq-lost:times=2'));
  assert.ok(!inj.spent);
  inj.fire();
  inj.fire();
  assert.ok(inj.spent);
  assert.ok(!inj.fire());
  assert.is(inj.summary(), 'nvme.irq-lost fired 2 of 3 eligible events');
  assert.is(new FaultInjector(parsePlan('nvme.irq-lost:times=-1')).spent, false);
});

test('probability: about that share fires, the same events for the same seed, others for another', () => {
  const a = firings('nvme.status:probability=0.25,times=-1@5', 4000);
  assert.ok(a.length > 850 && a.length < 1150, `${a.length}`);
  assert.equal(firings('nvme.status:probability=0.25,times=-1@5', 4000), a);
  assert.not.equal(firings('nvme.status:probability=0.25,times=-1@6', 4000), a);
  assert.equal(firings('nvme.status:probability=0,times=-1', 100), []);
});

test('parameter accessors', () => {
  const inj = new FaultInjector(parsePlan('nvme.irq-storm:count=9'));
  assert.is(inj.num('count'), 9);
  assert.is(inj.text('count'), '9');
});

test.run();
