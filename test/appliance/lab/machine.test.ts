import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEVICE_ERROR_SLOTS, kernelCommandLine, labMac, placeDevices, qemuArgs, type MachineSpec } from '../../../appliance/lab/machine.js';
import { refused } from '../refused.js';

const suite: MachineSpec = {
  kernel: '/k/vmlinux',
  initrd: '/k/initrd.cpio',
  accel: 'tcg',
  memMiB: 2048,
  cpus: 2,
  nvme: [{ image: '/run/x/nvme0.img', serial: 'lab0' }],
  e1000e: [{ net: 'slirp', mac: labMac(0) }],
  shares: [
    { tag: 'hostroot', path: '/', readonly: true },
    { tag: 'labrun', path: '/tmp/run', readonly: false },
  ],
  dmarTraceFile: '/tmp/run/dmar.trace',
};

/** The value following `flag` each time it appears. */
const values = (args: string[], flag: string): string[] => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));

test('the suite machine: q35 TCG, VT-d, NVMe at 00:01.0, e1000e at 00:02.0, debug exit, 9p shares, trace, kernel', () => {
  const a = qemuArgs(suite);
  assert.equal(values(a, '-M'), ['q35,accel=tcg']);
  assert.equal(values(a, '-cpu'), ['max']);
  assert.equal(values(a, '-m'), ['2048M']);
  assert.equal(values(a, '-smp'), ['2']);
  for (const f of ['-nodefaults', '-no-reboot']) assert.ok(a.includes(f), f);
  assert.equal(values(a, '-serial'), ['stdio']);
  const devices = values(a, '-device');
  assert.is(devices[0], 'intel-iommu', 'the IOMMU comes before the PCI devices it translates for');
  assert.ok(devices.includes('nvme,drive=nvme0,serial=lab0,bus=pcie.0,addr=0x01'), devices.join('\n'));
  assert.ok(devices.includes('e1000e,netdev=net0,romfile=,mac=52:54:00:12:34:56,bus=pcie.0,addr=0x02'), devices.join('\n'));
  assert.ok(devices.includes('isa-debug-exit,iobase=0xf4,iosize=0x04'));
  assert.ok(devices.includes('virtio-9p-pci,fsdev=fs0,mount_tag=hostroot,bus=pcie.0,addr=0x1e'));
  assert.ok(devices.includes('virtio-9p-pci,fsdev=fs1,mount_tag=labrun,bus=pcie.0,addr=0x1d'));
  assert.equal(values(a, '-drive'), ['if=none,id=nvme0,file=/run/x/nvme0.img,format=raw']);
  assert.equal(values(a, '-netdev'), ['user,id=net0']);
  assert.equal(values(a, '-fsdev'), [
    'local,id=fs0,path=/,security_model=none,multidevs=remap,readonly=on',
    'local,id=fs1,path=/tmp/run,security_model=none,multidevs=remap',
  ]);
  assert.equal(values(a, '-trace'), ['vtd_dmar_fault']);
  assert.equal(values(a, '-D'), ['/tmp/run/dmar.trace']);
  assert.equal(values(a, '-kernel'), ['/k/vmlinux']);
  assert.equal(values(a, '-initrd'), ['/k/initrd.cpio']);
  assert.equal(values(a, '-append'), ['console=ttyS0 panic=-1 intel_iommu=on no_timer_check rdinit=/init']);
});

test('no trace flags without a trace file; KVM gets the split irqchip VT-d interrupt remapping needs', () => {
  const { dmarTraceFile: _unused, ...noTrace } = suite;
  const a = qemuArgs({ ...noTrace, accel: 'kvm' });
  assert.not.ok(a.includes('-trace'));
  assert.not.ok(a.includes('-D'));
  assert.equal(values(a, '-M'), ['q35,accel=kvm,kernel-irqchip=split']);
  assert.equal(values(a, '-cpu'), ['host']);
  assert.is(values(a, '-device')[0], 'intel-iommu,intremap=on');
});

test('several devices: NVMe first, then NICs, consecutive slots; socket NICs use the given fd', () => {
  assert.equal(
    placeDevices(2, 2).map((d) => `${d.kind}${d.index}@${d.bdf}`),
    ['nvme0@0000:00:01.0', 'nvme1@0000:00:02.0', 'e1000e0@0000:00:03.0', 'e1000e1@0000:00:04.0'],
  );
  const a = qemuArgs({
    ...suite,
    nvme: [suite.nvme[0]!, { image: '/d1', serial: 'lab1' }],
    e1000e: [
      { net: 'slirp', mac: labMac(0) },
      { net: { fd: 3 }, mac: labMac(1) },
    ],
  });
  assert.equal(values(a, '-netdev'), ['user,id=net0', 'socket,id=net1,fd=3']);
  assert.ok(values(a, '-device').includes('e1000e,netdev=net1,romfile=,mac=52:54:00:12:34:57,bus=pcie.0,addr=0x04'));
  assert.throws(() => placeDevices(20, 9), refused('ERR_LAB_OPTIONS', /too many devices/));
});

test('device-error extras: blkdebug NVMe at 00:1b.0, root port at 00:1c.0 with an e1000e behind it, QMP socket; the others keep their slots', () => {
  const a = qemuArgs({
    ...suite,
    deviceErrors: {
      blkdebugNvme: { image: '/tmp/run/bd.img', config: '/tmp/run/bd.conf', serial: 'labeio' },
      aerE1000e: { net: 'slirp', mac: labMac(0x20) },
      qmpSocket: '/tmp/run/qmp.sock',
    },
  });
  const devices = values(a, '-device');
  assert.ok(devices.includes('nvme,drive=nvme0,serial=lab0,bus=pcie.0,addr=0x01'), devices.join('\n'));
  assert.ok(devices.includes('e1000e,netdev=net0,romfile=,mac=52:54:00:12:34:56,bus=pcie.0,addr=0x02'), devices.join('\n'));
  assert.ok(devices.includes('nvme,drive=nvmebd,serial=labeio,bus=pcie.0,addr=0x1b'), devices.join('\n'));
  assert.ok(devices.includes('pcie-root-port,id=labrp0,chassis=1,slot=1,hotplug=off,bus=pcie.0,addr=0x1c'), devices.join('\n'));
  assert.ok(devices.includes('e1000e,netdev=netaer,romfile=,mac=52:54:00:12:34:76,bus=labrp0,addr=0x0,id=labaer0'), devices.join('\n'));
  assert.ok(
    devices.indexOf('pcie-root-port,id=labrp0,chassis=1,slot=1,hotplug=off,bus=pcie.0,addr=0x1c') < devices.findIndex((d) => d.includes('bus=labrp0')),
    'the port before the device on its bus',
  );
  assert.ok(
    values(a, '-drive').includes('if=none,id=nvmebd,format=raw,file.driver=blkdebug,file.config=/tmp/run/bd.conf,file.image.filename=/tmp/run/bd.img'),
    'raw over blkdebug, so the raw format fires read_aio/write_aio',
  );
  assert.equal(values(a, '-netdev'), ['user,id=net0', 'user,id=netaer']);
  assert.equal(values(a, '-qmp'), ['unix:/tmp/run/qmp.sock,server=on,wait=off']);
  assert.is(DEVICE_ERROR_SLOTS.aerE1000e.bdf, '0000:01:00.0');
  // The extras take 00:1b and 00:1c: 26 slots are left for the others, not 28.
  assert.is(placeDevices(26, 0, true).length, 26);
  assert.throws(() => placeDevices(27, 0, true), refused('ERR_LAB_OPTIONS', /at most 26 NVMe and e1000e together beside the device-error extras/));
  assert.is(placeDevices(28, 0).length, 28);
  assert.throws(
    () =>
      qemuArgs({
        ...suite,
        deviceErrors: { blkdebugNvme: { image: '/a', config: '/b,c', serial: 's' }, aerE1000e: { net: 'slirp', mac: labMac(1) }, qmpSocket: '/q' },
      }),
    refused('ERR_LAB_OPTIONS', /blkdebug config path '\/b,c' contains a ','/),
  );
});

test('bad machine descriptions are refused with the reason', () => {
  assert.throws(() => qemuArgs({ ...suite, cpus: 0 }), refused('ERR_LAB_OPTIONS', /cpus/));
  assert.throws(() => qemuArgs({ ...suite, memMiB: 100 }), refused('ERR_LAB_OPTIONS', /memMiB/));
  assert.throws(() => qemuArgs({ ...suite, shares: [...suite.shares, suite.shares[0]!] }), refused('ERR_LAB_OPTIONS', /at most 2 9p shares, got 3/));
  assert.throws(() => qemuArgs({ ...suite, nvme: [{ image: '/a,b.img', serial: 'lab0' }] }), refused('ERR_LAB_OPTIONS', /contains a ','/));
  assert.throws(() => qemuArgs({ ...suite, e1000e: [{ net: { fd: 1 }, mac: labMac(0) }] }), refused('ERR_LAB_OPTIONS', /fd must be an integer >= 3/));
  assert.throws(() => labMac(-1), refused('ERR_LAB_OPTIONS', /out of range/));
});

test('kernel command line: serial console, panic reboots (QEMU exits), VT-d on, extra words last', () => {
  assert.is(kernelCommandLine(['quiet']), 'console=ttyS0 panic=-1 intel_iommu=on no_timer_check rdinit=/init quiet');
});

test.run();
