/**
 * A hostile driver against the NVMe model, seeded: random writes to every register (CC, AQA, ASQ,
 * ACQ, INTMS/INTMC, every doorbell, the MSI-X table, config space), random submission entries
 * (valid and invalid opcodes, queue ids, sizes, vectors, CNS values, LBA ranges, DSM ranges) whose
 * PRPs point into the granted windows, just outside them or anywhere, and random PRP list pages
 * (chains to themselves, to each other, with offsets). Every call must return without an
 * exception, within a bound, with no exception caught inside the model (no device fault), and no
 * byte outside the granted windows may change. Then the PRP walker alone against random lists:
 * the walk ends, reads at most the entries the length needs, and what it accepts covers the length.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimMachine } from '../../../sim/machine.js';
import { SimNvme } from '../../../sim/nvme/controller.js';
import { PrpResult, PrpWalker, prpChainsNeeded } from '../../../sim/nvme/prp.js';
import type { DeviceDma } from '../../../sim/dma.js';
import { CAP_MSIX_OFFSET, CAP_PCIE_OFFSET } from '../../../sim/pci.js';
import { REG } from '../../../spec/nvme/registers.js';
import { AdminOpcode, NvmOpcode } from '../../../spec/nvme/commands.js';
import { MSIX, PCIE } from '../../../spec/pci/capabilities.js';
import { PCI } from '../../../spec/pci/config.js';
import { prpPageCount } from '../../../spec/nvme/prp.js';
import { DEVICE_READS, DEVICE_READS_WRITES, DEVICE_WRITES } from '../../../drivers/contract/platform.js';
import { prng } from '../../helpers/prng.js';

const ADDRESS = '0000:00:01.0';
const PAGE = 4096;
/** A call that takes longer than this is a loop, not a slow machine (the worst legitimate call moves 8 MiB; measured worst about 60 ms on a loaded 2-core machine). */
const CALL_BOUND_MS = 500;

const ADMIN_OPS = [
  AdminOpcode.IDENTIFY,
  AdminOpcode.SET_FEATURES,
  AdminOpcode.GET_FEATURES,
  AdminOpcode.CREATE_IO_CQ,
  AdminOpcode.CREATE_IO_SQ,
  AdminOpcode.DELETE_IO_SQ,
  AdminOpcode.DELETE_IO_CQ,
  AdminOpcode.ABORT,
];
const IO_OPS = [NvmOpcode.READ, NvmOpcode.WRITE, NvmOpcode.FLUSH, NvmOpcode.WRITE_ZEROES, NvmOpcode.DATASET_MANAGEMENT];

for (const seed of [1, 2, 3]) {
  test(`seed ${seed}: 20,000 hostile register writes, submission entries and PRP lists; no throw, no device fault, bounded calls, canary intact`, () => {
    const machine = new SimMachine();
    const model = new SimNvme({ maxQueueEntries: 64, maxIoQueues: 4, namespaces: [{ blocks: 256 }] });
    const fn = machine.attach(model, { address: ADDRESS, workMode: 'sync' });
    const p = machine.platform(ADDRESS, { busMaster: true });
    const bar = p.bar(0);
    const canary = machine.memory.canary(1 << 16);
    const queues = p.dma.alloc(8 * PAGE, DEVICE_READS_WRITES, { label: 'queues' });
    const lists = p.dma.alloc(4 * PAGE, DEVICE_READS, { label: 'prp lists' });
    const data = p.dma.alloc(64 * 1024, DEVICE_WRITES, { label: 'read data' });
    const windows = [queues, lists, data];
    const next = prng(seed);
    const pick = <T>(a: readonly T[]): T => a[next() % a.length]!;
    const addr = (): number => {
      const k = next() % 10;
      const w = windows[k % 3]!;
      if (k < 6) return Number(w.iova) + ((next() % (w.size / PAGE)) * PAGE + (next() % 4 === 0 ? (next() % PAGE) & ~3 : 0));
      if (k < 9) return Number(w.iova) - PAGE + (next() % PAGE);
      return next() * PAGE + (next() % 2) * 0x1_0000_0000 * (next() % 65536);
    };
    const put64 = (view: DataView, at: number, v: number): void => {
      view.setUint32(at, v >>> 0, true);
      view.setUint32(at + 4, Math.floor(v / 0x1_0000_0000) >>> 0, true);
    };
    let worst = 0;
    const timed = (f: () => void): void => {
      const t0 = performance.now();
      f();
      const dt = performance.now() - t0;
      if (dt > worst) worst = dt;
    };
    // The queue window: page 0 the admin SQ (16 entries), page 1 the admin CQ, pages 2..5 the
    // I/O SQs 1..4 (64 entries), pages 6..7 the I/O CQs 1..4 (64 entries, 1 KiB each).
    const Q = Number(queues.iova);
    const sqBase = (qid: number): number => (qid === 0 ? Q : Q + (1 + qid) * PAGE);
    const cqBase = (qid: number): number => (qid === 0 ? Q + PAGE : Q + 6 * PAGE + (qid - 1) * 1024);
    const sqSize = (qid: number): number => (qid === 0 ? 16 : 64);
    const tails = [0, 0, 0, 0, 0];
    const db = (qid: number, cq: boolean): number => REG.SQ0TDBL.offset + (2 * qid + (cq ? 1 : 0)) * 4;
    const enable = (): void => {
      bar.write32(REG.CC.offset, 0);
      bar.write32(REG.AQA.offset, (15 << 16) | 15);
      bar.write64(REG.ASQ.offset, queues.iova);
      bar.write64(REG.ACQ.offset, queues.iova + BigInt(PAGE));
      bar.write32(REG.CC.offset, (4 << 20) | (6 << 16) | 1); // IOCQES 4, IOSQES 6, EN
      tails.fill(0);
    };
    /** Write a command at SQ `qid`'s tail (not yet rung). */
    const entry = (qid: number, opc: number, cdw10: number, cdw11: number, prp1: number, prp2: number, cdw12 = 0): void => {
      const at = sqBase(qid) - Q + tails[qid]! * 64;
      const v = queues.view;
      for (let k = 0; k < 64; k += 4) v.setUint32(at + k, 0, true);
      v.setUint32(at, (opc | ((next() & 0xffff) << 16)) >>> 0, true);
      v.setUint32(at + 4, next() % 8 === 0 ? next() : 1, true);
      put64(v, at + 24, prp1);
      put64(v, at + 32, prp2);
      v.setUint32(at + 40, cdw10 >>> 0, true);
      v.setUint32(at + 44, cdw11 >>> 0, true);
      v.setUint32(at + 48, cdw12 >>> 0, true);
      tails[qid] = (tails[qid]! + 1) % sqSize(qid);
    };
    /** Set Features Number of Queues, then CQ and SQ 1..n (IEN on vector qid), and ring. */
    const createQueues = (): void => {
      entry(0, AdminOpcode.SET_FEATURES, 7, (3 << 16) | 3, 0, 0);
      for (let qid = 1; qid <= 4; qid++) {
        entry(0, AdminOpcode.CREATE_IO_CQ, (63 << 16) | qid, (qid << 16) | 3, cqBase(qid), 0);
        entry(0, AdminOpcode.CREATE_IO_SQ, (63 << 16) | qid, (qid << 16) | 1, sqBase(qid), 0);
      }
      bar.write32(db(0, false), tails[0]!);
    };
    const randomCommand = (): void => {
      const qid = next() % 5;
      const admin = qid === 0;
      const opc = next() % 8 === 0 ? next() & 0xff : admin ? pick(ADMIN_OPS) : pick(IO_OPS);
      const prp1 = next() % 4 === 0 ? addr() : Number(data.iova) + (next() % 16) * PAGE + (next() % 8 === 0 ? (next() % PAGE) & ~3 : 0);
      // PRP2 often in the last entries of a list page, where chain pointers are.
      const nearEnd = Number(lists.iova) + (next() % 4) * PAGE + PAGE - 8 * (1 + (next() % 8));
      const prp2 = next() % 3 === 0 ? nearEnd : next() % 2 === 0 ? Number(lists.iova) + (next() % (4 * 512)) * 8 : addr();
      const cdw10 = next() % 4 === 0 ? next() : next() % 300;
      const cdw11 = next() % 4 === 0 ? next() : next() % 8;
      const cdw12 = next() % 4 === 0 ? next() : next() % 64;
      entry(qid, opc, cdw10, cdw11, prp1, prp2, cdw12);
      if (next() % 2 === 0) bar.write32(db(qid, false), next() % 16 === 0 ? next() : tails[qid]!);
    };
    enable();
    createQueues();
    for (let i = 0; i < 20000; i++) {
      // Random PRP list entries: data pages, chains to list pages (themselves included), offsets.
      const e = (next() % (4 * 512)) * 8;
      const kind = next() % 4;
      put64(
        lists.view,
        e,
        kind === 0
          ? Number(lists.iova) + (next() % 4) * PAGE + (next() % 4 === 0 ? (next() % 512) * 8 : 0)
          : kind === 1
            ? addr()
            : Number(data.iova) + (next() % 16) * PAGE,
      );
      const k = next() % 16;
      timed(() => {
        if (k < 8) randomCommand();
        else if (k === 8) bar.write32(db(next() % 5, true), next() % 8 === 0 ? next() : next() % 64);
        else if (k === 9) bar.write32(REG.SQ0TDBL.offset + (next() % 16) * 4, next() % 4 === 0 ? next() : next() % 64);
        else if (k === 10) {
          if (next() % 8 === 0) {
            enable();
            createQueues();
          } else bar.write32(pick([REG.CC.offset, REG.AQA.offset, REG.INTMS.offset, REG.INTMC.offset]), next());
        } else if (k === 11) bar.write32(pick([REG.ASQ.offset, REG.ACQ.offset, REG.ASQ.offset + 4, REG.ACQ.offset + 4]), next() % 2 ? addr() >>> 0 : next());
        else if (k === 12) {
          const msix = model.msix;
          bar.write32(msix.tableOffset + (next() % (msix.vectors * 4)) * 4, next() % 2 ? 0 : next());
        } else if (k === 13) {
          const mc = CAP_MSIX_OFFSET + MSIX.MC.offset;
          p.config.write16(pick([mc, mc, PCI.COMMAND.offset, CAP_PCIE_OFFSET + PCIE.DEVSTA.offset]), next() & 0xffff);
          if (next() % 64 === 0) p.config.write16(CAP_PCIE_OFFSET + PCIE.DEVCTL.offset, PCIE.DEVCTL.INITIATE_FLR.mask);
          p.config.write16(PCI.COMMAND.offset, p.config.read16(PCI.COMMAND.offset) | PCI.COMMAND.BUS_MASTER.mask | PCI.COMMAND.MEMORY_SPACE.mask);
        } else if (k === 14) {
          // The CQs' heads catch up with their tails now and then, as a driver would (else they fill).
          for (let qid = 0; qid <= 4; qid++) bar.write32(db(qid, true), next() % (qid === 0 ? 16 : 64));
        } else bar.read32(pick([REG.CSTS.offset, REG.CC.offset, REG.CAP.offset, REG.INTMS.offset]));
      });
    }
    const s = model.stats;
    if (process.env.FUZZ_VERBOSE) console.log(seed, JSON.stringify(s), fn.msix?.dropped, worst.toFixed(2), machine.iommu.faultCount);
    assert.ok(s.commands > 1000 && s.adminCommands > 100, `commands ran (${JSON.stringify(s)})`);
    assert.ok(s.badPrpLists + s.dataTransferErrors > 0, 'bad lists and refused transfers happened');
    assert.is(fn.faultCount, 0, `no exception inside the model: ${fn.deviceFaults.map((f) => f.message).join('; ')}`);
    assert.is(s.deviceFaults, 0);
    assert.ok(worst < CALL_BOUND_MS, `the slowest call took ${worst.toFixed(1)} ms`);
    assert.ok(machine.memory.intact(canary), 'no byte outside the granted windows changed');
    p.close();
  });
}

test('PRP walker, seeded: 50,000 walks over random lists end, read at most what the length needs, and cover the length when accepted', () => {
  const machine = new SimMachine();
  machine.attach(new SimNvme(), { address: ADDRESS, workMode: 'sync' });
  const fn = machine.function(ADDRESS);
  const p = machine.platform(ADDRESS, { busMaster: true });
  let reads = 0;
  const counted = Object.create(fn.dma) as DeviceDma;
  counted.readU64 = (iova: number): number => {
    reads++;
    return fn.dma.readU64(iova);
  };
  const maxBytes = 1024 * PAGE;
  const w = new PrpWalker(counted, maxBytes);
  const lists = p.dma.alloc(4 * PAGE, DEVICE_READS);
  const L = Number(lists.iova);
  const next = prng(7);
  const results = [0, 0, 0, 0];
  for (let i = 0; i < 50000; i++) {
    for (let k = 0; k < 8; k++) {
      const e = (next() % (4 * 512)) * 8;
      const c = next() % 5;
      const v = c === 0 ? L + (next() % 4) * PAGE : c === 1 ? L + (next() % (4 * 512)) * 8 : c === 2 ? next() * 8 : 0x100_0000 + (next() % 4096) * PAGE;
      lists.view.setBigUint64(e, BigInt(v), true);
    }
    const bytes = 1 + (next() % (next() % 4 === 0 ? 2 * maxBytes : 64 * PAGE));
    const prp1 = 0x10_0000 + (next() % 4 === 0 ? next() % PAGE : (next() % PAGE) & ~3);
    const prp2 = next() % 8 === 0 ? next() * 8 : L + (next() % (4 * 512)) * 8;
    reads = 0;
    const r = w.walk(prp1, prp2, bytes);
    results[r]!++;
    if (bytes > maxBytes) {
      assert.is(r, PrpResult.BAD_LIST);
      continue;
    }
    const pages = prpPageCount(prp1 & (PAGE - 1), bytes, PAGE);
    const bound = pages - 1 + prpChainsNeeded(prp2 & (PAGE - 1), Math.max(0, pages - 1), PAGE);
    assert.ok(reads <= bound, `walk ${i}: ${reads} list reads for ${pages} pages (bound ${bound})`);
    if (r === PrpResult.OK) {
      let sum = 0;
      for (let s = 0; s < w.count; s++) sum += w.len[s]!;
      assert.is(sum, bytes, `walk ${i}: the segments cover the length`);
    }
  }
  if (process.env.FUZZ_VERBOSE) console.log(results);
  assert.ok(results[PrpResult.OK]! > 0 && results[PrpResult.BAD_OFFSET]! > 0 && results[PrpResult.BAD_LIST]! > 0, JSON.stringify(results));
  p.close();
});

test.run();
