/**
 * The NVMe model's work is bounded and its failures are the device's: a full admin queue of a
 * thousand commands behind one doorbell is processed at most COMMAND_BUDGET commands per deferred
 * step; an exception inside the model puts the controller in Controller Fatal Status (§3.1.6)
 * instead of escaping, and a controller reset (CC.EN 1 -> 0 -> 1) brings it back.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimMachine } from '../../../sim/machine.js';
import { SimNvme } from '../../../sim/nvme/controller.js';
import { COMMAND_BUDGET } from '../../../sim/nvme/queues.js';
import { encodeCc, REG, sqTailDoorbell } from '../../../spec/nvme/registers.js';
import { getField } from '../../../spec/field.js';
import { AdminOpcode, FeatureId } from '../../../spec/nvme/commands.js';
import { DEVICE_READS, DEVICE_WRITES } from '../../../drivers/contract/platform.js';
import type { WorkMode } from '../../../sim/sched.js';

const ADDRESS = '0000:00:01.0';
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A controller enabled by hand with an admin queue pair of `entries` entries; `submit(n)` queues n Get Features commands. */
function adminRig(entries: number, workMode: WorkMode) {
  const machine = new SimMachine();
  const model = new SimNvme({ maxQueueEntries: 4096 });
  const fn = machine.attach(model, { address: ADDRESS, workMode });
  const p = machine.platform(ADDRESS, { busMaster: true });
  const bar = p.bar(0);
  const asq = p.dma.alloc(entries * 64, DEVICE_READS);
  const acq = p.dma.alloc(entries * 16, DEVICE_WRITES);
  const enable = (): void => {
    bar.write32(REG.AQA.offset, ((entries - 1) << 16) | (entries - 1));
    bar.write64(REG.ASQ.offset, asq.iova);
    bar.write64(REG.ACQ.offset, acq.iova);
    bar.write32(REG.CC.offset, encodeCc({ EN: 1, IOSQES: 6, IOCQES: 4 }));
  };
  enable();
  let tail = 0;
  const submit = (n: number): void => {
    for (let i = 0; i < n; i++) {
      const at = tail * 64;
      asq.view.setUint32(at, AdminOpcode.GET_FEATURES | (tail << 16), true);
      asq.view.setUint32(at + 40, FeatureId.NUMBER_OF_QUEUES, true);
      tail = (tail + 1) % entries;
    }
    bar.write32(sqTailDoorbell(0, 0), tail);
  };
  const csts = (): number => bar.read32(REG.CSTS.offset);
  return { machine, model, fn, p, bar, submit, enable, csts, resetTail: () => (tail = 0) };
}

test(`a thousand admin commands behind one doorbell: at most ${COMMAND_BUDGET} per deferred step, all completed in the end`, async () => {
  const { model, p, submit } = adminRig(1024, 'deferred');
  submit(1000);
  await turn();
  assert.ok(model.stats.adminCommands > 0 && model.stats.adminCommands <= COMMAND_BUDGET, `${model.stats.adminCommands} after one step`);
  for (let i = 0; i < 20 && model.stats.adminCommands < 1000; i++) await turn();
  assert.is(model.stats.adminCommands, 1000);
  assert.ok(model.stats.budgetYields >= 3);
  p.close();
});

test('an exception inside the model: Controller Fatal Status, counted, a fault event; a controller reset brings it back', () => {
  const { model, fn, p, bar, submit, enable, csts, resetTail } = adminRig(64, 'sync');
  const seen: string[] = [];
  fn.on('fault', (f: { source: string; message: string }) => seen.push(`${f.source}: ${f.message}`));
  const admin = (model as unknown as { admin: { execute: (d: Uint32Array) => number } }).admin;
  const execute = admin.execute;
  admin.execute = () => {
    throw new Error('model bug in an admin command');
  };
  submit(1);
  assert.equal(seen, ['work: model bug in an admin command']);
  assert.is(getField(csts(), REG.CSTS.CFS), 1, 'CSTS.CFS');
  assert.is(model.stats.deviceFaults, 1);
  assert.match(model.lastError, /model bug in an admin command/);
  // Fatal: nothing more is processed.
  admin.execute = execute;
  const before = model.stats.adminCommands;
  submit(1);
  assert.is(model.stats.adminCommands, before);
  // Controller reset (§7.3.2) clears CFS; the controller serves again.
  bar.write32(REG.CC.offset, 0);
  assert.is(getField(csts(), REG.CSTS.CFS), 0);
  resetTail();
  enable();
  assert.is(getField(csts(), REG.CSTS.RDY), 1);
  submit(1);
  assert.is(model.stats.adminCommands, before + 1);
  p.close();
});

test.run();
