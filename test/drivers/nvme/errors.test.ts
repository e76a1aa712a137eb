/**
 * Simulator-only driver tests: every error status the model produces reaches the caller as the
 * right status or error; blocked DMA to host memory (a canary) is refused and logged; unknown
 * CIDs are counted and never trusted; MSI-X vectors really carry the completions.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NvmeController } from '../../../drivers/nvme/controller.js';
import { AdminOpcode, Cns, CREATE_IO_CQ_CDW11, CREATE_IO_SQ_CDW11, FeatureId, NvmOpcode } from '../../../spec/nvme/commands.js';
import { CommandSpecificSc, GenericSc, Sct, statusOf } from '../../../spec/nvme/status.js';
import { DEVICE_READS, DEVICE_WRITES } from '../../../drivers/contract/platform.js';
import { ADDRESS, simRig, type SimRig } from './sim-target.js';
import { lowLevel, pattern } from './suite.js';

const dnr = (sct: number, sc: number): number => statusOf(sct, sc, true);
const CREATE_CQ_PC = CREATE_IO_CQ_CDW11.PC.mask;
const CREATE_CQ_IEN = CREATE_IO_CQ_CDW11.IEN.mask;
const CREATE_SQ_PC = CREATE_IO_SQ_CDW11.PC.mask;

let rig: SimRig;
let c: NvmeController;
const logs: string[] = [];

async function open(model = {}, driver = {}): Promise<NvmeController> {
  rig = simRig(model);
  logs.length = 0;
  c = await NvmeController.open(rig.machine.platform(ADDRESS), { log: (m) => logs.push(m), ...driver });
  return c;
}

test.after.each(async () => {
  await c?.close();
  c?.platform.close();
});

test('NVM command errors: invalid opcode, namespace, LBA range, MDTS, PRP offset', async () => {
  await open({ mdts: 1 });
  const ns = c.namespaces[0]!;
  assert.is(await ns.rawStatus(0x7f, 0, 0, 0), dnr(Sct.GENERIC, GenericSc.INVALID_COMMAND_OPCODE));
  assert.is(await ns.rawStatus(NvmOpcode.FLUSH, 0, 0, 0, 99), dnr(Sct.GENERIC, GenericSc.INVALID_NAMESPACE_OR_FORMAT));
  assert.is(await ns.rawRw(NvmOpcode.READ, ns.blockCount - 1, 2), dnr(Sct.GENERIC, GenericSc.LBA_OUT_OF_RANGE));
  assert.is(await ns.rawRw(NvmOpcode.WRITE, ns.blockCount, 1), dnr(Sct.GENERIC, GenericSc.LBA_OUT_OF_RANGE));
  // MDTS 1 = 8 KiB: 17 blocks of 512 bytes are one too many.
  assert.is(c.maxTransferBytes, 8192);
  assert.is(await ns.rawRw(NvmOpcode.READ, 0, 17), dnr(Sct.GENERIC, GenericSc.INVALID_FIELD));
  const q = c.ioQueues[0]!;
  const st = await lowLevel(c, q, (slot, done) => q.rwWithPrps(slot, NvmOpcode.READ, ns.nsid, 0, 1, q.readIovaOf(slot) + 2n, 0n, done));
  assert.is(st, dnr(Sct.GENERIC, GenericSc.INVALID_PRP_OFFSET));
  // Write Zeroes and Dataset Management ranges are checked by the device too.
  assert.is(await ns.rawStatus(NvmOpcode.WRITE_ZEROES, ns.blockCount - 1, 0, 1), dnr(Sct.GENERIC, GenericSc.LBA_OUT_OF_RANGE));
  const dsm = await lowLevel(c, q, (slot, done) => {
    const v = new DataView(q.writeData(slot).buffer, q.writeData(slot).byteOffset, 16);
    v.setUint32(4, 8, true); // 8 blocks
    v.setUint32(8, ns.blockCount - 4, true); // starting 4 before the end
    q.raw(slot, NvmOpcode.DATASET_MANAGEMENT, ns.nsid, 0, 4, 0, done);
  });
  assert.is(dsm, dnr(Sct.GENERIC, GenericSc.LBA_OUT_OF_RANGE));
  // The block API checks ranges before the device sees them, and says how to fix them.
  try {
    await ns.read(ns.blockCount, 1);
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code: string }).code, 'ERR_NVME_ARGUMENT');
  }
  // A write whose data the device cannot fetch fails with ERR_NVME_STATUS, naming the status.
  const ro = await lowLevel(c, q, (slot, done) => q.rwWithPrps(slot, NvmOpcode.WRITE, ns.nsid, 0, 1, 0x7000_0000_0000n, 0n, done));
  assert.is(ro, statusOf(Sct.GENERIC, GenericSc.DATA_TRANSFER_ERROR));
});

test('admin command errors: queue id, queue size, CQ invalid, vector, deletion order, CNS, feature sequence', async () => {
  await open({ maxQueueEntries: 256, msixVectors: 4 });
  const buf = c.platform.dma.alloc(4096, DEVICE_READS);
  const cq = (qid: number, size: number, cdw11: number) => c.adminRaw('create cq', AdminOpcode.CREATE_IO_CQ, 0, buf.iova, 0n, ((size - 1) << 16) | qid, cdw11);
  assert.is((await cq(100, 16, CREATE_CQ_PC)).status, dnr(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER));
  assert.is((await cq(0, 16, CREATE_CQ_PC)).status, dnr(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER));
  assert.is((await cq(1, 16, CREATE_CQ_PC)).status, dnr(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER), 'queue 1 exists');
  assert.is((await cq(2, 16, CREATE_CQ_PC)).status, dnr(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER), 'beyond the 1 queue granted');
  // Free queue id 1 (SQ before its CQ), then try bad creations on it.
  assert.is((await c.adminRaw('delete sq 1', AdminOpcode.DELETE_IO_SQ, 0, 0n, 0n, 1, 0)).status, 0);
  assert.is((await c.adminRaw('delete cq 1', AdminOpcode.DELETE_IO_CQ, 0, 0n, 0n, 1, 0)).status, 0);
  assert.is((await cq(1, 512, CREATE_CQ_PC)).status, dnr(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_SIZE));
  assert.is((await cq(1, 1, CREATE_CQ_PC)).status, dnr(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_SIZE));
  assert.is((await cq(1, 16, CREATE_CQ_PC | CREATE_CQ_IEN | (9 << 16))).status, dnr(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_INTERRUPT_VECTOR));
  assert.is((await cq(1, 16, 0)).status, dnr(Sct.GENERIC, GenericSc.INVALID_FIELD), 'CAP.CQR: queues must be contiguous');
  const sq = await c.adminRaw('create sq', AdminOpcode.CREATE_IO_SQ, 0, buf.iova, 0n, (15 << 16) | 1, (77 << 16) | CREATE_SQ_PC);
  assert.is(sq.status, dnr(Sct.COMMAND_SPECIFIC, CommandSpecificSc.COMPLETION_QUEUE_INVALID));
  assert.is((await cq(1, 16, CREATE_CQ_PC)).status, 0);
  assert.is((await c.adminRaw('create sq', AdminOpcode.CREATE_IO_SQ, 0, buf.iova, 0n, (15 << 16) | 1, (1 << 16) | CREATE_SQ_PC)).status, 0);
  const del = await c.adminRaw('delete cq 1', AdminOpcode.DELETE_IO_CQ, 0, 0n, 0n, 1, 0);
  assert.is(del.status, dnr(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_DELETION), 'SQ 1 still uses CQ 1');
  const delSq = await c.adminRaw('delete sq 5', AdminOpcode.DELETE_IO_SQ, 0, 0n, 0n, 5, 0);
  assert.is(delSq.status, dnr(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER));
  const id = await c.adminRaw('identify cns 0x55', AdminOpcode.IDENTIFY, 0, buf.iova, 0n, 0x55, 0);
  assert.is(id.status, dnr(Sct.GENERIC, GenericSc.INVALID_FIELD));
  const idNs = await c.adminRaw('identify ns 9', AdminOpcode.IDENTIFY, 9, buf.iova, 0n, Cns.NAMESPACE, 0);
  assert.is(idNs.status, dnr(Sct.GENERIC, GenericSc.INVALID_NAMESPACE_OR_FORMAT));
  const nq = await c.adminRaw('set nq', AdminOpcode.SET_FEATURES, 0, 0n, 0n, FeatureId.NUMBER_OF_QUEUES, 0x0003_0003);
  assert.is(nq.status, dnr(Sct.GENERIC, 0x0c), 'Command Sequence Error once I/O queues exist');
  assert.is((await c.adminRaw('bad opcode', 0x7e, 0, 0n, 0n, 0, 0)).status, dnr(Sct.GENERIC, GenericSc.INVALID_COMMAND_OPCODE));
  // Identify into a device-read-only window: the device cannot write it.
  const idRo = await c.adminRaw('identify into ro', AdminOpcode.IDENTIFY, 0, buf.iova, 0n, Cns.CONTROLLER, 0);
  assert.is(idRo.status, statusOf(Sct.GENERIC, GenericSc.DATA_TRANSFER_ERROR));
  // adminCommand turns a status into an error with a stable code and the status named.
  try {
    await c.adminCommand('Identify CNS 0x55', AdminOpcode.IDENTIFY, 0, buf.iova, 0n, 0x55, 0);
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code: string }).code, 'ERR_NVME_STATUS');
    assert.match((e as Error).message, /INVALID_FIELD/);
  }
  c.platform.dma.free(buf);
});

test('a PRP aimed at host memory (a canary no window maps) is refused: canary intact, fault logged, data transfer error', async () => {
  await open();
  const canary = rig.machine.memory.canary(8192, 'host kernel memory');
  const ns = c.namespaces[0]!;
  await ns.write(0, pattern(4096, 3));
  const q = c.ioQueues[0]!;
  // What a hostile driver would do without an IOMMU: DMA straight to a physical address.
  const st = await lowLevel(c, q, (slot, done) => q.rwWithPrps(slot, NvmOpcode.READ, ns.nsid, 0, 8, BigInt(canary.base), 0n, done));
  assert.is(st, statusOf(Sct.GENERIC, GenericSc.DATA_TRANSFER_ERROR));
  assert.ok(rig.machine.memory.intact(canary), 'canary untouched');
  const faults = rig.machine.iommu.faults(ADDRESS);
  assert.is(faults.length, 1);
  assert.is(faults[0]!.iova, canary.base);
  assert.is(faults[0]!.access, 'write');
  assert.is(faults[0]!.reason, 'not-present');
  assert.is(rig.model.stats.dataTransferErrors, 1);
});

test('a completion with an unknown CID is counted, logged and never trusted', async () => {
  await open();
  const ns = c.namespaces[0]!;
  await ns.write(5, pattern(512, 5));
  rig.model.injectCompletion(1, 0xbeef);
  rig.model.injectCompletion(1, 0); // slot 0's CID of a past generation: stale, not in flight
  assert.equal(await ns.read(5, 1), pattern(512, 5));
  assert.is(c.unknownCids, 2);
  assert.ok(
    logs.some((l) => /CID 48879 .*matches no command in flight/.test(l)),
    logs.join('\n'),
  );
});

test('MSI-X: every completion arrives by interrupt, none by the timeout poll', async () => {
  await open({}, { interrupts: 'msix', queues: 2, ioTimeoutMs: 60000, adminTimeoutMs: 60000 });
  const ns = c.namespaces[0]!;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 64 }, (_, i) => ns.write(i, pattern(512, i))));
  const got = await Promise.all(Array.from({ length: 64 }, (_, i) => ns.read(i, 1)));
  got.forEach((b, i) => assert.equal(b, pattern(512, i)));
  assert.ok(performance.now() - t0 < 5000, 'no completion waited for the 15 s timeout poll');
  assert.ok(rig.model.stats.interrupts >= 2, `interrupts ${rig.model.stats.interrupts}`);
});

test('namespace discovery: two namespaces with different block sizes, kept apart', async () => {
  await open({ namespaces: [{ blocks: 1000 }, { blocks: 300, blockSize: 4096 }] });
  assert.equal(
    c.namespaces.map((n) => [n.nsid, n.blockSize, n.blockCount]),
    [
      [1, 512, 1000],
      [2, 4096, 300],
    ],
  );
  const [a, b] = c.namespaces as [(typeof c.namespaces)[0], (typeof c.namespaces)[0]];
  await a.write(0, pattern(512, 1));
  await b.write(0, pattern(4096, 2));
  assert.equal(await a.read(0, 1), pattern(512, 1));
  assert.equal(await b.read(0, 1), pattern(4096, 2));
  assert.is(c.identify.nn, 2);
});

test('doorbell stride (CAP.DSTRD = 3) is honoured', async () => {
  await open({ dstrd: 3 }, { queues: 3 });
  assert.is(c.cap.DSTRD, 3);
  const ns = c.namespaces[0]!;
  await Promise.all(Array.from({ length: 24 }, (_, i) => ns.write(i, pattern(512, 90 + i))));
  const got = await Promise.all(Array.from({ length: 24 }, (_, i) => ns.read(i, 1)));
  got.forEach((b, i) => assert.equal(b, pattern(512, 90 + i)));
  assert.is(rig.model.stats.badDoorbells, 0);
});

test('least privilege: SQs and PRP lists device-read-only, CQs and read data device-write-only, write data device-read-only', async () => {
  await open({}, { bufferBytes: 16384 });
  const q = c.ioQueues[0]!;
  assert.equal(q.qp.sq.perm, DEVICE_READS);
  assert.equal(q.qp.cq.perm, DEVICE_WRITES);
  // What the IOMMU enforces: the device may not write into the SQ, nor read from a read buffer.
  const iommuDomain = rig.machine.iommu.domain(ADDRESS);
  const page = (iova: bigint): number => iommuDomain.lookup(Number(iova / 4096n));
  assert.is(page(q.qp.sq.iova) & 3, 1, 'SQ: read only');
  assert.is(page(q.qp.cq.iova) & 3, 2, 'CQ: write only');
  assert.is(page(q.readIovaOf(0)) & 3, 2, 'read data: write only');
  assert.is(page(q.writeIovaOf(0)) & 3, 1, 'write data: read only');
});

test("transferPrps: reads and writes with the caller's PRPs, FUA on writes only, bounded by MDTS and the namespace", async () => {
  await open({ mdts: 2 }, { bufferBytes: 4096 }); // MDTS 16 KiB; slot buffers of one page
  const ns = c.namespaces[0]!;
  const out = c.platform.dma.alloc(16384, DEVICE_READS);
  const back = c.platform.dma.alloc(16384, DEVICE_WRITES);
  const list = c.platform.dma.alloc(4096, DEVICE_READS);
  for (let k = 1; k < 4; k++) list.view.setBigUint64(8 * (k - 1), out.iova + BigInt(k * 4096), true);
  const data = pattern(16384, 9);
  out.bytes.set(data);
  // 32 blocks, beyond the 4 KiB slot buffers but within MDTS: PRP1 and a PRP list.
  const fua0 = rig.model.stats.fuaWrites;
  await ns.transferPrps(NvmOpcode.WRITE, 100, 32, Number(out.iova), Number(list.iova), true);
  assert.is(rig.model.stats.fuaWrites - fua0, 1, 'the write carried FUA');
  const list2 = c.platform.dma.alloc(4096, DEVICE_READS);
  for (let k = 1; k < 4; k++) list2.view.setBigUint64(8 * (k - 1), back.iova + BigInt(k * 4096), true);
  await ns.transferPrps(NvmOpcode.READ, 100, 32, Number(back.iova), Number(list2.iova), true);
  assert.equal(back.bytes.subarray(0, 16384), data);
  assert.is(rig.model.stats.fuaWrites - fua0, 1, 'FUA is for writes only');
  const code = (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: { code?: string }) => e.code,
    );
  assert.is(await code(ns.transferPrps(NvmOpcode.READ, 0, 33, Number(back.iova), Number(list2.iova))), 'ERR_NVME_ARGUMENT', 'more than MDTS in one command');
  assert.is(await code(ns.transferPrps(NvmOpcode.READ, ns.blockCount - 1, 2, Number(back.iova), 0)), 'ERR_NVME_ARGUMENT', 'past the namespace');
  // PRPs the device may not use: the IOMMU refuses, the caller gets the data transfer error.
  const e = await ns.transferPrps(NvmOpcode.WRITE, 0, 1, 0x7000_0000_0000, 0).then(
    () => undefined,
    (x: { code?: string; sc?: number }) => x,
  );
  assert.is(e?.code, 'ERR_NVME_STATUS');
  assert.is(e?.sc, GenericSc.DATA_TRANSFER_ERROR);
});

test.run();
