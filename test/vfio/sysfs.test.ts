import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bindToVfio,
  domainKind,
  findPciFunctions,
  interruptRemappingFrom,
  iommuGroupDevices,
  iommuStatus,
  listPciFunctions,
  pciFunction,
  releaseFromVfio,
  VfioCode,
  VfioError,
} from 'vfio-bindings';
import { SysfsTree } from './sysfs-tree.js';

const NVME = '0000:00:01.0';
const NIC = '0000:00:02.0';

function lab(): SysfsTree {
  return new SysfsTree({
    devices: [
      { address: '0000:00:00.0', vendor: 0x8086, device: 0x29c0, class: 0x060000, group: 0 },
      { address: NVME, vendor: 0x1b36, device: 0x0010, class: 0x010802, driver: 'nvme', group: 1 },
      { address: NIC, vendor: 0x8086, device: 0x10d3, class: 0x020000, driver: 'e1000e', group: 2 },
    ],
    drivers: ['vfio-pci', 'nvme', 'e1000e'],
    groupTypes: { 0: 'DMA', 1: 'DMA-FQ', 2: 'identity' },
    iommus: ['dmar0'],
  });
}

function code(fn: () => unknown, c: string, re?: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, VfioError);
    assert.is((e as VfioError).code, c, (e as Error).message);
    if (re) assert.match((e as Error).message + String((e as VfioError).fix), re);
    return;
  }
  assert.unreachable(`expected ${c}`);
}

test('list PCI functions with ids, class, driver and IOMMU group; find by vendor:device', () => {
  const t = lab();
  try {
    const all = listPciFunctions({ root: t.root });
    assert.equal(
      all.map((f) => f.address),
      ['0000:00:00.0', NVME, NIC],
    );
    assert.equal(all[1], { address: NVME, vendor: 0x1b36, device: 0x0010, class: 0x010802, driver: 'nvme', iommuGroup: 1 });
    assert.is(all[0]!.driver, undefined);
    assert.equal(
      findPciFunctions(0x8086, 0x10d3, { root: t.root }).map((f) => f.address),
      [NIC],
    );
    assert.equal(findPciFunctions(0x1234, 0x5678, { root: t.root }), []);
    assert.equal(iommuGroupDevices(1, { root: t.root }), [{ address: NVME, driver: 'nvme' }]);
  } finally {
    t.remove();
  }
});

test('errors: missing function, malformed address, missing sysfs, group not there', () => {
  const t = lab();
  try {
    code(() => pciFunction('0000:00:09.0', { root: t.root }), VfioCode.SYSFS, /no PCI function/);
    code(() => pciFunction('0:1.0', { root: t.root }), VfioCode.ARG, /not a PCI address/);
    code(() => listPciFunctions({ root: join(t.root, 'nope') }), VfioCode.SYSFS, /sysfs mounted/);
    code(() => iommuGroupDevices(9, { root: t.root }), VfioCode.SYSFS, /no IOMMU group 9/);
    writeFileSync(join(t.root, 'bus/pci/devices', NVME, 'vendor'), 'garbage\n');
    code(() => pciFunction(NVME, { root: t.root }), VfioCode.SYSFS, /not a hex number/);
  } finally {
    t.remove();
  }
});

test('bind to vfio-pci: driver_override, unbind, drivers_probe, in that order; release gives it back', () => {
  const t = lab();
  try {
    const write = t.kernelWriter({ [NVME]: 'nvme' });
    const r = bindToVfio(NVME, { root: t.root, write });
    assert.equal(r, { address: NVME, originalDriver: 'nvme', alreadyBound: false });
    assert.is(t.driverOf(NVME), 'vfio-pci');
    assert.equal(t.writes, [
      [`/bus/pci/devices/${NVME}/driver_override`, 'vfio-pci'],
      [`/bus/pci/drivers/nvme/unbind`, NVME],
      ['/bus/pci/drivers_probe', NVME],
    ]);
    // Binding again is a no-op that release leaves alone.
    const again = bindToVfio(NVME, { root: t.root, write });
    assert.ok(again.alreadyBound);
    releaseFromVfio(again, { root: t.root, write });
    assert.is(t.driverOf(NVME), 'vfio-pci');
    releaseFromVfio(r, { root: t.root, write });
    assert.is(t.driverOf(NVME), 'nvme');
  } finally {
    t.remove();
  }
});

test('bind refuses without vfio-pci loaded, and reports a probe that did not take', () => {
  const t = new SysfsTree({ devices: [{ address: NVME, vendor: 0x1b36, device: 0x10, class: 0x010802, driver: 'nvme', group: 1 }], drivers: ['nvme'] });
  try {
    code(() => bindToVfio(NVME, { root: t.root, write: t.kernelWriter({}) }), VfioCode.SYSFS, /modprobe vfio-pci/);
    mkdirSync(join(t.root, 'bus/pci/drivers/vfio-pci'));
    // A kernel that ignores driver_override: the function ends with no driver.
    const deaf = (p: string, v: string): void => {
      if (p.endsWith('driver_override')) return;
      t.kernelWriter({})(p, v);
    };
    code(() => bindToVfio(NVME, { root: t.root, write: deaf }), VfioCode.SYSFS, /bound to no driver after the probe/);
    code(
      () =>
        bindToVfio(NVME, {
          root: t.root,
          write: () => {
            throw new Error('EACCES');
          },
        }),
      VfioCode.SYSFS,
      /needs root/,
    );
  } finally {
    t.remove();
  }
});

test('IOMMU status: Intel DMAR, groups with domain kinds and devices, remapping from /proc/interrupts', () => {
  const t = lab();
  try {
    const proc = join(t.root, 'proc');
    mkdirSync(proc);
    writeFileSync(join(proc, 'interrupts'), '  24:   0   0  IR-PCI-MSI 65536-edge  nvme0q0\n   9:   0   0  IR-IO-APIC   9-fasteoi   acpi\n');
    const s = iommuStatus({ root: t.root, procRoot: proc, devRoot: join(t.root, 'dev') });
    assert.equal(s.iommus, [{ name: 'dmar0', kind: 'intel-vt-d' }]);
    assert.equal(
      s.groups.map((g) => [g.group, g.type, g.domain]),
      [
        [0, 'DMA', 'translated'],
        [1, 'DMA-FQ', 'translated'],
        [2, 'identity', 'passthrough'],
      ],
    );
    assert.equal(s.groups[1]!.devices, [{ address: NVME, driver: 'nvme' }]);
    assert.is(s.interruptRemapping.state, 'enabled');
    assert.not.ok(s.vfio);
    assert.not.ok(s.noIommuMode);
    assert.match(s.summary, /passthrough/);
  } finally {
    t.remove();
  }
});

test('IOMMU status without an IOMMU, and in no-IOMMU mode, says so; remapping unknown when it cannot be told', () => {
  const t = new SysfsTree({ devices: [{ address: NVME, vendor: 0x1b36, device: 0x10, class: 0x010802, driver: 'nvme' }] });
  try {
    const s = iommuStatus({ root: t.root, procRoot: join(t.root, 'noproc') });
    assert.equal(s.iommus, []);
    assert.equal(s.groups, []);
    assert.is(s.interruptRemapping.state, 'unknown');
    assert.match(s.summary, /no IOMMU/);
    mkdirSync(join(t.root, 'module/vfio/parameters'), { recursive: true });
    writeFileSync(join(t.root, 'module/vfio/parameters/enable_unsafe_noiommu_mode'), 'Y\n');
    assert.match(iommuStatus({ root: t.root }).summary, /UNCONFINED/);
  } finally {
    t.remove();
  }
});

test('interrupt remapping and domain kinds from their raw texts', () => {
  assert.is(interruptRemappingFrom('  9:  0  IO-APIC   9-fasteoi   acpi\n 25: 0 PCI-MSI 1-edge x\n').state, 'disabled');
  assert.is(interruptRemappingFrom(' 0: 1 IR-IO-APIC 2-edge timer\n').state, 'enabled');
  assert.is(interruptRemappingFrom('nothing here').state, 'unknown');
  assert.is(interruptRemappingFrom(undefined).state, 'unknown');
  assert.is(domainKind('unmanaged'), 'translated');
  assert.is(domainKind('blocked'), 'blocked');
  assert.is(domainKind(undefined), 'unknown');
});

test.run();
