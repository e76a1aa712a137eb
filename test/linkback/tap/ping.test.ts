/**
 * The TAP linkback end to end, as root: two simulated 82574L NICs cabled back to back
 * (sim/wire.ts), each driven in-process by the e1000e driver on a SimPlatform (one by MSI-X, one
 * by polling), each joined by a TapBridge to a TAP interface in its own network namespace
 * (10.77.0.1/24 and 10.77.0.2/24). `ping -c 3 -W 2` crosses the whole path both ways; the bridge
 * counters must show the ARP exchange and exactly three ICMP frames each way, and the wire must
 * lose nothing. Bounded in time; the namespaces and interfaces are gone afterwards.
 *
 * Not root: skipped, saying why. Root without ping or ip: fails, saying what to install.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TapBridge } from '../../../linkback/tap/bridge.js';
import { backToBack } from '../../../sim/wire.js';
import { E1000e } from '../../../drivers/e1000e/device.js';
import { E1000ePort } from '../../../linkback/in-process/e1000e.js';
import { ADDR2, bothWaysSettled, withRig } from './rig.js';
import { requireProgram, rootTestsBlocked } from './netns.js';
import { until } from './fakes.js';

const blocked = rootTestsBlocked();
const rootTest = blocked === null ? test : test.skip;
if (blocked !== null) console.log(`linkback/tap/ping.test: SKIPPED, ${blocked}; run as root to test TAP interfaces in network namespaces`);

rootTest('ping between two namespaces through two simulated e1000e NICs and two TAP bridges', async () => {
  requireProgram('ip', 'iproute2');
  requireProgram('ping', 'iputils-ping');
  await withRig({}, async ({ lab, ns: [ns1], bridges, nics, errors }) => {
    const r = await lab.run(ns1, ['ping', '-c', '3', '-W', '2', ADDR2], 15_000);
    assert.is(r.code, 0, `ping failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /3 packets transmitted, 3 received/);

    const [a, b] = bridges as [TapBridge, TapBridge];
    // Everything one NIC sent, the other received and wrote to its TAP (the wire is lossless).
    await bothWaysSettled(a, b);
    const ca = a.counters(),
      cb = b.counters();
    const seen = JSON.stringify({ a: ca, b: cb });
    assert.is(ca.toNic.icmp, 3, `3 echo requests into NIC A: ${seen}`);
    assert.is(cb.toTap.icmp, 3, `3 echo requests out of TAP B: ${seen}`);
    assert.is(cb.toNic.icmp, 3, `3 echo replies into NIC B: ${seen}`);
    assert.is(ca.toTap.icmp, 3, `3 echo replies out of TAP A: ${seen}`);
    assert.ok(ca.toNic.arp >= 1, `ns1's ARP request crossed: ${seen}`);
    assert.ok(cb.toNic.arp >= 1, `ns2's ARP reply crossed: ${seen}`);
    assert.is(cb.toTap.arp, ca.toNic.arp);
    assert.is(ca.toTap.arp, cb.toNic.arp);
    for (const c of [ca, cb]) {
      assert.is(c.toNic.ipv6 + c.toTap.ipv6, 0, 'IPv6 is off in the namespaces');
      assert.is(c.queueDrops + c.malformedFromTap + c.malformedFromNic + c.tapReadErrors + c.tapWriteErrors + c.portErrors, 0, seen);
    }
    // The driver agrees with the bridge.
    assert.is(nics[0]!.stats().tx.packets, ca.toNic.frames);
    assert.is(nics[1]!.stats().rx.packets, cb.toTap.frames);
    assert.is(errors.length, 0, String(errors[0]));
  });
});

rootTest('the wire unplugged: both TAPs lose carrier and ping fails; plugged back, ping works', async () => {
  requireProgram('ping', 'iputils-ping');
  await withRig({ interrupts: ['poll', 'msix'] }, async ({ lab, ns: [ns1, ns2], sim, taps, bridges, errors }) => {
    const carrier = async (ns: string, ifname: string): Promise<boolean> => {
      const r = await lab.run(ns, ['ip', '-o', 'link', 'show', ifname], 5000);
      assert.is(r.code, 0, r.stderr);
      return !/NO-CARRIER/.test(r.stdout);
    };
    let r = await lab.run(ns1, ['ping', '-c', '1', '-W', '2', ADDR2], 10_000);
    assert.is(r.code, 0, `ping before unplugging:\n${r.stdout}${r.stderr}`);
    assert.ok(await carrier(ns1, taps[0]!.name));

    sim.a.attachWire(null);
    sim.b.attachWire(null);
    await until(() => bridges.every((b) => b.counters().linkChanges === 1), 'both bridges to see the link go down', 2000);
    assert.not.ok(await carrier(ns1, taps[0]!.name), 'TAP 1 shows NO-CARRIER');
    assert.not.ok(await carrier(ns2, taps[1]!.name), 'TAP 2 shows NO-CARRIER');
    r = await lab.run(ns1, ['ping', '-c', '1', '-W', '1', ADDR2], 10_000);
    assert.is.not(r.code, 0, `ping succeeded with the wire unplugged:\n${r.stdout}`);

    backToBack(sim.a, sim.b);
    await until(() => bridges.every((b) => b.counters().linkChanges === 2), 'both bridges to see the link come back', 2000);
    assert.ok(await carrier(ns2, taps[1]!.name));
    r = await lab.run(ns1, ['ping', '-c', '1', '-W', '2', ADDR2], 10_000);
    assert.is(r.code, 0, `ping after plugging back:\n${r.stdout}${r.stderr}`);
    assert.is(errors.length, 0, String(errors[0]));
  });
});

rootTest('flood ping (both drivers MSI-X): 1000 round trips, none lost, every count exact', async () => {
  requireProgram('ping', 'iputils-ping');
  await withRig({ interrupts: ['msix', 'msix'] }, async (rig) => {
    const r = await rig.lab.run(rig.ns[0], ['ping', '-f', '-c', '1000', '-W', '2', '-q', ADDR2], 60_000);
    assert.is(r.code, 0, `flood ping failed:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1000 packets transmitted, 1000 received/);
    const [a, b] = rig.bridges as [TapBridge, TapBridge];
    await bothWaysSettled(a, b);
    const ca = a.counters(),
      cb = b.counters();
    for (const n of [ca.toNic.icmp, cb.toTap.icmp, cb.toNic.icmp, ca.toTap.icmp]) assert.is(n, 1000, JSON.stringify({ a: ca, b: cb }));
    assert.is(ca.toNic.bytes, cb.toTap.bytes - 18 * cb.toTap.arp, 'bytes match, ARP frames padded to 60 by the NIC');
    assert.is(rig.errors.length, 0, String(rig.errors[0]));
  });
});

rootTest('a driver restart under a running ping: the TAP stays, every ping is answered', async () => {
  requireProgram('ping', 'iputils-ping');
  await withRig({ interrupts: ['msix', 'msix'] }, async (rig) => {
    const [ns1] = rig.ns;
    const a = rig.bridges[0]!;
    const name = rig.taps[0]!.name;
    const ping = rig.lab.run(ns1, ['ping', '-c', '10', '-i', '0.2', '-W', '3', ADDR2], 30_000);
    await until(() => a.counters().toTap.icmp >= 3, 'three replies before the restart', 5000);
    // The restart: detach the bridge, close the driver, open a new one on the same device, carry on.
    await a.suspend();
    assert.is(a.state, 'suspended');
    await rig.nics[0]!.close();
    const nic = await E1000e.open(rig.sim.pa, { interrupts: 'msix' });
    rig.nics[0] = nic;
    a.resume(new E1000ePort(nic));
    const r = await ping;
    assert.is(r.code, 0, `ping across the restart:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /10 packets transmitted, 10 received/);
    const c = a.counters();
    assert.is(c.portSwaps, 1);
    assert.is(c.swapDrops, 0);
    assert.is(c.toNic.icmp, 10);
    assert.is(c.toTap.icmp, 10);
    const link = await rig.lab.run(ns1, ['ip', '-o', 'addr', 'show', 'dev', name], 5000);
    assert.match(link.stdout, /10\.77\.0\.1\/24/, 'the same interface, address kept');
    assert.is(rig.errors.length, 0, String(rig.errors[0]));
  });
});

test.run();
