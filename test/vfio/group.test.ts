import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Container, Group, VfioCode, VfioError } from 'vfio-bindings';
import { FakeSys, nvmeLikeDevice } from '../sys/fake-sys.js';
import { SysfsTree } from './sysfs-tree.js';

function throwsCode(fn: () => unknown, code: string, also?: RegExp): VfioError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, VfioError);
    const err = e as VfioError;
    assert.is(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    if (also) assert.match(err.message, also);
    return err;
  }
  throw new assert.Assertion({ message: `expected ${code}, nothing thrown`, operator: 'throws', expects: code, actual: undefined });
}

test('status is viable, then viable + container set after SET_CONTAINER', () => {
  const sys = new FakeSys();
  const c = Container.open({ sys });
  const g = Group.open(1, { sys });
  assert.equal(g.status(), { flags: 1, viable: true, containerSet: false });
  g.setContainer(c);
  assert.equal(g.status(), { flags: 3, viable: true, containerSet: true });
  assert.is(g.container, c);
  g.unsetContainer();
  assert.is(g.status().flags, 1);
  c.close();
  g.close();
});

test('a missing group: ERR_VFIO_GROUP_NOT_FOUND with the bind fix', () => {
  const e = throwsCode(() => Group.open(7, { sys: new FakeSys() }), VfioCode.GROUP_NOT_FOUND, /no VFIO group 7/);
  assert.is(e.errnoName, 'ENOENT');
  assert.match(e.fix ?? '', /vfio-pci/);
});

test('a group open elsewhere: ERR_VFIO_GROUP_BUSY (EBUSY)', () => {
  const sys = new FakeSys();
  Group.open(1, { sys });
  const e = throwsCode(() => Group.open(1, { sys }), VfioCode.GROUP_BUSY, /already open/);
  assert.is(e.errnoName, 'EBUSY');
  assert.match(e.fix ?? '', /fuser/);
});

test('permission denied: ERR_VFIO_ACCESS', () => {
  throwsCode(() => Group.open(1, { sys: new FakeSys({ denied: ['/dev/vfio/1'] }) }), VfioCode.ACCESS);
});

test('a group that is not viable lists each device and its driver, and how to unbind', () => {
  const tree = new SysfsTree({
    devices: [
      { address: '0000:00:01.0', vendor: 0x1b36, device: 0x0010, class: 0x010802, driver: 'vfio-pci', group: 1 },
      { address: '0000:00:01.1', vendor: 0x8086, device: 0x10d3, class: 0x020000, driver: 'e1000e', group: 1 },
    ],
  });
  try {
    const sys = new FakeSys({ groups: { 1: { viable: false, devices: { '0000:00:01.0': nvmeLikeDevice() } } } });
    const c = Container.open({ sys });
    const g = Group.open(1, { sys, sysfsRoot: tree.root });
    const e = throwsCode(() => g.setContainer(c), VfioCode.GROUP_NOT_VIABLE, /0000:00:01\.0 \(vfio-pci\), 0000:00:01\.1 \(e1000e\)/);
    assert.match(e.fix ?? '', /echo 0000:00:01\.1 > \/sys\/bus\/pci\/drivers\/e1000e\/unbind/);
    assert.not.match(e.fix ?? '', /drivers\/vfio-pci/);
  } finally {
    tree.remove();
  }
});

test('device(): by PCI address, only once the IOMMU is set; unknown and malformed addresses explained', () => {
  const sys = new FakeSys();
  const c = Container.open({ sys });
  const g = Group.open(1, { sys });
  g.setContainer(c);
  throwsCode(() => g.device('0000:00:01.0'), VfioCode.IOMMU_NOT_SET, /no container with an IOMMU set/);
  c.setIommu();
  const d = g.device('0000:00:01.0');
  assert.is(d.name, '0000:00:01.0');
  assert.is(g.openDevices.length, 1);
  throwsCode(() => g.device('0000:00:09.0'), VfioCode.DEVICE_NOT_FOUND, /no device 0000:00:09\.0/);
  throwsCode(() => g.device('00:01.0'), VfioCode.ARG, /not a PCI address/);
  throwsCode(() => g.device('0000:00:01.0\0x'), VfioCode.ARG);
});

test('unsetContainer with an open device is refused; close() closes in order device, group (unset), fd', () => {
  const sys = new FakeSys();
  const c = Container.open({ sys });
  const g = Group.open(1, { sys });
  g.setContainer(c);
  c.setIommu();
  const d = g.device('0000:00:01.0');
  throwsCode(() => g.unsetContainer(), VfioCode.ARG, /open device/);
  const fdsBefore = sys.openFdCount();
  g.close();
  assert.ok(d.isClosed);
  assert.ok(g.isClosed);
  assert.is(g.container, undefined);
  assert.not.ok(c.iommuSet, 'the last group left: the container is reset');
  assert.is(sys.openFdCount(), fdsBefore - 2);
  assert.not.ok(sys.groups.get(1)!.open);
  g.close();
  d.close();
  throwsCode(() => g.status(), VfioCode.CLOSED);
  // The group can be opened again once closed.
  Group.open(1, { sys }).close();
  c.close();
});

test('closing the container first closes its groups and their devices', () => {
  const sys = new FakeSys();
  const c = Container.open({ sys });
  const g = Group.open(1, { sys });
  g.setContainer(c);
  c.setIommu();
  const d = g.device('0000:00:01.0');
  c.close();
  assert.ok(d.isClosed && g.isClosed && c.isClosed);
  assert.is(sys.openFdCount(), 0);
});

test('attaching twice is refused', () => {
  const sys = new FakeSys();
  const c = Container.open({ sys });
  const g = Group.open(1, { sys });
  g.setContainer(c);
  throwsCode(() => g.setContainer(c), VfioCode.ARG, /already attached/);
  throwsCode(() => Group.open(-1, { sys }), VfioCode.ARG);
});

test.run();
