/**
 * With root: two sandboxed simulated e1000e NICs (each driver in its own container) on one
 * wire (each NIC model in its device process, their cables relayed by the test: net/wire.ts), each linked to a TAP interface by the tap linkback (startTapLinkback), each TAP
 * in its own network namespace (10.78.0.1/24, 10.78.0.2/24): `ping` between the namespaces, and
 * again while one driver container is killed with SIGKILL and restarted (the TAP, its address
 * and the ping survive). Namespaces and interfaces are removed afterwards, whatever happens.
 * Without root the test says why it skips.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { relay, TestWire } from '../../sandbox/net/wire.js';
import { startTapLinkback } from '../../../linkback/tap/sandbox-link.js';
import type { Linkback } from '../../../linkback/registry.js';
import { NetnsLab, requireProgram, rootTestsBlocked } from '../tap/netns.js';
import { nicPolicy } from '../../sandbox/net/helpers.js';
import { until } from '../../sandbox/helpers.js';
import { testIf } from '../../helpers/skip.js';

const rootTest = testIf(rootTestsBlocked());

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
}

/** Move `ifname` into `ns` with `cidr` (only 10.78.0.0/24 here) and bring it up. */
function place(ns: string, ifname: string, cidr: string): void {
  if (!/^10\.78\.0\.\d{1,3}\/24$/.test(cidr)) throw new Error(`address ${cidr} is outside 10.78.0.0/24, the only range this test uses`);
  ip(['link', 'set', ifname, 'netns', ns]);
  ip(['-n', ns, 'addr', 'add', cidr, 'dev', ifname]);
  ip(['-n', ns, 'link', 'set', ifname, 'up']);
}

function received(out: string): number {
  const m = /(\d+) received/.exec(out);
  return m ? Number(m[1]) : -1;
}

rootTest('two sandboxed NICs on one wire, TAPs in two namespaces: ping, and ping across a container kill -9', async () => {
  requireProgram('ping', 'iputils-ping');
  const tag = (process.pid % 100000).toString(36);
  const names = [`h11sb${tag}a`, `h11sb${tag}b`];
  const wires = [await TestWire.open(), await TestWire.open()];
  relay(wires[0]!, wires[1]!);
  const a = new Supervisor(
    nicPolicy('tapsb-a', { mac: '52:54:00:78:00:01', interrupts: 'msix', extra: `linkback: { tap: { interface: ${names[0]} } }` }),
    wires[0]!.options(),
  );
  const b = new Supervisor(
    nicPolicy('tapsb-b', { mac: '52:54:00:78:00:02', interrupts: 'polling', extra: `linkback: { tap: { interface: ${names[1]} } }` }),
    wires[1]!.options(),
  );
  const links: Linkback[] = [];
  let lab: NetnsLab | undefined;
  try {
    await Promise.all([a.start(), b.start()]);
    await until('both device processes on the wire', () => wires.every((w) => w.connected), 5000);
    const log = (line: string): void => {
      if (/warn|error/.test(line)) console.log(`    ${line}`);
    };
    for (const s of [a, b]) links.push(await startTapLinkback({ supervisor: s, policy: s.policy, log }));
    assert.equal(
      links.map((l) => l.addresses[0]),
      names.map((n) => `tap:${n}`),
    );
    lab = NetnsLab.create(2);
    const [ns1, ns2] = lab.names as [string, string];
    place(ns1, names[0]!, '10.78.0.1/24');
    place(ns2, names[1]!, '10.78.0.2/24');
    await until(
      'carrier on both TAPs',
      () =>
        [
          [ns1, names[0]!],
          [ns2, names[1]!],
        ].every(([ns, n]) => !ip(['-n', ns!, 'link', 'show', n!]).includes('NO-CARRIER')),
      5000,
    );

    const r = await lab.run(ns1, ['ping', '-c', '3', '-W', '2', '10.78.0.2'], 15_000);
    assert.is(received(r.stdout), 3, `ping -c 3: ${r.stdout}${r.stderr}`);
    const bridged = links[0]!.status() as { bridge: { toNic: { icmp: number }; toTap: { icmp: number } } };
    assert.ok(bridged.bridge.toNic.icmp >= 3 && bridged.bridge.toTap.icmp >= 3, 'ICMP went through the bridge both ways');

    // kill -9 b's container 1 s into 20 pings 0.2 s apart; it restarts, the TAP keeps its address
    const pinging = lab.run(ns1, ['ping', '-c', '20', '-i', '0.2', '-W', '1', '10.78.0.2'], 30_000);
    await new Promise((res) => setTimeout(res, 1000));
    const pid = b.pid!;
    process.kill(pid, 'SIGKILL');
    const p = await pinging;
    const got = received(p.stdout);
    console.log(
      `    ping -c 20 across a kill -9 of pid ${pid}: ${got}/20 answered; restarts ${b.restarts}; lost in the restart ${b.nic!.counters.lostInRestart}`,
    );
    assert.is(b.restarts, 1);
    assert.ok(got >= 14, `most pings answered across the restart (${got}/20): ${p.stdout}`);
    assert.ok(ip(['-n', ns2, 'addr', 'show', names[1]!]).includes('10.78.0.2/24'), 'the TAP kept its address');
    const after = await lab.run(ns2, ['ping', '-c', '3', '-W', '2', '10.78.0.1'], 15_000);
    assert.is(received(after.stdout), 3, 'and pings the other way after the restart');
    assert.is(a.nic!.counters.violations + b.nic!.counters.violations, 0);
  } finally {
    for (const l of links) await l.close().catch(() => undefined);
    await Promise.all([a.stop(), b.stop()]);
    for (const w of wires) w.close();
    const left = lab?.cleanup() ?? [];
    assert.equal(left, [], 'namespaces removed');
  }
});

rootTest("a sandbox marked failed pulls the TAP's carrier", async () => {
  const name = `h11sf${(process.pid % 100000).toString(36)}`;
  const s = new Supervisor(nicPolicy('tapsb-failed', { extra: `linkback: { tap: { interface: ${name} } }` }));
  let link: Linkback | undefined;
  try {
    await s.start();
    link = await startTapLinkback({ supervisor: s, policy: s.policy, log: () => undefined });
    ip(['link', 'set', name, 'up']);
    await until('carrier', () => !ip(['link', 'show', name]).includes('NO-CARRIER'), 5000);
    s.faultAction('stop', 'test: an IOMMU fault with policy stop');
    await until('failed', () => s.state === 'failed', 10_000);
    await until('NO-CARRIER', () => ip(['link', 'show', name]).includes('NO-CARRIER'), 5000);
  } finally {
    await link?.close();
    await s.stop();
  }
  assert.not.ok(ip(['-br', 'link']).includes(name), 'the interface is gone after close');
});

test.run();
