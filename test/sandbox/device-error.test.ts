/**
 * Device errors (issue 14): the device signals an error on its error interrupt (AER through
 * vfio-pci's VFIO_PCI_ERR_IRQ_INDEX eventfd; on the simulator the PCI function's, through its device
 * process) and the supervisor treats it as a device error: the container killed, the function
 * quarantined (bus mastering off, FLR), the driver restarted, the I/O in flight replayed; counted in
 * status and the metrics. The lab runs the same with QEMU's AER (test/lab/sandbox/device-errors.test.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VFIO } from 'vfio-bindings';
import { parsePolicies } from '../../policies/index.js';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { VfioDevice } from '../../sandbox/manager/vfio-device.js';
import { enableErrorReporting, findCapability } from '../../spec/pci/config.js';
import { FakeSys } from '../sys/fake-sys.js';
import { deviceCtl, deviceFixture, kinds, pattern, simPolicy, until } from './helpers.js';

const OK = {
  iommus: [{ name: 'dmar0', kind: 'intel-vt-d' as const }],
  groups: [],
  interruptRemapping: { state: 'enabled' as const, evidence: '' },
  vfio: true,
  noIommuMode: false,
  unsafeInterrupts: false,
  summary: '',
};

const policy = parsePolicies(
  `version: 1
name: vfio-err
device: { pci: "0000:00:01.0" }
driver: { name: nvme, interrupts: msix }
windows: [ { size: 64KiB, access: read, label: q }, { size: 2MiB, label: data } ]
`,
  'x.yaml',
).policies[0]!.policy;

/** A PCI Express capability at 0x40 in the fake's config space (Status.CAP_LIST, pointer 0x34). */
function givePcieCap(config: ArrayBuffer): DataView {
  const v = new DataView(config);
  v.setUint16(6, v.getUint16(6, true) | 0x10, true);
  v.setUint8(0x34, 0x40);
  v.setUint8(0x40, 0x10);
  v.setUint8(0x41, 0);
  return v;
}

test('VFIO: the error interrupt is routed to a manager eventfd at open, error reporting turned on; a signal reaches the listener; reset re-enables; release unroutes', async () => {
  const sys = new FakeSys();
  const model = sys.model('0000:00:01.0');
  const cfg = givePcieCap(model.regions[7]!.bytes!);
  const d = new VfioDevice(policy, sys, { iommu: OK, platform: { group: 1 } });
  try {
    assert.ok(d.errorIrqArmed);
    const fds = model.irqFds.get(VFIO.VFIO_PCI_ERR_IRQ_INDEX);
    assert.is(fds?.length, 1, 'one eventfd on VFIO_PCI_ERR_IRQ_INDEX');
    assert.not.ok(d.irqFds.includes(fds![0]!), 'not one of the container-facing interrupt eventfds');
    assert.is(cfg.getUint16(0x48, true) & 0xf, 0xf, 'DEVCTL CERE NFERE FERE URRE on');
    const causes: string[] = [];
    d.onDeviceError((c) => causes.push(c));
    sys.fire('0000:00:01.0', VFIO.VFIO_PCI_ERR_IRQ_INDEX, 0);
    sys.fire('0000:00:01.0', VFIO.VFIO_PCI_ERR_IRQ_INDEX, 0);
    await until('the error to be heard', () => causes.length > 0, 2000);
    assert.is(d.deviceErrors, 1, 'two signals before the poller ran are one wake-up');
    assert.match(causes[0]!, /signalled 2 error\(s\) on its VFIO error interrupt/);
    // The reset clears Device Control (as an FLR does): quarantine turns reporting on again, and the routing stays.
    cfg.setUint16(0x48, 0, true);
    d.quarantine();
    assert.is(cfg.getUint16(0x48, true) & 0xf, 0xf);
    assert.ok(model.irqFds.has(VFIO.VFIO_PCI_ERR_IRQ_INDEX), 'quarantine leaves the error interrupt routed');
  } finally {
    d.release();
  }
  assert.not.ok(model.irqFds.has(VFIO.VFIO_PCI_ERR_IRQ_INDEX), 'release unroutes it');
  assert.not.ok(d.errorIrqArmed);
});

test('VFIO: a function without an error interrupt is opened all the same, unarmed', () => {
  const sys = new FakeSys();
  const model = sys.model('0000:00:01.0');
  model.irqCounts[VFIO.VFIO_PCI_ERR_IRQ_INDEX] = 0;
  const d = new VfioDevice(policy, sys, { iommu: OK, platform: { group: 1 } });
  try {
    assert.not.ok(d.errorIrqArmed);
    assert.not.ok(model.irqFds.has(VFIO.VFIO_PCI_ERR_IRQ_INDEX));
  } finally {
    d.release();
  }
});

test('config helpers: no capability list, a looping list, and Device Control bits that do not stick', () => {
  const bytes = new Uint8Array(256);
  const v = new DataView(bytes.buffer);
  const cfg = {
    read8: (o: number) => bytes[o]!,
    read16: (o: number) => v.getUint16(o, true),
    write16: (o: number, x: number) => v.setUint16(o, x, true),
  };
  assert.is(findCapability(cfg, 0x10), 0, 'Status.CAP_LIST clear');
  assert.is(enableErrorReporting(cfg), false);
  v.setUint16(6, 0x10, true);
  bytes[0x34] = 0x40;
  bytes[0x40] = 0x05;
  bytes[0x41] = 0x40; // points at itself
  assert.is(findCapability(cfg, 0x10), 0, 'a looping list ends');
  bytes[0x41] = 0x50;
  bytes[0x50] = 0x10;
  assert.is(findCapability(cfg, 0x10), 0x50);
  const ignoring = { ...cfg, write16: () => undefined };
  assert.is(enableErrorReporting(ignoring), false, "a device that gives the bits no write mask (QEMU's e1000e)");
  v.setUint16(0x58, 0x8000, true);
  assert.is(enableErrorReporting(cfg), true);
  assert.is(v.getUint16(0x58, true), 0x000f, 'Initiate FLR never written back');
});

test('simulator: the function signals an error with I/O in flight: killed, quarantined, restarted, replayed; counted in status', async () => {
  const s = new Supervisor(simPolicy('deverr'), { hangMs: 5000, heartbeatMs: 200, ...deviceFixture() });
  try {
    await s.start();
    const a = pattern(32 * 1024, 3);
    await s.block.write(200, a);
    const pid1 = s.pid!;
    await deviceCtl(s, 'hang');
    const b = pattern(8192, 4);
    const inflight = [s.block.write(2000, b), s.block.read(200, 16)];
    await until('requests to reach the container', () => s.lastHeartbeat !== undefined && s.block.pending === 2 && s.lastHeartbeat.inflight > 0, 10_000);
    await deviceCtl(s, 'error');
    await s.ready();
    const [, readBack] = await Promise.all(inflight);
    assert.equal(readBack, a.subarray(0, 8192), 'the replayed read');
    assert.equal(await s.block.read(2000, 16), b, 'the replayed write landed');
    assert.equal(await s.block.read(200, 64), a, 'earlier writes intact');
    assert.is.not(s.pid, pid1);
    assert.is(s.deviceErrors, 1);
    assert.is(s.restarts, 1);
    assert.ok(s.block.replayed >= 2, `replayed ${s.block.replayed}`);
    const k = kinds(s);
    const err = k.indexOf('device-error'),
      exit = k.indexOf('exit', err),
      q = k.indexOf('quarantine', exit),
      spawn = k.indexOf('spawn', q);
    assert.ok(err >= 0 && err < exit && exit < q && q < spawn, `order: ${k.join(' ')}`);
    assert.ok(
      s.events.some((e) => e.kind === 'stop' && e.text.includes('device error (fixture: an uncorrectable error)')),
      'the kill says why',
    );
    assert.is((s.status() as { deviceErrors: number }).deviceErrors, 1);
  } finally {
    await s.stop();
  }
});

test.run();
