/**
 * The e1000e driver against every fault class of the 82574L model (sim/faults,
 * sim/e1000e/fault-plan.ts), with the device-fault oracle: (a) the driver detects and reports the
 * fault (a counter, an error, a timeout) and every wait is bounded; (b) no frame is handed to the
 * caller with data the device did not deliver (or flagged as bad); (c) once the plan is spent
 * (times=1) traffic flows again, by itself or after opening the device again.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { E1000e } from '../../../drivers/e1000e/device.js';
import type { E1000eOptions } from '../../../drivers/e1000e/options.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { SimMachine } from '../../../sim/machine.js';
import { E1000eModel } from '../../../sim/e1000e/model.js';
import { endpoint, type Endpoint } from '../../../sim/wire.js';
import type { SimPlatform } from '../../../sim/platform.js';
import { parsePlan } from '../../../sim/faults/plan.js';
import { faultClasses } from '../../../sim/faults/registry.js';
import { ADDR_A, MAC_A, frame } from './harness.js';

const PEER = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc];
const BOUND_MS = 5000;
const covered = new Set<string>();

interface Rig {
  machine: SimMachine;
  model: E1000eModel;
  p: SimPlatform;
  ep: Endpoint;
  /** Frames the driver sent, as the peer saw them. */
  out: Uint8Array[];
}

let rig: Rig;
let nic: E1000e | undefined;
const small: E1000eOptions = { rxDescriptors: 16, txDescriptors: 16, resetTimeoutMs: 200, eepromTimeoutMs: 50, linkTimeoutMs: 500 };

function build(plan: string): Rig {
  covered.add(plan.split(/[:@]/)[0]!);
  const machine = new SimMachine();
  const model = new E1000eModel({ mac: MAC_A, faultPlan: parsePlan(plan) });
  machine.attach(model, { address: ADDR_A, workMode: 'sync' });
  const out: Uint8Array[] = [];
  const ep = endpoint(model, (f) => out.push(f));
  rig = { machine, model, p: machine.platform(ADDR_A), ep, out };
  return rig;
}

async function open(plan: string, o: E1000eOptions = {}): Promise<E1000e> {
  build(plan);
  nic = await E1000e.open(rig.p, { ...small, ...o });
  return nic;
}

test.after.each(async () => {
  if (nic !== undefined) await nic.close().catch(() => undefined);
  nic = undefined;
  rig.p.close();
});

/** Frame `k` from the peer to the NIC: 60 + k bytes. */
const inbound = (k: number): Uint8Array => frame(MAC_A, PEER, 60 + k, 1000 + k);

/** Everything the driver hands out now, as copies, buffers given back. */
function drain(n: E1000e): Uint8Array[] {
  const got: Uint8Array[] = [];
  const batch = new PacketBatch(64);
  for (let round = 0; round < 64; round++) {
    if (n.rx(batch) === 0) break;
    for (let i = 0; i < batch.count; i++) got.push(n.rxData(batch.buf[i]!, batch.len[i]!).slice());
    n.rxFree(batch);
  }
  return got;
}

/** (b): every frame handed out is one the peer sent, byte for byte. */
function allGenuine(got: readonly Uint8Array[], sent: readonly Uint8Array[]): void {
  for (const g of got)
    assert.ok(
      sent.some((s) => s.length === g.length && s.every((b, i) => b === g[i])),
      `a frame of ${g.length} bytes the peer never sent was handed out`,
    );
}

/** (c): traffic flows both ways: `k` frames in arrive intact, a frame out reaches the peer. */
function flows(n: E1000e, base = 500): void {
  const sent = Array.from({ length: 12 }, (_, i) => inbound(base + i));
  for (const f of sent) rig.ep.send(f);
  const got = drain(n);
  assert.is(got.length, sent.length, 'every frame in');
  got.forEach((g, i) => assert.equal(g, sent[i]));
  const before = rig.out.length;
  assert.ok(n.send(frame(PEER, MAC_A, 100, 7)));
  assert.is(rig.out.length, before + 1, 'a frame out');
}

for (const kind of ['length-over', 'length-zero', 'error-bits', 'reserved-bits'] as const) {
  test(`e1000e.rx-writeback kind=${kind}: the garbled frame is ${kind === 'reserved-bits' ? 'delivered intact (reserved bits ignored)' : 'recycled and counted, never handed out'}`, async () => {
    const n = await open(`e1000e.rx-writeback:kind=${kind},after=1`);
    const sent = [inbound(1), inbound(2), inbound(3)];
    for (const f of sent) rig.ep.send(f);
    const got = drain(n);
    allGenuine(got, sent);
    assert.is(rig.model.faultPlan!.injector.fired, 1);
    if (kind === 'reserved-bits') {
      assert.is(got.length, 3);
    } else {
      assert.equal(got, [sent[0], sent[2]]);
      assert.is(n.stats().rx.errors, 1);
    }
    flows(n);
  });
}

test('e1000e.rx-dd-unowned: DD on the descriptor software holds back is never taken for a frame', async () => {
  const n = await open('e1000e.rx-dd-unowned:times=3,interval=7');
  const sent: Uint8Array[] = [];
  const got: Uint8Array[] = [];
  for (let k = 0; k < 80; k++) {
    const f = inbound(k % 40);
    sent.push(f);
    rig.ep.send(f);
    if (k % 5 === 4) got.push(...drain(n));
  }
  got.push(...drain(n));
  assert.is(rig.model.faultPlan!.injector.fired, 3);
  allGenuine(got, sent);
  assert.is(got.length, sent.length, 'no frame lost, none made up');
  flows(n);
});

test('e1000e.tx-dd-unowned: the write into the read-only TX ring is an IOMMU fault; transmit goes on', async () => {
  const n = await open('e1000e.tx-dd-unowned');
  for (let k = 0; k < 5; k++) assert.ok(n.send(frame(PEER, MAC_A, 80, k)));
  assert.is(rig.out.length, 5);
  assert.is(rig.model.faultPlan!.injector.fired, 1);
  const faults = rig.machine.iommu.faults(ADDR_A);
  assert.is(faults.length, 1);
  assert.is(faults[0]!.access, 'write');
  flows(n);
});

test('e1000e.head-range: a TDH outside the ring frees nothing (counted); once TDH reads right the buffers come back', async () => {
  const n = await open('e1000e.head-range:times=2', { txBuffers: 24 });
  let sent = 0;
  for (let k = 0; k < 40 && n.send(frame(PEER, MAC_A, 80, k)); k++) sent++;
  assert.is(sent, 15, 'the ring holds 15; reclaiming found a TDH outside the ring and freed nothing');
  assert.is(n.stats().tx.badHead, 1);
  assert.is(rig.out.length, 15);
  assert.not.ok(n.send(frame(PEER, MAC_A, 80, 99)), 'the second lie is refused too');
  assert.is(n.stats().tx.badHead, 2);
  // The device behaves: TDH reads right, reclaiming frees every buffer sent.
  for (let k = 0; k < 40; k++) assert.ok(n.send(frame(PEER, MAC_A, 80, 100 + k)), `send ${k} after recovery`);
  flows(n);
});

test('e1000e.rx-freed: a frame written into a reclaimed buffer stays inside the RX buffer window; nothing outside is touched', async () => {
  const n = await open('e1000e.rx-freed:after=2');
  const canary = rig.machine.memory.canary(65536);
  const sent = [inbound(1), inbound(2), inbound(3), inbound(4)];
  for (const f of sent) rig.ep.send(f);
  const got = drain(n);
  assert.is(rig.model.faultPlan!.injector.fired, 1);
  assert.is(got.length, 4, 'the device reported four good frames');
  assert.ok(rig.machine.memory.intact(canary));
  assert.is(rig.machine.iommu.faults(ADDR_A).length, 0, 'the reclaimed buffer is still in the RX window: the IOMMU cannot tell');
  flows(n);
});

for (const kind of ['multicast', 'zeros', 'ones', 'no-done'] as const) {
  test(`e1000e.eeprom kind=${kind}: a garbage station address is not used: the MAC comes from RAL0/RAH0`, async () => {
    // zeros: all three words (one zero word still leaves a valid unicast address).
    build(`e1000e.eeprom:kind=${kind}${kind === 'zeros' ? ',times=3' : ''}`);
    const t0 = performance.now();
    const n = (nic = await E1000e.open(rig.p, small));
    assert.ok(performance.now() - t0 < BOUND_MS);
    assert.is(rig.model.faultPlan!.injector.fired, kind === 'zeros' ? 3 : 1);
    assert.equal(Array.from(n.mac), MAC_A);
    flows(n);
  });
}

test('e1000e.link-flap: link() shows the link down, frames meanwhile are lost, not stuck; then it comes back', async () => {
  const n = await open('e1000e.link-flap:runs=2,after=1');
  assert.ok(n.send(frame(PEER, MAC_A, 80, 1)));
  assert.ok(n.send(frame(PEER, MAC_A, 80, 2))); // this run takes the link down
  assert.is(n.link().up, false);
  assert.ok(n.send(frame(PEER, MAC_A, 80, 3))); // lost on a dead link; the link comes back after the next run
  assert.is(n.link().up, false);
  assert.ok(n.send(frame(PEER, MAC_A, 80, 4)));
  assert.is(rig.out.length, 2, 'two frames lost while the link was down');
  assert.is(n.link().up, true);
  flows(n);
});

test('e1000e.msix-unconfigured: a message on a vector never configured is lost: waitRx ends at its bound, finds the frame; the next wait is woken', async () => {
  const n = await open('e1000e.msix-unconfigured', { interrupts: 'msix' });
  let t0 = performance.now();
  let waiting = n.waitRx(300);
  setTimeout(() => rig.ep.send(inbound(1)), 20);
  assert.is(await waiting, true, 'the frame is found when the wait ends');
  assert.ok(performance.now() - t0 >= 250, 'the lost message did not wake the wait: its bound did');
  assert.is(rig.model.faultPlan!.injector.fired, 1);
  assert.is(drain(n).length, 1);
  t0 = performance.now();
  waiting = n.waitRx(2000);
  setTimeout(() => rig.ep.send(inbound(2)), 20);
  assert.is(await waiting, true);
  assert.ok(performance.now() - t0 < 1000, 'woken by its message');
  assert.is(drain(n).length, 1);
  flows(n);
});

test('e1000e.removal: all-ones reads: the driver reports the device gone (ERR_E1000E_GONE) from its data path, and close is bounded', async () => {
  const n = await open('e1000e.removal:after=1');
  assert.ok(n.send(frame(PEER, MAC_A, 80, 1)));
  n.send(frame(PEER, MAC_A, 80, 2)); // the device goes away after this run
  const t0 = performance.now();
  let thrown: { code?: string; message?: string } | undefined;
  let sent = 0;
  for (let k = 0; k < 64 && !thrown; k++) {
    try {
      n.send(frame(PEER, MAC_A, 80, 10 + k));
      sent++;
    } catch (e) {
      thrown = e as { code?: string };
    }
  }
  assert.is(thrown?.code, 'ERR_E1000E_GONE', `sending on: once the ring needs TDH back, all ones says the device is gone (${sent} sent first)`);
  assert.match(thrown!.message!, /left the bus/);
  assert.equal(n.link(), { up: false, speedMbps: 10, fullDuplex: false, gone: true }, 'STATUS all ones is not a link');
  const waited = await n.waitRx(50).then(
    (r) => String(r),
    (e: { code?: string }) => e.code ?? 'error',
  );
  assert.is(waited, 'ERR_E1000E_GONE', 'a wait for frames that times out looks at the device once and says it is gone');
  const closed = await n.close().then(
    () => 'closed',
    (e: { code?: string }) => e.code ?? 'error',
  );
  nic = undefined;
  assert.is(closed, 'closed', 'a device that is gone has nothing to quiesce: close does not wait for it');
  assert.ok(performance.now() - t0 < BOUND_MS);
});

test('a quiet wire is not a removed device: waitRx times out with false and no error', async () => {
  const n = await open('e1000e.link-flap:times=0');
  assert.is(await n.waitRx(20), false);
  flows(n);
});

test('e1000e.thunderclap: the driver goes on under a hostile device (its report: thunderclap.test.ts)', async () => {
  const n = await open('e1000e.thunderclap:times=-1');
  for (let k = 0; k < 20; k++) assert.ok(n.send(frame(PEER, MAC_A, 120, k)));
  assert.is(rig.out.length, 20);
  assert.ok(rig.model.faultPlan!.thunderclap!.refused > 0);
  assert.is(rig.model.faultPlan!.thunderclap!.unlogged, 0);
  flows(n);
});

test('every e1000e fault class is exercised above', () => {
  const missing = faultClasses('e1000e')
    .map((k) => k.name)
    .filter((x) => !covered.has(x));
  assert.equal(missing, []);
});

test.run();
