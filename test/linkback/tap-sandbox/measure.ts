/**
 * Ping through two SANDBOXED e1000e NICs (not a test; root): each driver in its own container,
 * the two simulated NICs (each in its device process) back to back through the test's relay, each linked by startTapLinkback to a TAP in
 * its own namespace (10.78.0.1/24, 10.78.0.2/24). Prints ping's summary for 200 pings 10 ms apart
 * and for a flood of 2000, per interrupt mode, to set beside linkback/tap/README.md's in-process
 * figures. `npm run build && node dist/test/linkback/tap-sandbox/measure.js`
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { relay, TestWire } from '../../sandbox/net/wire.js';
import { startTapLinkback } from '../../../linkback/tap/sandbox-link.js';
import type { Linkback } from '../../../linkback/registry.js';
import { NetnsLab, rootTestsBlocked } from '../tap/netns.js';
import { nicPolicy } from '../../sandbox/net/helpers.js';

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: 'ignore', timeout: 10_000 });
}

async function once(mode: 'msix' | 'polling'): Promise<void> {
  const tag = (process.pid % 100000).toString(36);
  const names = [`h11m${tag}a`, `h11m${tag}b`];
  const wires = [await TestWire.open(), await TestWire.open()];
  relay(wires[0]!, wires[1]!);
  const sups = [0, 1].map(
    (i) =>
      new Supervisor(
        nicPolicy(`tapm-${i}`, { mac: `52:54:00:78:01:0${i + 1}`, interrupts: mode, extra: `linkback: { tap: { interface: ${names[i]} } }` }),
        wires[i]!.options(),
      ),
  );
  const links: Linkback[] = [];
  let lab: NetnsLab | undefined;
  try {
    await Promise.all(sups.map((s) => s.start()));
    for (const s of sups) links.push(await startTapLinkback({ supervisor: s, policy: s.policy, log: () => undefined }));
    lab = NetnsLab.create(2);
    const [ns1, ns2] = lab.names as [string, string];
    [
      [ns1, names[0]!, '10.78.0.1/24'],
      [ns2, names[1]!, '10.78.0.2/24'],
    ].forEach(([ns, n, a]) => {
      ip(['link', 'set', n!, 'netns', ns!]);
      ip(['-n', ns!, 'addr', 'add', a!, 'dev', n!]);
      ip(['-n', ns!, 'link', 'set', n!, 'up']);
    });
    await lab.run(ns1, ['ping', '-c', '3', '-W', '2', '10.78.0.2'], 15_000);
    const slow = await lab.run(ns1, ['ping', '-c', '200', '-i', '0.01', '-q', '10.78.0.2'], 60_000);
    const flood = await lab.run(ns1, ['ping', '-f', '-c', '2000', '-q', '10.78.0.2'], 60_000);
    const tail = (s: string): string => s.trim().split('\n').slice(-2).join(' | ');
    console.log(`${mode}: 200 pings 10 ms apart: ${tail(slow.stdout)}`);
    console.log(`${mode}: flood of 2000: ${tail(flood.stdout)} (${(2000 / (flood.ms / 1000)).toFixed(0)} round trips/s incl. ping's start)`);
  } finally {
    for (const l of links) await l.close().catch(() => undefined);
    await Promise.all(sups.map((s) => s.stop()));
    for (const w of wires) w.close();
    lab?.cleanup();
  }
}

const blocked = rootTestsBlocked();
if (blocked) {
  console.error(`measure: ${blocked}`);
  process.exit(2);
}
console.log(
  `machine: ${cpus().length} CPUs (${cpus()[0]?.model}), node ${process.version}, load ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
await once('msix');
await once('polling');
