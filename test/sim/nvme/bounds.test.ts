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
import { BYTE_BUDGET, COMMAND_BUDGET } from '../../../sim/nvme/queues.js';
import { encodeCc, REG, sqTailDoorbell } from '../../../spec/nvme/registers.js';
import { getField } from '../../../spec/field.js';
import { AdminOpcode, DSM, DSM_RANGE, FeatureId, NvmOpcode } from '../../../spec/nvme/commands.js';
import { DEVICE_READS, DEVICE_WRITES } from '../../../drivers/contract/platform.js';
import type { WorkMode } from '../../../sim/sched.js';

const ADDRESS = '0000:00:01.0';
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A controller enabled by hand with an admin queue pair of `entries` entries; `submit(n)` queues n Get Features commands. */
function adminRig(entries: number, workMode: WorkMode, blocks = 2048) {
  const machine = new SimMachine();
  const model = new SimNvme({ maxQueueEntries: 4096, namespaces: [{ blocks }] });
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
  // I/O queue pair 1 (64 entries), created on demand; `io(entries)` queues NVM commands on it and rings once.
  const iosqs = [p.dma.alloc(64 * 64, DEVICE_READS), p.dma.alloc(64 * 64, DEVICE_READS)];
  const iocq = p.dma.alloc(64 * 16, DEVICE_WRITES);
  const ioTails = [0, 0];
  const admin = (opc: number, cdw10: number, cdw11: number, prp1: bigint): void => {
    const at = tail * 64;
    for (let k = 0; k < 64; k += 4) asq.view.setUint32(at + k, 0, true);
    asq.view.setUint32(at, opc | (tail << 16), true);
    asq.view.setBigUint64(at + 24, prp1, true);
    asq.view.setUint32(at + 40, cdw10, true);
    asq.view.setUint32(at + 44, cdw11, true);
    tail = (tail + 1) % entries;
    bar.write32(sqTailDoorbell(0, 0), tail);
  };
  const ioQueues = (): void => {
    admin(AdminOpcode.CREATE_IO_CQ, (63 << 16) | 1, 1, iocq.iova); // PC, no interrupts
    admin(AdminOpcode.CREATE_IO_SQ, (63 << 16) | 1, (1 << 16) | 1, iosqs[0]!.iova);
    admin(AdminOpcode.CREATE_IO_SQ, (63 << 16) | 2, (1 << 16) | 1, iosqs[1]!.iova);
  };
  /** Queue NVM commands on I/O SQ `qid` (1 or 2, both on CQ 1) and ring its doorbell once. */
  const io = (cmds: { opc: number; cdw10: number; cdw11?: number; cdw12: number; prp1?: bigint }[], qid = 1): void => {
    const iosq = iosqs[qid - 1]!;
    for (const c of cmds) {
      const ioTail = ioTails[qid - 1]!;
      const at = ioTail * 64;
      for (let k = 0; k < 64; k += 4) iosq.view.setUint32(at + k, 0, true);
      iosq.view.setUint32(at, c.opc | (ioTail << 16), true);
      iosq.view.setUint32(at + 4, 1, true);
      iosq.view.setBigUint64(at + 24, c.prp1 ?? 0n, true);
      iosq.view.setUint32(at + 40, c.cdw10, true);
      iosq.view.setUint32(at + 44, c.cdw11 ?? 0, true);
      iosq.view.setUint32(at + 48, c.cdw12, true);
      ioTails[qid - 1] = (ioTail + 1) % 64;
    }
    bar.write32(sqTailDoorbell(qid, 0), ioTails[qid - 1]!);
  };
  const ioDone = (): number => model.stats.commands - model.stats.adminCommands;
  return { machine, model, fn, p, bar, submit, enable, csts, resetTail: () => (tail = 0), ioQueues, io, ioDone };
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

test(`Write Zeroes of 32 MiB each: one per deferred step (the ${BYTE_BUDGET / 1048576} MiB byte budget), all done in the end`, async () => {
  const { p, ioQueues, io, ioDone, model } = adminRig(64, 'deferred', 65536);
  ioQueues();
  await turn();
  io(Array.from({ length: 6 }, () => ({ opc: NvmOpcode.WRITE_ZEROES, cdw10: 0, cdw12: 0xffff })));
  await turn();
  assert.is(ioDone(), 1, 'one 32 MiB command per step');
  for (let i = 0; i < 20 && ioDone() < 6; i++) await turn();
  assert.is(ioDone(), 6);
  assert.ok(model.stats.budgetYields >= 5);
  p.close();
});

test('round robin across runs: a queue full of 32 MiB commands does not starve the next queue', async () => {
  const { p, ioQueues, io, ioDone, model } = adminRig(64, 'deferred', 65536);
  ioQueues();
  await turn();
  io(
    Array.from({ length: 20 }, () => ({ opc: NvmOpcode.WRITE_ZEROES, cdw10: 0, cdw12: 0xffff })),
    1,
  );
  io([{ opc: NvmOpcode.FLUSH, cdw10: 0, cdw12: 0 }], 2);
  const before = model.stats.commands;
  for (let i = 0; i < 4; i++) await turn();
  // Four runs: SQ 2's flush went within them, while SQ 1 still has most of its 20 commands.
  assert.ok(ioDone() < 20, `${ioDone()} I/O commands done`);
  const sq2 = (model as unknown as { queues: { sqs: { head: number }[] } }).queues.sqs[2]!;
  assert.is(sq2.head, 1, "SQ 2's command was fetched");
  assert.ok(model.stats.commands - before <= 5);
  p.close();
});

test('Dataset Management with 256 overlapping ranges over the whole namespace zeroes it once, not 256 times', async () => {
  const { p, ioQueues, io, ioDone, model } = adminRig(64, 'sync', 65536);
  ioQueues();
  const ranges = p.dma.alloc(4096, DEVICE_READS);
  for (let i = 0; i < 256; i++) {
    ranges.view.setUint32(i * DSM_RANGE.size + DSM_RANGE.NLB.offset, 65536 - i, true);
    ranges.view.setBigUint64(i * DSM_RANGE.size + DSM_RANGE.SLBA.offset, BigInt(i), true);
  }
  io([{ opc: NvmOpcode.DATASET_MANAGEMENT, cdw10: 255, cdw11: DSM.CDW11.AD.mask, cdw12: 0, prp1: ranges.iova }]);
  assert.is(ioDone(), 1);
  assert.is(model.nvm.cost, 65536 * 512, 'the merged ranges cover the namespace once');
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
