/**
 * Lab (real VFIO in the QEMU guest): confinement. A device DMA aimed at an IOVA that is no longer
 * mapped, and one writing into a read-only window, leave the target memory unchanged and produce a
 * DMAR fault for that device, both in the guest kernel log (/dev/kmsg) and in QEMU's
 * vtd_dmar_fault trace. QEMU 7.2's NVMe still completes such a command with status 0 (LAB-NOTES),
 * so the test checks memory and the fault logs, never the completion status.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DmaMemory, faultsInPage, findOne, inLab, KernelLog, NVME_IDS, openStack, sleepMs, waitDmarFaults } from './lab-env.js';
import { RawNvme } from './nvme-raw.js';
import { setBusMaster } from '../../../spec/pci/config.js';

const SQ = { off: 0x0000, iova: 0x1100_0000n };
const CQ = { off: 0x1000, iova: 0x1100_1000n };
const TARGET = { off: 0x2000 };
const PATTERN = 0xa5;

/** The kernel rate-limits DMAR messages (about 3 per 5 s): let the window pass before each fault. */
const RATE_LIMIT_MS = 5500;

function kmsgFault(bdf: string, page: bigint): RegExp {
  // DMAR: [DMA Write NO_PASID] Request device [00:01.0] fault addr 0x... [fault reason 0x05] PTE Write access is not set
  const short = bdf.slice(5).replace('.', '\\.');
  return new RegExp(`DMAR: \\[DMA Write[^\\]]*\\] Request device \\[${short}\\] fault addr 0x${page.toString(16)} \\[fault reason 0x05\\]`);
}

function setup(): { s: ReturnType<typeof openStack>; mem: DmaMemory; nvme: RawNvme; bdf: string } {
  const fn = findOne(NVME_IDS);
  const s = openStack(fn);
  const mem = new DmaMemory(0x3000);
  s.container.map(mem.vaddr + BigInt(SQ.off), SQ.iova, 0x1000, { read: true, write: false });
  s.container.map(mem.vaddr + BigInt(CQ.off), CQ.iova, 0x1000, { read: true, write: true });
  setBusMaster(s.device.config, true);
  const nvme = new RawNvme(s.device.mapBar(0), { bytes: mem.at(SQ.off, 0x1000), iova: SQ.iova }, { bytes: mem.at(CQ.off, 0x1000), iova: CQ.iova });
  nvme.enable();
  return { s, mem, nvme, bdf: fn.address };
}

function provoke(label: string, page: bigint, arm: (t: ReturnType<typeof setup>) => void): void {
  const t = setup();
  const log = new KernelLog();
  try {
    const target = t.mem.at(TARGET.off, 0x1000);
    target.fill(PATTERN);
    arm(t);
    const before = faultsInPage(page).length;
    sleepMs(RATE_LIMIT_MS);
    log.drain();
    t.nvme.identify(page); // the controller writes 4 KiB of Identify data at `page`
    const faults = waitDmarFaults(page, before, 5000);
    assert.ok(
      target.every((b) => b === PATTERN),
      `${label}: the target memory is unchanged`,
    );
    assert.ok(faults.length > before, `${label}: QEMU traced a DMAR fault at 0x${page.toString(16)}`);
    const f = faults.at(-1)!;
    assert.is(f.bdf, t.bdf, `${label}: the fault is the NVMe's`);
    assert.is(f.write, true, `${label}: a blocked write`);
    const line = log.waitFor(kmsgFault(t.bdf, page), 5000);
    assert.ok(line, `${label}: the guest kernel logged the DMAR fault for ${t.bdf} at 0x${page.toString(16)} (reason 5)`);
  } finally {
    log.close();
    try {
      t.nvme.disable();
    } finally {
      t.s.close();
      t.mem.close();
    }
  }
}

test('a DMA write to an IOVA that was unmapped after use is blocked: memory unchanged, DMAR fault in kmsg and QEMU trace', () => {
  inLab();
  const page = 0x1100_4000n;
  provoke('unmapped after use', page, (t) => {
    t.s.container.map(t.mem.vaddr + BigInt(TARGET.off), page, 0x1000, { read: true, write: true });
    t.s.container.unmap(page, 0x1000n);
  });
});

test('a DMA write into a read-only window is blocked: memory unchanged, DMAR fault (reason 5) in kmsg and QEMU trace', () => {
  inLab();
  const page = 0x1100_8000n;
  provoke('read-only window', page, (t) => {
    t.s.container.map(t.mem.vaddr + BigInt(TARGET.off), page, 0x1000, { read: true, write: false });
  });
});

test('a DMA write to an IOVA never mapped is blocked (QEMU trace reason 5, write)', () => {
  inLab();
  const page = 0x2345_6000n;
  const t = setup();
  try {
    const before = faultsInPage(page).length;
    t.nvme.identify(page);
    const faults = waitDmarFaults(page, before, 5000);
    assert.ok(faults.length > before, 'QEMU traced the fault');
    assert.is(faults.at(-1)!.reason, 5);
    assert.is(faults.at(-1)!.bdf, t.bdf);
  } finally {
    try {
      t.nvme.disable();
    } finally {
      t.s.close();
      t.mem.close();
    }
  }
});

test.run();
