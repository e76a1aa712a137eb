/**
 * The e1000e driver against a hostile 82574L in the manner of Thunderclap (sim/e1000e/thunderclap.ts):
 * every access outside the sandbox's windows ends as an IOMMU fault naming the function, nothing
 * outside the windows changes (a canary), and the report says what the device could still see
 * and change inside the sandbox's own windows.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { E1000e } from '../../../drivers/e1000e/device.js';
import { SimMachine } from '../../../sim/machine.js';
import { E1000eModel } from '../../../sim/e1000e/model.js';
import { thunderclapReport, type ReportWindow } from '../../../sim/e1000e/thunderclap.js';
import { endpoint } from '../../../sim/wire.js';
import { parsePlan } from '../../../sim/faults/plan.js';
import { ADDR_A, MAC_A, frame } from './harness.js';

const PEER = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc];

async function run(plan: string) {
  const machine = new SimMachine();
  const canaryBefore = machine.memory.canary(65536);
  const model = new E1000eModel({ mac: MAC_A, faultPlan: parsePlan(plan) });
  machine.attach(model, { address: ADDR_A, workMode: 'sync' });
  const out: Uint8Array[] = [];
  endpoint(model, (f) => out.push(f));
  const p = machine.platform(ADDR_A);
  const nic = await E1000e.open(p, { rxDescriptors: 16, txDescriptors: 16, txBuffers: 24 });
  const canaryAfter = machine.memory.canary(65536);
  const sent: Uint8Array[] = [];
  for (let k = 0; k < 60; k++) {
    const f = frame(PEER, MAC_A, 200 + k, k);
    sent.push(f);
    assert.ok(nic.send(f), `send ${k}`);
  }
  const windows: ReportWindow[] = [
    { label: 'rx descriptors', iova: nic.rxRing.window.iova, size: nic.rxRing.window.size, holds: 'descriptors' },
    { label: 'tx descriptors', iova: nic.txRing.window.iova, size: nic.txRing.window.size, holds: 'descriptors' },
    { label: 'rx buffers', iova: nic.rxPool.window.iova, size: nic.rxPool.window.size, holds: 'packets' },
    { label: 'tx buffers', iova: nic.txPool.window.iova, size: nic.txPool.window.size, holds: 'packets' },
  ];
  const report = thunderclapReport(model.faultPlan!.thunderclap!, ADDR_A, windows);
  const intact = machine.memory.intact(canaryBefore) && machine.memory.intact(canaryAfter) && machine.memory.damagedCanaries().length === 0;
  const faults = machine.iommu.faults(ADDR_A);
  await nic.close();
  p.close();
  return { report, out, sent, intact, faults };
}

test('thunderclap: out-of-window accesses are IOMMU faults of the function; the report says what the device still sees', async () => {
  const { report, out, sent, intact, faults } = await run('e1000e.thunderclap:times=-1,span=2,write=1,reuse=8');
  assert.ok(report.accesses > 60 * 5, `${report.accesses} accesses`);
  assert.ok(report.refused > 0, 'some of it fell outside the windows or their permissions');
  assert.is(report.refusedUnlogged, 0, 'every refusal is an IOMMU fault naming the function');
  assert.is(report.outsideWindowsAllowed, 0, 'nothing outside the windows was reached');
  assert.ok(intact, 'host memory outside the windows untouched');
  assert.ok(faults.length >= Math.min(report.refused, 4096));
  assert.ok(
    faults.some((f) => f.reason === 'no-write'),
    'writes into the device-read-only TX buffers are refused',
  );
  const tx = report.inside.find((s) => s.window === 'tx buffers')!;
  assert.ok(tx.bytesRead > 0 && tx.nonZeroBytesSeen > 0, 'the TX buffers, other packets included, are readable');
  assert.ok(tx.reusedAddresses && report.reuseHits > 0, 'reclaimed buffers are read again');
  assert.is(tx.bytesWritten, 0);
  assert.match(report.text, /what a malicious device can still see inside the sandbox/);
  assert.match(report.text, /tx buffers \(packets\): \d+ bytes read/);
  // The driver went on: every frame went out intact.
  assert.is(out.length, sent.length);
  out.forEach((f, i) => assert.equal(f, sent[i]));
});

test('thunderclap with span=0, write=0, reuse=0: only the buffer pages are read, nothing refused', async () => {
  const { report, intact } = await run('e1000e.thunderclap:times=-1,span=0,write=0,reuse=0');
  assert.is(report.refused, 0);
  assert.is(report.reuseHits, 0);
  assert.ok(intact);
  assert.ok(report.inside.every((s) => s.bytesWritten === 0));
  assert.ok(report.inside.filter((s) => s.bytesRead > 0).every((s) => s.window === 'tx buffers'));
});

test.run();
