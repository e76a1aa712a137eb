/**
 * The VFIO side of the sandbox over vfio-bindings' fake seam (test/sys/fake-sys.ts), without
 * hardware: windows mapped with exactly their access, the container's platform routing MSI-X to
 * the eventfds the manager made, and quarantine turning bus mastering off and unrouting vectors
 * BEFORE the reset. The same code runs on QEMU's NVMe in the lab (test/lab/sandbox/).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Device, IOCTL, VFIO } from 'vfio-bindings';
import { parsePolicies } from '../../policies/index.js';
import { GrantAllocator } from '../../sandbox/container/dma.js';
import { VfioContainerPlatform } from '../../sandbox/container/vfio-platform.js';
import { VfioDevice } from '../../sandbox/manager/vfio-device.js';
import { FakeSys } from '../sys/fake-sys.js';

const OK = {
  iommus: [{ name: 'dmar0', kind: 'intel-vt-d' as const }],
  groups: [],
  interruptRemapping: { state: 'enabled' as const, evidence: '' },
  vfio: true,
  noIommuMode: false,
  unsafeInterrupts: false,
  summary: '',
};

/** FakeSys that notes, at each VFIO_DEVICE_RESET, whether bus mastering and MSI-X routing were still on. */
class RecordingSys extends FakeSys {
  readonly atReset: { bme: boolean; msixRouted: boolean }[] = [];
  probe: (() => { bme: boolean; msixRouted: boolean }) | undefined;
  override ioctl(fd: number, request: number, arg?: Uint8Array | number): number {
    if (request === IOCTL.VFIO_DEVICE_RESET && this.probe) this.atReset.push(this.probe());
    return super.ioctl(fd, request, arg);
  }
}

function deviceModel(sys: FakeSys) {
  for (const e of sys.fds.values()) if (e.kind === 'device') return e.model;
  throw new Error('no device open');
}

const policy = parsePolicies(
  `version: 1
name: vfio-unit
device: { pci: "0000:00:01.0" }
driver: { name: nvme, interrupts: msix }
windows: [ { size: 64KiB, access: read, label: q }, { size: 2MiB, label: data } ]
`,
  'x.yaml',
).policies[0]!.policy;

test('windows mapped with their access; the container routes MSI-X to handed-over eventfds; quarantine: BME off and vectors unrouted before the reset', () => {
  const sys = new RecordingSys();
  const d = new VfioDevice(policy, sys, { iommu: OK, platform: { group: 1 } });
  try {
    assert.equal(
      d.grants.map((g) => [g.label, g.perm.read, g.perm.write]),
      [
        ['q', true, false],
        ['data.device-reads', true, false],
        ['data.device-writes', false, true],
      ],
    );
    let maps: { iova: bigint; flags: number }[] = [];
    for (const e of sys.fds.values()) if (e.kind === 'container') maps = e.state.maps;
    for (const g of d.grants) {
      const m = maps.find((x) => x.iova === g.window.iova)!;
      assert.is(m.flags, (g.perm.read ? VFIO.VFIO_DMA_MAP_FLAG_READ : 0) | (g.perm.write ? VFIO.VFIO_DMA_MAP_FLAG_WRITE : 0), g.label);
    }
    const model = deviceModel(sys);
    // The container's side: a dup of the device fd would be inherited; here the same fd number.
    const fds = d.newIrqFds(2);
    const grants = d.grants.map((g, id) => ({ id, iova: g.window.iova, size: g.window.size, perm: g.perm, bytes: g.window.bytes }));
    const cp = new VfioContainerPlatform('sandbox:vfio-unit', Device.fromFd(d.deviceFd(), { sys }), new GrantAllocator(grants), sys, fds);
    assert.is(cp.irq.count('msix'), 2, 'as many vectors as eventfds were handed over');
    cp.irq.enable('msix', 2);
    assert.equal(model.irqFds.get(VFIO.VFIO_PCI_MSIX_IRQ_INDEX), fds, 'the device signals the manager-made eventfds');
    cp.config.write16(4, cp.config.read16(4) | 0x4); // the driver turns bus mastering on
    sys.probe = () => ({ bme: (d.platform.config.read16(4) & 0x4) !== 0, msixRouted: model.irqFds.has(VFIO.VFIO_PCI_MSIX_IRQ_INDEX) });
    d.quarantine();
    assert.equal(sys.atReset, [{ bme: false, msixRouted: false }]);
    assert.equal(d.quarantineLog, ['bme-off', 'flr']);
    assert.is(model.resets, 1);
  } finally {
    d.release();
  }
  assert.is(sys.openFdCount(), 0, 'every fd closed: device, group, container, windows, eventfds');
});

test.run();
