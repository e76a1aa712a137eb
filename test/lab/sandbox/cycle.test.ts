/**
 * Lab test of the sandbox on real VFIO (runs INSIDE the lab guest, DMABOX_LAB=1): QEMU's NVMe
 * behind VT-d driven by the nvme driver in an unprivileged, confined container that holds only the
 * device fd, its window memfds and the MSI-X eventfds the manager created. The cycle: up, block I/O, kill -9 with requests in flight,
 * quarantine (BME off, VFIO reset), restart, data intact, the restart limit, failed. Then a wild DMA from a container's
 * own driver: a DMAR fault in the kernel log for 00:01.0, the policy's 'stop' taken.
 * The device is left disabled and unmapped, and the blocks written are restored.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { parsePolicies } from '../../../policies/index.js';
import { KmsgFaultMonitor } from '../../../sandbox/manager/faults.js';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { withModule } from '../../sandbox/helpers.js';
import { field, until } from './helpers.js';

function inLab(): void {
  if (process.env.DMABOX_LAB !== '1') {
    throw new Error('this test runs only inside the lab guest (DMABOX_LAB=1): use `npm run test:lab` or `dmabox lab run -- ...` (appliance/lab/README.md)');
  }
}

const NVME = (process.env.DMABOX_LAB_NVME ?? '0000:00:01.0').split(',')[0]!;

function policy(name: string, extra = '', interrupts = 'polling') {
  return parsePolicies(
    `version: 1
name: ${name}
device: { pci: "${NVME}" }
driver: { name: nvme, queues: 1, depth: 16, interrupts: ${interrupts} }
windows: [ { size: 512KiB, label: queues }, { size: 2MiB, label: data } ]
restart: { maxRestarts: 2, window: 60s, backoff: { initial: 50ms, max: 1s } }
${extra}
`,
    'lab.yaml',
  ).policies[0]!.policy;
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed * 101 + (i >> 9)) & 0xff;
  return b;
}

test('up on VFIO with MSI-X, I/O, kill -9 with requests in flight, quarantine, restart, data intact, the restart limit, failed', async () => {
  inLab();
  const s = new Supervisor(policy('lab-cycle', '', 'msix'), { helloTimeoutMs: 60_000, readyTimeoutMs: 90_000, hangMs: 30_000, heartbeatMs: 1000 });
  const lba = 100_000; // 64 MiB disk: 131072 blocks
  let saved: Uint8Array | undefined;
  try {
    await s.start();
    const pid = s.pid!;
    // Its sandbox's own identity (as status says), in its own namespaces and cgroup: nothing missing.
    assert.is(Number(field(pid, 'Uid').split(/\s+/)[0]), s.status().uid);
    assert.ok(s.credentials.uid >= 61184 && s.credentials.uid <= 65519 && s.credentials.uid !== 65534, String(s.credentials.uid));
    assert.equal(s.credentials.missing, []);
    assert.is(field(pid, 'NoNewPrivs'), '1');
    assert.is(field(pid, 'Seccomp'), '2');
    assert.ok(s.events.some((e) => e.text.includes('open of /dev/vfio/vfio refused with EPERM')));
    assert.ok(
      s.events.some((e) => e.text.includes(', msix, ')),
      'the driver runs on MSI-X through the eventfds the manager handed over',
    );
    saved = await s.block.read(lba, 256);
    const a = pattern(128 * 1024, 1);
    await s.block.write(lba, a);
    assert.equal(await s.block.read(lba, 256), a);
    // kill -9 with requests in flight: they are replayed on the next container.
    const b = pattern(16 * 1024, 2);
    const inflight = [s.block.write(lba + 64, b), s.block.read(lba, 32)];
    process.kill(pid, 'SIGKILL');
    // Not s.ready(): until the exit is seen the sandbox is still 'running', and the requests may
    // have finished on the old container before the signal landed.
    await until('the restart', () => s.restarts === 1 && s.state === 'running', 90_000);
    const [, r] = await Promise.all(inflight);
    assert.equal(r, a.subarray(0, 16 * 1024));
    assert.is(s.restarts, 1);
    assert.equal(s.device.quarantineLog.slice(0, 2), ['bme-off', 'flr']);
    const k = s.events.map((e) => e.kind);
    assert.ok(k.indexOf('quarantine') < k.lastIndexOf('spawn'), 'quarantine before the next container');
    const expect = a.slice();
    expect.set(b, 64 * 512);
    assert.equal(await s.block.read(lba, 256), expect, 'earlier writes intact after the restart');
    await s.block.write(lba, saved);
    assert.equal(await s.block.read(lba, 256), saved);
    // The restart limit (2 in 60 s): one more restart, then the next death fails the device.
    process.kill(s.pid!, 'SIGKILL');
    await until('the second restart', () => s.restarts === 2 && s.state === 'running', 90_000);
    const failed = new Promise((r) => s.once('failed', r));
    process.kill(s.pid!, 'SIGKILL');
    await failed;
    assert.is(s.state, 'failed');
    try {
      await s.block.read(0, 1);
      assert.unreachable('a failed device takes no requests');
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_SANDBOX_FAILED');
    }
  } finally {
    await s.stop();
  }
  assert.equal(s.device.quarantineLog.slice(-1), ['unmap']);
});

test("a wild DMA from the container's driver: a DMAR fault for this device, 'stop' taken", async () => {
  inLab();
  const s = new Supervisor(
    withModule(policy('lab-wild', 'onIommuFault: stop'), fileURLToPath(new URL('../../sandbox/fixtures/wild-dma-driver.js', import.meta.url))),
    { helloTimeoutMs: 60_000, readyTimeoutMs: 90_000, hangMs: 30_000, heartbeatMs: 1000 },
  );
  const kmsg = new KmsgFaultMonitor('/dev/kmsg');
  kmsg.add(s);
  kmsg.start();
  try {
    const failed = new Promise((r) => s.once('failed', r));
    await s.start();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      failed,
      new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error(`no fault handled within 30 s: ${s.events.map((e) => `${e.kind}: ${e.text}`).join('\n')}`)), 30_000);
      }),
    ]);
    clearTimeout(timer);
    const f = s.faults.find((x) => x.iommu)!;
    assert.ok(f);
    assert.is(f.device, NVME);
    assert.is(f.iova, 0x7000_0000n);
    assert.is(f.access, 'write');
    assert.is(f.source, 'dmar');
    assert.is(s.state, 'failed');
  } finally {
    kmsg.close();
    await s.stop();
  }
});

test.run();
