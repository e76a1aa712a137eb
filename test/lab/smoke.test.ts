/**
 * Lab smoke test: runs INSIDE the lab guest (appliance/lab, DMABOX_LAB=1). Proves the machine the
 * other lab tests rely on: root, /dev/vfio/vfio, the NVMe and e1000e bound to vfio-pci with their
 * IOMMU groups under /dev/vfio, a writable /tmp, the checkout visible, and QEMU's DMAR fault trace
 * reaching the guest live: a DMA the IOMMU blocks shows up in the trace file within a bounded time.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, readlinkSync, statSync, writeFileSync, writeSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseDmarTrace } from '../../appliance/lab/dmar.js';

function inLab(): void {
  if (process.env.DMABOX_LAB !== '1') {
    throw new Error('this test runs only inside the lab guest (DMABOX_LAB=1): use `npm run test:lab` or `dmabox lab run -- ...` (appliance/lab/README.md)');
  }
}

const bdfs = (name: string): string[] => (process.env[name] ?? '').split(',').filter(Boolean);
const sysdev = (bdf: string): string => `/sys/bus/pci/devices/${bdf}`;

test('runs as root in the lab guest', () => {
  inLab();
  assert.is(process.getuid!(), 0, 'the guest command runs as root');
});

test('/dev/vfio/vfio is there and a character device', () => {
  inLab();
  assert.ok(statSync('/dev/vfio/vfio').isCharacterDevice());
});

function checkBound(bdf: string, vendor: string, device: string): number {
  const d = sysdev(bdf);
  assert.ok(existsSync(d), `${bdf} exists in sysfs`);
  assert.is(readFileSync(join(d, 'vendor'), 'utf8').trim(), vendor, `${bdf} vendor`);
  assert.is(readFileSync(join(d, 'device'), 'utf8').trim(), device, `${bdf} device`);
  assert.is(basename(readlinkSync(join(d, 'driver'))), 'vfio-pci', `${bdf} is bound to vfio-pci`);
  const group = Number(basename(readlinkSync(join(d, 'iommu_group'))));
  assert.ok(Number.isInteger(group), `${bdf} has an IOMMU group`);
  assert.ok(statSync(`/dev/vfio/${group}`).isCharacterDevice(), `/dev/vfio/${group} exists for ${bdf}`);
  return group;
}

test('the NVMe (1b36:0010) and the e1000e (8086:10d3) are bound to vfio-pci, each in its own group', () => {
  inLab();
  const nvme = bdfs('DMABOX_LAB_NVME'),
    nic = bdfs('DMABOX_LAB_E1000E');
  assert.is(nvme.length, 1, 'the suite machine has one NVMe (DMABOX_LAB_NVME)');
  assert.is(nic.length, 1, 'the suite machine has one e1000e (DMABOX_LAB_E1000E)');
  const g1 = checkBound(nvme[0]!, '0x1b36', '0x0010');
  const g2 = checkBound(nic[0]!, '0x8086', '0x10d3');
  assert.is.not(g1, g2, 'separate IOMMU groups');
});

test('/tmp is writable and the checkout (node_modules, dist) is visible read-only', () => {
  inLab();
  const f = `/tmp/dmabox-smoke-${process.pid}`;
  writeFileSync(f, 'ok');
  assert.is(readFileSync(f, 'utf8'), 'ok');
  rmSync(f);
  assert.ok(existsSync(join(process.cwd(), 'node_modules', 'uvu')), 'node_modules is there');
  assert.ok(existsSync(join(process.cwd(), 'dist', 'test', 'lab')), 'dist is there');
  assert.throws(() => writeFileSync(join(process.cwd(), '.lab-write-probe'), 'x'), /EROFS|read-only/, 'the host root is read-only');
});

// --- A blocked DMA reaches QEMU's trace, and the guest sees it live ----------------------------
// The NVMe, bound to vfio-pci but not opened, sits in the kernel's default DMA domain, which maps
// nothing at IOVA 0x20000000. Pointing the admin submission queue there and ringing its doorbell
// makes the controller read 64 bytes from it: a read the IOMMU blocks (fault reason 6).
// Registers by NVMe 1.4 §3.1: CC 0x14 (EN bit 0, IOSQES 19:16, IOCQES 23:20), CSTS 0x1c (RDY bit 0),
// AQA 0x24, ASQ 0x28, ACQ 0x30, SQ0TDBL 0x1000 (CAP.DSTRD 0). Accesses are exactly 32 bits wide
// (busybox devmem on /dev/mem).
const BLOCKED_IOVA = 0x2000_0000n;

function bar0(bdf: string): bigint {
  const first = readFileSync(join(sysdev(bdf), 'resource'), 'utf8').split('\n')[0]!;
  return BigInt(first.split(/\s+/)[0]!);
}
const rd32 = (addr: bigint): number =>
  Number(
    execFileSync('busybox', ['devmem', `0x${addr.toString(16)}`, '32'])
      .toString()
      .trim(),
  );
const wr32 = (addr: bigint, v: number): void => {
  execFileSync('busybox', ['devmem', `0x${addr.toString(16)}`, '32', `0x${(v >>> 0).toString(16)}`]);
};

const sleepMs = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

function waitRdy(bar: bigint, want: 0 | 1, ms: number): void {
  const end = Date.now() + ms;
  while ((rd32(bar + 0x1cn) & 1) !== want) {
    if (Date.now() > end) throw new Error(`CSTS.RDY did not become ${want} within ${ms} ms`);
    sleepMs(10);
  }
}

/** PCI command register (PCI 3.0 §6.2.2): bit 1 memory space, bit 2 bus master. */
function setCommand(bdf: string, bits: number): number {
  const fd = openSync(join(sysdev(bdf), 'config'), 'r+');
  try {
    const b = Buffer.alloc(2);
    readSync(fd, b, 0, 2, 4);
    const old = b.readUInt16LE(0);
    b.writeUInt16LE(old | bits, 0);
    writeSync(fd, b, 0, 2, 4);
    return old;
  } finally {
    closeSync(fd);
  }
}

test("a DMA read blocked by the IOMMU appears in QEMU's DMAR trace (DMABOX_LAB_DMAR_TRACE)", () => {
  inLab();
  const trace = process.env.DMABOX_LAB_DMAR_TRACE;
  assert.ok(trace && existsSync(trace), `the trace file is given and exists (${trace})`);
  const bdf = bdfs('DMABOX_LAB_NVME')[0]!;
  const sid = (Number.parseInt(bdf.slice(5, 7), 16) << 8) | (Number.parseInt(bdf.slice(8, 10), 16) << 3) | Number(bdf.slice(11));
  const before = parseDmarTrace(readFileSync(trace!, 'utf8')).filter((f) => f.addr === BLOCKED_IOVA).length;
  const bar = bar0(bdf);
  assert.is(rd32(bar + 0x08n) >>> 16, 1, 'VS major is 1 (an NVMe controller answers at BAR0)');
  const readyMs = Math.max(1, rd32(bar) >>> 24) * 500; // CAP.TO (NVMe 1.4 §3.1.1, bits 31:24): 500 ms units
  setCommand(bdf, 0x6);
  try {
    wr32(bar + 0x14n, 0); // CC.EN = 0: the firmware may have left the controller enabled
    waitRdy(bar, 0, readyMs);
    wr32(bar + 0x24n, 0x000f000f); // AQA: 16-entry admin queues
    wr32(bar + 0x28n, Number(BLOCKED_IOVA));
    wr32(bar + 0x2cn, 0); // ASQ
    wr32(bar + 0x30n, Number(BLOCKED_IOVA + 0x1000n));
    wr32(bar + 0x34n, 0); // ACQ
    wr32(bar + 0x14n, (4 << 20) | (6 << 16) | 1); // CC: IOCQES 16 B, IOSQES 64 B, EN
    waitRdy(bar, 1, readyMs);
    wr32(bar + 0x1000n, 1); // SQ0TDBL = 1: the controller fetches entry 0 from ASQ
    // The fault is immediate in QEMU; the bound is for a slow, loaded host (TCG).
    const end = Date.now() + 15_000;
    let faults = parseDmarTrace(readFileSync(trace!, 'utf8')).filter((f) => f.addr === BLOCKED_IOVA);
    while (faults.length === before && Date.now() < end) {
      sleepMs(50);
      faults = parseDmarTrace(readFileSync(trace!, 'utf8')).filter((f) => f.addr === BLOCKED_IOVA);
    }
    assert.ok(faults.length > before, `a vtd_dmar_fault line for IOVA 0x${BLOCKED_IOVA.toString(16)} appeared within 15 s`);
    const f = faults.at(-1)!;
    assert.is(f.sid, sid, `the requester is the NVMe ${bdf}`);
    assert.is(f.bdf, bdf);
    assert.is(f.write, false, 'a read (the SQ entry fetch)');
    assert.is(f.reason, 6, 'fault reason 6: read not permitted');
  } finally {
    wr32(bar + 0x14n, 0); // leave the controller disabled for the next test
    waitRdy(bar, 0, readyMs);
  }
});

test.run();
