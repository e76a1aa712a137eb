/**
 * Lab (real sysfs in the QEMU guest): vfio-bindings' sysfs helpers against the kernel. The e1000e
 * is given back (driver_override cleared, unbound from vfio-pci, re-probed: the guest loads no
 * e1000e driver, so it ends with none), then bound to vfio-pci again, and its group node returns.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { bindToVfio, listPciFunctions, pciFunction, releaseFromVfio } from 'vfio-bindings';
import { E1000E_IDS, findOne, inLab, NVME_IDS, openStack, sleepMs } from './lab-env.js';

test('listPciFunctions sees both lab devices with their ids, class, vfio-pci and groups', () => {
  inLab();
  const all = listPciFunctions();
  const nvme = all.find((f) => f.vendor === NVME_IDS.vendor && f.device === NVME_IDS.device)!;
  const nic = all.find((f) => f.vendor === E1000E_IDS.vendor && f.device === E1000E_IDS.device)!;
  assert.ok(nvme && nic, 'both found');
  assert.is(nvme.class, 0x010802);
  assert.is(nic.class, 0x020000);
  assert.is(nvme.driver, 'vfio-pci');
  assert.ok(nvme.iommuGroup !== undefined && nic.iommuGroup !== undefined && nvme.iommuGroup !== nic.iommuGroup);
});

test('release the e1000e from vfio-pci and bind it again through driver_override + drivers_probe', () => {
  inLab();
  const nic = findOne(E1000E_IDS);
  const node = `/dev/vfio/${nic.iommuGroup}`;
  assert.ok(bindToVfio(nic.address).alreadyBound, 'binding a function already on vfio-pci is a no-op');
  // A receipt as if vfio-pci had taken it from no driver: release gives it back to none.
  releaseFromVfio({ address: nic.address, originalDriver: undefined, alreadyBound: false });
  try {
    const after = pciFunction(nic.address);
    assert.is(after.driver, undefined, 'no driver after release (the guest has no e1000e module)');
    assert.is(readFileSync(`/sys/bus/pci/devices/${nic.address}/driver_override`, 'utf8').trim(), '(null)', 'driver_override cleared');
    assert.not.ok(existsSync(node), `${node} went with vfio-pci`);
  } finally {
    const r = bindToVfio(nic.address);
    assert.equal(r, { address: nic.address, originalDriver: undefined, alreadyBound: false });
  }
  assert.is(pciFunction(nic.address).driver, 'vfio-pci');
  // udev-less guest: devtmpfs creates the node; give it a moment.
  const end = Date.now() + 2000;
  while (!existsSync(node) && Date.now() < end) sleepMs(20);
  const s = openStack(nic);
  try {
    assert.is(s.group.status().flags, 3, 'viable, in a container');
    assert.is(s.device.config.read16(0), E1000E_IDS.vendor, 'the device answers through VFIO again');
  } finally {
    s.close();
  }
});

test.run();
