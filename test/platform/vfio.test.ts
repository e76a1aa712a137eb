/**
 * VfioPlatform over vfio-bindings' fake seam (test/sys/fake-sys.ts): the open sequence, DMA
 * windows mapped with least privilege, memlock refused before the kernel, interrupts, close order.
 * The same platform runs on real VFIO in the lab: test/lab/platform/.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VFIO } from 'vfio-bindings';
import { RLIMIT_MEMLOCK } from 'linux-sys';
import { MemlockAccount } from '../../dma/memlock.js';
import { DEVICE_READS, DEVICE_WRITES } from '../../drivers/contract/platform.js';
import { releaseFiles, VfioPlatform } from '../../platform/vfio.js';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeSys } from '../sys/fake-sys.js';
import { SysfsTree } from '../vfio/sysfs-tree.js';

const ADDR = '0000:00:01.0';
const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'no error';
};

function containerMaps(sys: FakeSys) {
  for (const e of sys.fds.values()) if (e.kind === 'container') return e.state.maps;
  return [];
}

test('open: container, group, IOMMU, device; bus mastering on request; BAR0 registers', () => {
  const sys = new FakeSys();
  const p = VfioPlatform.open(ADDR, { sys, group: 1, busMaster: true, hugePages: 'never' });
  assert.is(p.name, 'vfio:0000:00:01.0');
  assert.is(p.config.read16(0), 0x1b36);
  assert.is(p.config.read16(4) & 0x4, 0x4, 'bus master enabled');
  assert.is(p.bar(0).read64(0), 0x004018200f0107ffn, 'CAP, low dword then high');
  assert.is(p.bar(0), p.bar(0), 'one mapping per BAR');
  assert.is(p.dma.pageSize, 4096);
  p.close();
  assert.is(sys.openFdCount(), 0, 'every fd closed');
  assert.is(sys.mappings.size, 0, 'every mmap undone');
});

test('windows: memfd memory, IOVAs inside the reported ranges, mapped with exactly the permission asked', () => {
  const sys = new FakeSys();
  const p = VfioPlatform.open(ADDR, { sys, group: 1, hugePages: 'never' });
  const sq = p.dma.alloc(4096, DEVICE_READS, { label: 'sq' });
  const cq = p.dma.alloc(4096, DEVICE_WRITES, { label: 'cq' });
  const maps = containerMaps(sys);
  assert.is(maps.length, 2);
  const bySq = maps.find((m) => m.iova === sq.iova)!;
  assert.is(bySq.flags, VFIO.VFIO_DMA_MAP_FLAG_READ);
  assert.is(maps.find((m) => m.iova === cq.iova)!.flags, VFIO.VFIO_DMA_MAP_FLAG_WRITE);
  assert.ok(sq.iova >= 4096n && sq.iova + 4096n <= 0xfee00000n);
  sq.bytes[0] = 42;
  assert.is(new Uint8Array(sys.mappings.get(bySq.vaddr)!.bytes)[0], 42, 'the window is the mmapped memfd');
  p.dma.revoke(cq);
  assert.is(containerMaps(sys).length, 1);
  p.close();
  assert.is(sys.pinned, 0n);
});

test('memlock, unprivileged: refused with ERR_DMA_MEMLOCK before MAP_DMA would fail', () => {
  const sys = new FakeSys({ memlock: 64n * 1024n });
  const unprivileged = 'VmLck:\t0 kB\nCapEff:\t0000000000000000\n';
  const memlock = MemlockAccount.fromProcess(sys.getrlimit(RLIMIT_MEMLOCK).cur, unprivileged);
  const p = VfioPlatform.open(ADDR, { sys, group: 1, hugePages: 'never', memlock });
  p.dma.alloc(32 * 1024, DEVICE_READS);
  const mappingsBefore = sys.mappings.size;
  assert.is(
    code(() => p.dma.alloc(64 * 1024, DEVICE_READS)),
    'ERR_DMA_MEMLOCK',
  );
  assert.is(sys.mappings.size, mappingsBefore, 'refused before any memory was made');
  assert.is(containerMaps(sys).length, 1);
  p.close();
});

test('memlock, with CAP_IPC_LOCK: not counted by us; a kernel refusal is still explained', () => {
  const sys = new FakeSys({ memlock: 64n * 1024n });
  const root = 'VmLck:\t0 kB\nCapEff:\t000001ffffffffff\n';
  const memlock = MemlockAccount.fromProcess(sys.getrlimit(RLIMIT_MEMLOCK).cur, root);
  const p = VfioPlatform.open(ADDR, { sys, group: 1, hugePages: 'never', memlock });
  assert.is(
    code(() => p.dma.alloc(128 * 1024, DEVICE_READS)),
    'ERR_VFIO_MEMLOCK',
  );
  assert.is(p.dma.live, 0, 'nothing left behind');
  assert.is(sys.mappings.size, 0, 'the memfd was unmapped again');
  p.close();
});

test('MSI-X vectors fire through eventfds; INTx is unmasked after each interrupt', async () => {
  const sys = new FakeSys();
  const p = VfioPlatform.open(ADDR, { sys, group: 1, hugePages: 'never' });
  assert.is(p.irq.count('msix'), 65);
  const vs = p.irq.enable('msix', 2);
  let n = 0;
  vs[1]!.onFire(() => n++);
  sys.fire(ADDR, VFIO.VFIO_PCI_MSIX_IRQ_INDEX, 1);
  await new Promise((r) => setImmediate(r));
  assert.is(n, 1);
  const [intx] = p.irq.enable('intx', 1);
  let m = 0;
  intx!.onFire(() => m++);
  sys.fire(ADDR, VFIO.VFIO_PCI_INTX_IRQ_INDEX, 0);
  await new Promise((r) => setImmediate(r));
  assert.is(m, 1);
  assert.is(sys.model(ADDR).unmasks, 1);
  p.irq.disable();
  p.close();
});

test('reset goes to VFIO_DEVICE_RESET; use after close is refused', () => {
  const sys = new FakeSys();
  const p = VfioPlatform.open(ADDR, { sys, group: 1, busMaster: true, hugePages: 'never' });
  p.reset();
  assert.is(sys.model(ADDR).resets, 1);
  p.close();
  assert.is(new DataView(sys.model(ADDR).regions[7]!.bytes!).getUint16(4, true) & 0x4, 0, 'bus mastering off at close');
  assert.is(
    code(() => p.bar(0)),
    'ERR_VFIO_CLOSED',
  );
  p.close();
});

test('the group comes from sysfs; a function without one is explained (IOMMU off)', () => {
  const tree = new SysfsTree({
    devices: [
      { address: ADDR, vendor: 0x1b36, device: 0x10, class: 0x010802, driver: 'vfio-pci', group: 1 },
      { address: '0000:00:02.0', vendor: 0x8086, device: 0x10d3, class: 0x020000 },
    ],
    drivers: ['vfio-pci'],
  });
  try {
    const sys = new FakeSys();
    const p = VfioPlatform.open(ADDR, { sys, sysfsRoot: tree.root, hugePages: 'never' });
    assert.is(p.group.number, 1);
    p.close();
    let msg = '';
    try {
      VfioPlatform.open('0000:00:02.0', { sys, sysfsRoot: tree.root });
    } catch (e) {
      msg = (e as Error).message;
    }
    assert.match(msg, /no IOMMU group/);
    assert.match(msg, /intel_iommu=on/);
    assert.is(sys.openFdCount(), 0);
  } finally {
    tree.remove();
  }
});

test('a failed open closes what it opened', () => {
  const sys = new FakeSys({ interruptRemapping: false });
  assert.is(
    code(() => VfioPlatform.open(ADDR, { sys, group: 1 })),
    'ERR_VFIO_NO_INTERRUPT_REMAPPING',
  );
  assert.is(sys.openFdCount(), 0);
});

test('the sysfs files that give a function back are opened at bind and written through those fds at release (the manager has left root by then)', () => {
  const root = mkdtempSync(join(tmpdir(), 'dmabox-release-'));
  const addr = '0000:00:01.0';
  const files = [join(root, 'bus/pci/devices', addr, 'driver_override'), join(root, 'bus/pci/drivers/vfio-pci/unbind'), join(root, 'bus/pci/drivers_probe')];
  for (const f of files) {
    mkdirSync(join(f, '..'), { recursive: true });
    writeFileSync(f, 'vfio-pci');
  }
  assert.is(releaseFiles({ address: addr, originalDriver: undefined, alreadyBound: true }, root), undefined, 'nothing to give back');
  const r = releaseFiles({ address: addr, originalDriver: 'nvme', alreadyBound: false }, root)!;
  // The paths go out of reach (as root's files do for the manager after set-up): the writes still land.
  for (const f of files) renameSync(f, `${f}.away`);
  r.write(files[0]!, '\n');
  r.write(files[2]!, addr);
  r.close();
  assert.is(readFileSync(`${files[0]}.away`, 'utf8'), '\n');
  assert.is(readFileSync(`${files[2]}.away`, 'utf8'), addr);
});

test.run();
