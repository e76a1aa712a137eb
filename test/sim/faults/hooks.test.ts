/** The injector's hooks a campaign uses: `onFire` (told of each firing), `disarm()`, and the NVMe plan's `behave()` (a removed controller back on the bus). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FaultInjector } from '../../../sim/faults/injector.js';
import { makePlan } from '../../../sim/faults/plan.js';
import { NvmeFaultPlan } from '../../../sim/nvme/fault-plan.js';
import { SimMachine } from '../../../sim/machine.js';
import { SimNvme } from '../../../sim/nvme/controller.js';
import { REG } from '../../../spec/nvme/registers.js';

test('onFire is told the event of each firing; disarm stops every later one', () => {
  const inj = new FaultInjector(makePlan('nvme.status', { times: -1, interval: 2 }));
  const seen: number[] = [];
  inj.onFire = (e) => seen.push(e);
  for (let i = 0; i < 6; i++) inj.fire();
  assert.equal(seen, [2, 4, 6]);
  assert.is(inj.spent, false);
  inj.disarm();
  assert.is(inj.spent, true);
  for (let i = 0; i < 6; i++) assert.is(inj.fire(), false);
  assert.equal(seen, [2, 4, 6]);
  assert.is(inj.fired, 3);
});

test('behave(): a removed NVMe controller answers again (VS is no longer all ones) and the plan never fires again', () => {
  const m = new SimMachine({});
  const model = new SimNvme({ faultPlan: makePlan('nvme.removal'), namespaces: [{ blocks: 16 }] });
  m.attach(model, { address: '0000:01:00.0' });
  const bar = m.platform('0000:01:00.0').bar(0);
  const plan = model.faultPlan!;
  assert.instance(plan, NvmeFaultPlan);
  const vs = bar.read32(REG.VS.offset);
  plan.removed = true; // what the queue engine does when the class fires
  assert.is(bar.read32(REG.VS.offset), 0xffffffff);
  plan.behave();
  assert.is(bar.read32(REG.VS.offset), vs);
  assert.is(plan.injector.spent, true);
  assert.is(plan.ioCommand(0x02), 0, 'no I/O fault after behave()');
});

test.run();
