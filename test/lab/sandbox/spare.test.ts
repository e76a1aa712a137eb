/**
 * Lab test of a prepared spare on real VFIO (runs INSIDE the lab guest, DMABOX_LAB=1): the spare
 * container confines itself and evaluates the nvme driver before the running container dies
 * (sandbox/container/prepare.ts), so everything it does after the takeover (opening its hypercall
 * socket, mapping its windows, the VFIO device fd's region and IRQ calls, MSI-X through the handed
 * eventfds) happens under its seccomp filter: what a container started cold does before confining
 * itself. A kill -9 is taken over by the spare, which serves the same data.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parsePolicies } from '../../../policies/index.js';
import type { Spare } from '../../../sandbox/manager/spare.js';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { field, until } from './helpers.js';

const NVME = (process.env.DMABOX_LAB_NVME ?? '0000:00:01.0').split(',')[0]!;

test('a prepared spare container, confined before the takeover, takes over a kill -9 on VFIO with MSI-X and serves the same data', async () => {
  if (process.env.DMABOX_LAB !== '1') throw new Error('this test runs only inside the lab guest (DMABOX_LAB=1): use `npm run test:lab`');
  const policy = parsePolicies(
    `version: 1
name: lab-spare
device: { pci: "${NVME}" }
driver: { name: nvme, queues: 1, depth: 16, interrupts: msix }
windows: [ { size: 512KiB, label: queues }, { size: 2MiB, label: data } ]
restart: { maxRestarts: 3, window: 60s, backoff: { initial: 1ms, max: 1s }, spare: true }
`,
    'lab.yaml',
  ).policies[0]!.policy;
  const s = new Supervisor(policy, { helloTimeoutMs: 60_000, readyTimeoutMs: 90_000, hangMs: 30_000, heartbeatMs: 1000 });
  const lba = 110_000;
  let saved: Uint8Array | undefined;
  try {
    await s.start();
    saved = await s.block.read(lba, 16);
    const data = new Uint8Array(8192).map((_, i) => (i * 7 + 3) & 0xff);
    await s.block.write(lba, data);
    const spares = s as unknown as { spareDriver?: Spare };
    await until('the spare container launched', () => spares.spareDriver?.usable === true, 60_000);
    const spare = spares.spareDriver!;
    assert.ok(spare.prepared, 'sent PREPARE');
    const pid = spare.launched!.pid;
    await until('the spare confined before the takeover', () => field(pid, 'Seccomp') === '2', 60_000);
    assert.is(field(pid, 'NoNewPrivs'), '1');
    const old = s.pid!;
    const before = s.events.length;
    process.kill(old, 'SIGKILL');
    await until('serving again', () => s.state === 'running' && s.pid !== undefined && s.pid !== old, 90_000);
    assert.is(s.pid, pid, 'the spare took over');
    assert.is(s.spareTakeovers, 1);
    const after = s.events.slice(before);
    assert.ok(
      after.some((e) => e.text.includes('(a spare, before the takeover, where it evaluated the driver')),
      after.map((e) => e.text).join('\n'),
    );
    assert.ok(
      after.some((e) => e.kind === 'log' && e.text.includes(', msix, ')),
      `the spare drives the device on MSI-X: ${after.map((e) => e.text).join('\n')}`,
    );
    assert.equal(await s.block.read(lba, 16), data);
    await s.block.write(lba, saved);
    assert.equal(await s.block.read(lba, 16), saved);
  } finally {
    await s.stop();
  }
});

test.run();
