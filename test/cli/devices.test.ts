import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deviceRows, formatDevices, bind, unbind } from '../../cli/devices.js';
import { CliError } from '../../cli/errors.js';
import { SysfsTree } from '../vfio/sysfs-tree.js';

function tree(): SysfsTree {
  return new SysfsTree({
    devices: [
      { address: '0000:00:00.0', vendor: 0x8086, device: 0x29c0, class: 0x060000, group: 0 },
      { address: '0000:00:01.0', vendor: 0x1b36, device: 0x0010, class: 0x010802, driver: 'nvme', group: 1 },
      { address: '0000:00:02.0', vendor: 0x8086, device: 0x10d3, class: 0x020000, driver: 'e1000e', group: 2 },
      // two functions sharing group 3: the sound function keeps it unviable for the NIC
      { address: '0000:00:03.0', vendor: 0x8086, device: 0x10d3, class: 0x020000, driver: 'vfio-pci', group: 3 },
      { address: '0000:00:03.1', vendor: 0x8086, device: 0x293e, class: 0x040300, driver: 'snd_hda_intel', group: 3 },
    ],
    drivers: ['vfio-pci', 'nvme', 'e1000e', 'snd_hda_intel'],
    iommus: ['dmar0'],
  });
}

async function quiet<T>(fn: () => Promise<T>): Promise<{ value: T; out: string }> {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof process.stdout.write;
  try {
    return { value: await fn(), out };
  } finally {
    process.stdout.write = write;
  }
}

test('devices: ids, kind, driver, group, and viability naming the member that blocks it', () => {
  const t = tree();
  try {
    const rows = deviceRows({ root: t.root });
    assert.equal(
      rows.map((r) => r.address),
      ['0000:00:01.0', '0000:00:02.0', '0000:00:03.0', '0000:00:03.1'],
      'bridges left out without --all',
    );
    const nvme = rows[0]!;
    assert.equal([nvme.ids, nvme.kind, nvme.driver, nvme.group, nvme.viable], ['1b36:0010', 'nvme', 'nvme', 1, true]);
    const shared = rows[2]!;
    assert.is(shared.viable, false);
    assert.equal(shared.blockers, [{ address: '0000:00:03.1', driver: 'snd_hda_intel' }]);
    assert.match(formatDevices(rows), /0000:00:03\.0 .*NOT viable: 0000:00:03\.1 on snd_hda_intel/);
    assert.is(deviceRows({ root: t.root, all: true }).length, 5);
  } finally {
    t.remove();
  }
});

test('devices on a machine with no IOMMU says so and what to use instead', () => {
  const t = new SysfsTree({ devices: [{ address: '0000:00:02.0', vendor: 0x1af4, device: 0x1042, class: 0x010000, driver: 'virtio-pci' }] });
  try {
    const rows = deviceRows({ root: t.root });
    assert.is(rows[0]!.viable, null);
    assert.match(formatDevices(rows), /no IOMMU.*simulator.*lab/s);
  } finally {
    t.remove();
  }
});

test('bind hands a function to vfio-pci and says how to give it back; unbind gives it back', async () => {
  const t = tree();
  const options = { root: t.root, write: t.kernelWriter({ '0000:00:01.0': 'nvme' }) };
  try {
    const b = await quiet(() => bind(['00:01.0'], options));
    assert.is(b.value, 0);
    assert.match(b.out, /0000:00:01\.0: bound to vfio-pci \(was nvme; give it back with: dmabox unbind 0000:00:01\.0 --driver nvme\)/);
    assert.is(t.driverOf('0000:00:01.0'), 'vfio-pci');
    const u = await quiet(() => unbind(['0000:00:01.0', '--driver', 'nvme'], options));
    assert.match(u.out, /released from vfio-pci, now on nvme/);
    assert.is(t.driverOf('0000:00:01.0'), 'nvme');
  } finally {
    t.remove();
  }
});

test('bad addresses and usage are clear errors', async () => {
  const t = tree();
  try {
    for (const argv of [['nvme0'], []]) {
      try {
        await bind(argv, { root: t.root });
        assert.unreachable();
      } catch (e) {
        assert.instance(e, CliError);
        assert.is((e as CliError).code, 'ERR_CLI_USAGE');
      }
    }
    try {
      await unbind(['0000:00:01.0', '--driver'], { root: t.root });
      assert.unreachable();
    } catch (e) {
      assert.is((e as { code: string }).code, 'ERR_CLI_USAGE');
    }
  } finally {
    t.remove();
  }
});

test.run();
