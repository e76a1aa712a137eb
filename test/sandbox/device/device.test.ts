/**
 * The device process's model host, in this process (sandbox/device/device.ts): its simulated
 * physical memory is only the memfds START names, each mapping at its IOVA with exactly the
 * announced device access (the IOMMU refuses the rest), the NVMe namespace lives in the store memfd
 * (a second mapping sees the bytes), quarantine turns bus mastering off and resets the function,
 * and every model presents the shape the manager announced to the container (deviceShape).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSys } from 'linux-sys';
import { createShared, type Shared } from '../../../sandbox/abi/shm.js';
import { deviceShape, QUARANTINE_ALL, type DeviceStart } from '../../../sandbox/abi/device.js';
import { DeviceHost, devicePlan } from '../../../sandbox/device/device.js';
import { PCI } from '../../../spec/pci/config.js';

const sys = defaultSys();

function start(model: DeviceStart['model'], mappings: DeviceStart['mappings'], mailbox: Shared): DeviceStart {
  return {
    name: 't',
    address: '0000:00:01.0',
    model,
    mailbox: { fdSlot: mailbox.fd, bytes: mailbox.size, kickFdSlot: mailbox.fd },
    irqFdSlots: [],
    mappings,
    heartbeatMs: 100,
    seccomp: 'none',
    pollMs: 0,
  };
}

test('memory is only the announced memfds, each at its IOVA with exactly its device access', () => {
  const rd = createShared(sys, 'dev-test-rd', 16384),
    wr = createShared(sys, 'dev-test-wr', 16384),
    store = createShared(sys, 'dev-test-store', 512 * 64),
    mb = createShared(sys, 'dev-test-mb', 8192);
  try {
    const host = new DeviceHost(
      sys,
      start(
        { kind: 'nvme', serial: 's', blocks: 64, blockSize: 512, mqes: 64, maxQueues: 1, storeFdSlot: store.fd },
        [
          { iova: '0x100000', size: 16384, offset: 0, memfdSize: 16384, read: true, write: false, fdSlot: rd.fd, label: 'rd' },
          { iova: '0x200000', size: 8192, offset: 8192, memfdSize: 16384, read: false, write: true, fdSlot: wr.fd, label: 'wr' },
        ],
        mb,
      ),
    );
    assert.is(host.machine.memory.list().length, 2, 'two physical regions: the two window memfds, nothing else');
    const fn = host.fn;
    fn.cfgWrite(PCI.COMMAND.offset, 2, fn.cfgRead(PCI.COMMAND.offset, 2) | PCI.COMMAND.BUS_MASTER.mask);
    const buf = new Uint8Array([1, 2, 3, 4]);
    assert.is(fn.dma.write(0x100000, buf, 0, 4), false, 'a device-read-only window refuses writes');
    assert.is(fn.dma.read(0x200000, buf, 0, 4), false, 'a device-write-only window refuses reads');
    assert.is(fn.dma.write(0x200000 + 16, Uint8Array.from([9, 8, 7, 6]), 0, 4), true);
    assert.equal([...wr.bytes.subarray(8192 + 16, 8192 + 20)], [9, 8, 7, 6], 'the write landed at the mapping offset of the memfd the manager holds');
    rd.bytes.set([5, 5, 5, 5], 0);
    const got = new Uint8Array(4);
    assert.is(fn.dma.read(0x100000, got, 0, 4), true);
    assert.equal([...got], [5, 5, 5, 5], 'the device reads what the manager wrote');
    assert.is(fn.dma.write(0x300000, buf, 0, 4), false, 'nothing else is mapped');
    assert.is(fn.dma.read(0x200000 + 8192, got, 0, 4), false, 'not past the mapping');
    assert.ok(host.machine.iommu.faultCount >= 4, 'each refusal is a fault');
    // quarantine
    assert.is(host.quarantine(), QUARANTINE_ALL);
    assert.is(fn.busMasterEnabled, false);
    assert.ok(fn.resets >= 1);
    assert.is(host.counters()['pci.busMaster'], 0);
  } finally {
    for (const m of [rd, wr, store, mb]) m.close();
  }
});

test('the namespace store is the memfd: a second mapping sees what the device wrote', () => {
  const store = createShared(sys, 'dev-test-store2', 512 * 16),
    mb = createShared(sys, 'dev-test-mb2', 8192);
  try {
    const host = new DeviceHost(sys, start({ kind: 'nvme', serial: 's', blocks: 16, blockSize: 512, mqes: 64, maxQueues: 1, storeFdSlot: store.fd }, [], mb));
    const ns = host.nvme!.namespaces[0]!;
    ns.store.write(512 * 3, Uint8Array.from([0xde, 0xad]), 0, 2);
    assert.equal([...store.bytes.subarray(512 * 3, 512 * 3 + 2)], [0xde, 0xad]);
    store.bytes[1000] = 0x42;
    const b = new Uint8Array(1);
    ns.store.read(1000, b, 0, 1);
    assert.is(b[0], 0x42);
  } finally {
    store.close();
    mb.close();
  }
});

test('every model presents the shape the manager announces (BARs, vectors)', () => {
  const mb = createShared(sys, 'dev-test-mb3', 8192);
  const store = createShared(sys, 'dev-test-store3', 4096);
  try {
    for (const maxQueues of [1, 2, 4, 8, 31, 64, 255, 1023]) {
      const model = { kind: 'nvme' as const, serial: 's', blocks: 8, blockSize: 512, mqes: 64, maxQueues, storeFdSlot: store.fd };
      const host = new DeviceHost(sys, start(model, [], mb)); // throws ERR_DEVICE_START on a mismatch
      assert.is(host.platform.irq.count('msix'), deviceShape(model).msix, `${maxQueues} queues`);
    }
    const nic = { kind: 'e1000e' as const, mac: '52:54:00:12:34:56', peer: 'none' as const };
    const host = new DeviceHost(sys, start(nic, [], mb));
    assert.equal(
      [0, 1, 2, 3, 4, 5].map((i) => host.fn.barSize(i)),
      deviceShape(nic).bars,
    );
  } finally {
    mb.close();
    store.close();
  }
});

test("interrupts: at most the eventfds START granted, each vector signals its own; a NIC reports its and its peer's counters", () => {
  const mb = createShared(sys, 'dev-test-mb5', 8192);
  const efd = sys.eventfd(0, 0);
  try {
    const nic = { kind: 'e1000e' as const, mac: '52:54:00:12:34:56', peer: 'echo' as const };
    const st = start(nic, [], mb);
    const host = new DeviceHost(sys, { ...st, irqFdSlots: [efd] });
    assert.throws(
      () => host.irqEnable('msix', 2),
      (e: { code?: string }) => e.code === 'ERR_DEVICE_IRQ',
    );
    assert.is(host.irqEnable('msix', 1), 1);
    host.irqDisable();
    host.reset();
    const c = host.counters();
    for (const k of ['nic.txFrames', 'nic.rxDmaDropped', 'nic.irqBadVector', 'peer.seen', 'peer.arpReplies', 'msix.dropped', 'pci.deviceFaults'] as const)
      assert.is(c[k], 0, k);
    assert.is(c['nvme.commands'], undefined, 'no NVMe counters on a NIC');
  } finally {
    sys.close(efd);
    mb.close();
  }
});

test('a memfd that START says is larger than it is cannot be mapped past the limit', () => {
  const mb = createShared(sys, 'dev-test-mb4', 8192);
  try {
    assert.throws(
      () =>
        new DeviceHost(
          sys,
          start(
            { kind: 'e1000e', mac: '52:54:00:12:34:56', peer: 'none' },
            [{ iova: '0x1000', size: 4096, offset: 0, memfdSize: 2 ** 32, read: true, write: true, fdSlot: mb.fd, label: 'big' }],
            mb,
          ),
        ),
      (e: { code?: string }) => e.code === 'ERR_DEVICE_START',
    );
  } finally {
    mb.close();
  }
});

test("START's fault plan reaches the model; one that does not parse or is for the other model refuses the start", () => {
  const mb = createShared(sys, 'dev-test-mb5', 8192),
    store = createShared(sys, 'dev-test-store5', 512 * 64);
  try {
    const nvme: DeviceStart['model'] = { kind: 'nvme', serial: 's', blocks: 64, blockSize: 512, mqes: 64, maxQueues: 1, storeFdSlot: store.fd };
    const nic: DeviceStart['model'] = { kind: 'e1000e', mac: '52:54:00:12:34:56', peer: 'none' };
    assert.is(new DeviceHost(sys, start(nvme, [], mb)).nvme!.faultPlan, undefined, 'no plan: the device behaves');
    const host = new DeviceHost(sys, { ...start(nvme, [], mb), faultPlan: 'nvme.status:type=media,on=read@9' });
    assert.is(host.nvme!.faultPlan!.injector.plan.cls.name, 'nvme.status');
    assert.is(host.nvme!.faultPlan!.injector.plan.seed, 9);
    assert.is(new DeviceHost(sys, { ...start(nic, [], mb), faultPlan: 'e1000e.link-flap' }).nic!.faultPlan!.injector.plan.cls.name, 'e1000e.link-flap');
    const refused = (e: { code?: string; message?: string }, what: RegExp): boolean => e.code === 'ERR_DEVICE_START' && what.test(e.message ?? '');
    assert.throws(
      () => devicePlan({ ...start(nvme, [], mb), faultPlan: 'nvme.nonesuch' }),
      (e: { code?: string; message?: string }) => refused(e, /does not parse/),
    );
    assert.throws(
      () => devicePlan({ ...start(nvme, [], mb), faultPlan: 'nvme.status:type=cosmic' }),
      (e: { code?: string; message?: string }) => refused(e, /does not parse/),
    );
    assert.throws(
      () => devicePlan({ ...start(nic, [], mb), faultPlan: 'nvme.status' }),
      (e: { code?: string; message?: string }) => refused(e, /for the nvme model/),
    );
  } finally {
    mb.close();
    store.close();
  }
});

test.run();
