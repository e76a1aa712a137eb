/**
 * The IOMMU fault monitor: kernel log lines (VT-d and AMD-Vi, with and without the kmsg prefix)
 * parsed and attributed by PCI address; on the simulator a DMA outside the windows becomes a fault
 * event of the right sandbox and the policy's action (log, restart, stop) is taken.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KmsgFaultMonitor, parseFaultLine, type FaultEvent, type FaultSink } from '../../sandbox/manager/faults.js';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { builtFixture, deviceCtl, deviceFixture, simPolicy, until, withModule } from './helpers.js';

test('VT-d lines as the lab guest prints them (reason 5 write, 6 read), with and without the kmsg prefix', () => {
  const w = parseFaultLine('DMAR: [DMA Write NO_PASID] Request device [00:01.0] fault addr 0x20000000 [fault reason 0x05] PTE Write access is not set');
  assert.equal(w, {
    device: '0000:00:01.0',
    iova: 0x20000000n,
    access: 'write',
    reason: 'VT-d reason 0x05: PTE Write access is not set',
    source: 'dmar',
    iommu: true,
  });
  const r = parseFaultLine(
    '3,812,16734521,-;DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0x1000 [fault reason 0x06] PTE Read access is not set',
  );
  assert.is(r?.device, '0000:00:02.0');
  assert.is(r?.access, 'read');
  assert.is(r?.iova, 0x1000n);
  const old = parseFaultLine('DMAR: [DMA Read] Request device [0001:3a:00.1] PASID ffffffff fault addr 7f000 [fault reason 06] PTE Read access is not set');
  assert.is(old?.device, '0001:3a:00.1');
  assert.is(old?.iova, 0x7f000n);
  assert.is(parseFaultLine('DMAR: DRHD: handling fault status reg 2'), undefined);
  assert.is(parseFaultLine('nvme nvme0: pci function 0000:00:01.0'), undefined);
});

test('AMD-Vi lines, old and new formats; flags bit 5 is a write', () => {
  const a = parseFaultLine('AMD-Vi: Event logged [IO_PAGE_FAULT device=00:01.0 domain=0x000a address=0x20000000 flags=0x0020]');
  assert.is(a?.device, '0000:00:01.0');
  assert.is(a?.access, 'write');
  assert.is(a?.source, 'amd-vi');
  const b = parseFaultLine('vfio-pci 0000:41:00.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x0012 address=0xfffff000 flags=0x0000]');
  assert.is(b?.device, '0000:41:00.0');
  assert.is(b?.access, 'read');
  assert.is(b?.iova, 0xfffff000n);
});

test('the kmsg monitor attributes faults to the sandbox owning the device, skips history', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-kmsg-'));
  const file = join(dir, 'kmsg');
  const now = process.hrtime.bigint() / 1000n;
  writeFileSync(
    file,
    [
      `3,1,1,-;DMAR: [DMA Write NO_PASID] Request device [00:01.0] fault addr 0x5000 [fault reason 0x05] PTE Write access is not set`, // before start: history
      `3,2,${now + 10_000_000n},-;DMAR: [DMA Write NO_PASID] Request device [00:01.0] fault addr 0x6000 [fault reason 0x05] PTE Write access is not set`,
      `3,3,${now + 10_000_001n},-;DMAR: [DMA Read NO_PASID] Request device [00:03.0] fault addr 0x7000 [fault reason 0x06] PTE Read access is not set`,
      `6,4,${now + 10_000_002n},-;e1000e 0000:00:02.0 eth0: NIC Link is Up`,
      '',
    ].join('\n'),
  );
  const got: FaultEvent[] = [];
  const sink: FaultSink = { address: '0000:00:01.0', action: 'log', onFault: (f) => got.push(f) };
  const m = new KmsgFaultMonitor(file);
  m.add(sink);
  m.start();
  await until('the file to be read', () => m.faults === 2, 5000);
  m.close();
  assert.is(got.length, 1);
  assert.is(got[0]!.iova, 0x6000n);
  assert.is(m.unowned.length, 1);
  assert.is(m.unowned[0]!.device, '0000:00:03.0');
});

test('kmsg: a removed sink gets no more faults; removing a sink another replaced leaves the new one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-kmsg-'));
  const file = join(dir, 'kmsg');
  const now = process.hrtime.bigint() / 1000n;
  const line = (seq: number, dev: string): string =>
    `3,${seq},${now + 10_000_000n + BigInt(seq)},-;DMAR: [DMA Write NO_PASID] Request device [${dev}] fault addr 0x6000 [fault reason 0x05] PTE Write access is not set`;
  writeFileSync(file, [line(1, '00:01.0'), line(2, '00:02.0'), ''].join('\n'));
  const got: string[] = [];
  const sink = (address: string, tag: string): FaultSink => ({ address, action: 'log', onFault: () => got.push(tag) });
  const m = new KmsgFaultMonitor(file);
  const a = sink('0000:00:01.0', 'a'),
    old = sink('0000:00:02.0', 'old'),
    replacement = sink('0000:00:02.0', 'new');
  m.add(a);
  m.add(old);
  m.add(replacement); // a reload: the changed policy's new sandbox has the same device
  m.remove(old); // then the old one is removed: the new one stays
  m.remove(a);
  m.start();
  await until('the file to be read', () => m.faults === 2, 5000);
  m.close();
  assert.equal(got, ['new']);
  assert.is(m.unowned.length, 1);
  rmSync(dir, { recursive: true, force: true });
});

/** A wild DMA by the sandbox's device (in its device process): a write to an IOVA no window maps; true when the IOMMU refused it. */
async function wildWrite(s: Supervisor): Promise<boolean> {
  await deviceCtl(s, 'wild');
  return s.events.some((e) => e.text.includes('fixture: wild write refused'));
}

test("onIommuFault 'log': the fault is an event, the sandbox keeps serving", async () => {
  const s = new Supervisor(simPolicy('fault-log', 'onIommuFault: log'), deviceFixture());
  try {
    await s.start();
    assert.is(await wildWrite(s), true, 'the IOMMU refused it');
    await until('the fault report', () => s.faultCount === 1, 5000);
    assert.equal(
      { device: s.faults[0]!.device, iova: s.faults[0]!.iova, access: s.faults[0]!.access },
      { device: '0000:00:01.0', iova: 0x7000_0000n, access: 'write' },
    );
    // Counted by kind for the metrics (ops/collector.ts): an IOVA no window maps.
    assert.equal([...s.faultsByKind], [['not-present', 1]]);
    assert.ok(s.events.some((e) => e.kind === 'fault' && e.text.includes('action log')));
    assert.is(s.state, 'running');
    assert.is(s.restarts, 0);
    assert.equal((await s.block.read(0, 1)).length, 512);
  } finally {
    await s.stop();
  }
});

test("onIommuFault 'restart': the container is killed, quarantined and restarted", async () => {
  const s = new Supervisor(simPolicy('fault-restart', 'onIommuFault: restart'), deviceFixture());
  try {
    await s.start();
    const pid = s.pid;
    await wildWrite(s);
    await until('a restart', () => s.restarts === 1 && s.state === 'running', 15_000);
    assert.is.not(s.pid, pid);
    assert.ok(s.events.some((e) => e.kind === 'quarantine'));
    assert.equal((await s.block.read(0, 1)).length, 512);
  } finally {
    await s.stop();
  }
});

test("onIommuFault 'stop': the device is failed, no restart", async () => {
  const s = new Supervisor(simPolicy('fault-stop', 'onIommuFault: stop'), deviceFixture());
  try {
    await s.start();
    const failed = new Promise((r) => s.once('failed', r));
    await wildWrite(s);
    await failed;
    assert.is(s.state, 'failed');
    assert.is(s.restarts, 0);
    await s.sim!.settled();
    assert.equal(s.device.quarantineLog, ['bme-off', 'flr'], 'quarantined');
  } finally {
    await s.stop();
  }
});

test("a wild DMA from the container's driver: a fault of this device at that IOVA, policy 'stop' taken", async () => {
  const s = new Supervisor(withModule(simPolicy('wild', 'onIommuFault: stop'), builtFixture('fixtures/wild-dma-driver.js')));
  try {
    const failed = new Promise((r) => s.once('failed', r));
    await s.start();
    await failed;
    const f = s.faults.find((x) => x.iommu)!;
    assert.ok(f, 'an IOMMU fault was recorded');
    assert.is(f.device, '0000:00:01.0');
    assert.is(f.iova, 0x7000_0000n);
    assert.is(f.access, 'write', 'the device tried to write the read data');
    assert.is(s.state, 'failed');
    assert.is(s.restarts, 0);
    await s.sim!.settled();
    assert.equal(s.device.quarantineLog, ['bme-off', 'flr'], 'quarantined');
  } finally {
    await s.stop();
  }
});

test("a request whose DMA the IOMMU refuses: the caller gets ERR_SANDBOX_IO, the driver's FAULT and the IOMMU fault are both events", async () => {
  const s = new Supervisor(simPolicy('refused', 'onIommuFault: log'), deviceFixture());
  try {
    await s.start();
    const area = s.device.grants[s.device.blockData!.readGrant]!.window;
    await deviceCtl(s, 'revoke'); // the read-data area is no longer mapped in the device process: the device's write faults
    try {
      await s.block.read(0, 8);
      assert.unreachable('a read the device could not deliver must fail');
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_SANDBOX_IO');
    }
    await until('the driver fault', () => s.events.some((e) => e.kind === 'driver-fault'), 5000);
    assert.ok(s.events.some((e) => e.kind === 'driver-fault' && e.text.includes('kind 1 code 4')));
    await until('the IOMMU fault report', () => s.faults.some((f) => f.iommu), 5000);
    assert.ok(s.faults.some((f) => f.iommu && f.access === 'write' && f.iova >= area.iova && f.iova < area.iova + BigInt(area.size)));
    assert.is(s.state, 'running', "'log' keeps the sandbox serving");
  } finally {
    await s.stop();
  }
});

test.run();
