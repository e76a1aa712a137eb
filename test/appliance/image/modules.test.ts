import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { moduleName, parseModuleIndex, resolveModules } from '../../../appliance/image/modules.js';
import { refused } from '../refused.js';

// Lines as depmod writes them for Debian's 6.1 kernel (a subset).
const DEP = `kernel/drivers/vfio/vfio.ko:
kernel/drivers/vfio/vfio_iommu_type1.ko: kernel/drivers/vfio/vfio.ko
kernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko kernel/drivers/vfio/vfio_virqfd.ko kernel/virt/lib/irqbypass.ko kernel/drivers/vfio/vfio.ko
kernel/drivers/vfio/pci/vfio-pci-core.ko: kernel/drivers/vfio/vfio_virqfd.ko kernel/virt/lib/irqbypass.ko kernel/drivers/vfio/vfio.ko
kernel/drivers/vfio/vfio_virqfd.ko:
kernel/virt/lib/irqbypass.ko:
kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
`;
const BUILTIN = 'kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n';

test('module names: basename, no .ko(.xz), hyphens as underscores', () => {
  assert.is(moduleName('kernel/drivers/vfio/pci/vfio-pci.ko'), 'vfio_pci');
  assert.is(moduleName('kernel/fs/9p/9p.ko.xz'), '9p');
  assert.is(moduleName('vfio-pci-core'), 'vfio_pci_core');
});

test('dependencies come before the modules that need them, each once', () => {
  const order = resolveModules(parseModuleIndex(DEP, BUILTIN), ['vfio_pci', 'vfio-iommu-type1', '9p']).map((m) => m.name);
  assert.is(new Set(order).size, order.length, 'no duplicates');
  const before = (a: string, b: string) => assert.ok(order.indexOf(a) < order.indexOf(b), `${a} before ${b} in ${order.join(' ')}`);
  before('vfio', 'vfio_pci_core');
  before('vfio_virqfd', 'vfio_pci_core');
  before('irqbypass', 'vfio_pci_core');
  before('vfio_pci_core', 'vfio_pci');
  before('vfio', 'vfio_iommu_type1');
  before('netfs', 'fscache');
  before('fscache', '9p');
  before('9pnet', '9p');
  assert.is(order.length, 10);
});

test('built-in modules are left out; unknown ones are an error naming who needed them', () => {
  const index = parseModuleIndex(
    DEP + 'kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_missing.ko\n',
    BUILTIN,
  );
  assert.equal(resolveModules(index, ['virtio']), []);
  try {
    resolveModules(index, ['virtio_pci']);
    assert.unreachable('should throw');
  } catch (e) {
    assert.is((e as { code: string }).code, 'ERR_IMAGE_MODULE_MISSING');
    assert.match((e as Error).message, /virtio_missing.*needed by virtio_pci/);
  }
  assert.throws(() => resolveModules(index, ['nope']), /'nope' is neither/);
});

test('a cycle and a malformed line are reported', () => {
  assert.throws(() => resolveModules(parseModuleIndex('a.ko: b.ko\nb.ko: a.ko\n'), ['a']), refused('ERR_IMAGE_MODULE_INDEX', /cycle/));
  assert.throws(() => parseModuleIndex('kernel/x.ko kernel/y.ko\n'), refused('ERR_IMAGE_MODULE_INDEX', /line 1 has no ':'/));
});

test.run();
