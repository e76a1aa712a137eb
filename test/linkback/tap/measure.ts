/**
 * Measurements of the TAP linkback (not a test; as root): the rig of rig.ts (two namespaces, two
 * TAPs, two bridges, two e1000e drivers on simulated NICs on one simulated wire), then
 *   1. ping round trips (200 pings, 10 ms apart) through the whole path, beside the same ping over a
 *      kernel veth pair between two other namespaces, the floor a host gives;
 *   2. a one-way flood: a raw packet socket in namespace 1 sends N frames of one size as fast as it
 *      can; counted where they leave TAP 2, with the losses said where they happened;
 *   3. `ping -f` (flood ping): echo round trips back to back.
 *
 * Run: npm run build && node dist/test/linkback/tap/measure.js   (or with tsx from the sources)
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { makeRig, ADDR2, type Rig } from './rig.js';
import { NetnsLab, requireProgram, rootTestsBlocked } from './netns.js';
import { formatMac } from '../../../linkback/tap/tun.js';

const FLOOD_PY = `
import socket, sys, time, errno
ifname, dst, n, size = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
src = bytes.fromhex(open('/sys/class/net/%s/address' % ifname).read().strip().replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
frame = dst + src + b'\\x88\\xb5' + bytes(size - 14)
sent = refused = 0
t = time.perf_counter()
for i in range(n):
    try:
        s.send(frame); sent += 1
    except OSError as e:
        refused += 1
print(sent, refused, time.perf_counter() - t)
`;

function rtt(out: string): string {
  const m = /rtt min\/avg\/max\/mdev = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(out);
  const loss = /(\d+)% packet loss/.exec(out);
  return m ? `min ${m[1]} / avg ${m[2]} / max ${m[3]} / mdev ${m[4]} ms, loss ${loss?.[1]}%` : `no rtt line: ${out.trim().split('\n').slice(-2).join(' | ')}`;
}

async function vethBaseline(): Promise<string> {
  const lab = NetnsLab.create(2);
  const [n1, n2] = lab.names as [string, string];
  try {
    const v1 = `dmbxv${process.pid % 10000}a`,
      v2 = `dmbxv${process.pid % 10000}b`;
    spawnSync('ip', ['link', 'add', v1, 'type', 'veth', 'peer', 'name', v2]);
    lab.attach(n1, v1, '10.77.2.1/24');
    lab.attach(n2, v2, '10.77.2.2/24');
    const r = await lab.run(n1, ['ping', '-c', '200', '-i', '0.01', '-q', '10.77.2.2'], 30_000);
    return rtt(r.stdout);
  } finally {
    lab.cleanup();
  }
}

async function flood(rig: Rig, frames: number, size: number): Promise<string> {
  const [a, b] = rig.bridges as [NonNullable<Rig['bridges'][0]>, NonNullable<Rig['bridges'][0]>];
  const dst = formatMac(rig.nics[1]!.mac).replace(/:/g, '');
  const before = b.counters().toTap.frames;
  const aBefore = a.counters().toNic.frames;
  const devBefore = rig.nics[1]!.stats().device;
  const tapDroppedBefore = tapDropped(rig);
  const t0 = performance.now();
  const r = await rig.lab.run(rig.ns[0], ['python3', '-c', FLOOD_PY, rig.taps[0]!.name, dst, String(frames), String(size)], 120_000);
  if (r.code !== 0) return `flood failed: ${r.stderr.trim()}`;
  // Let the queues drain: stop when TAP 2's count has not moved for 200 ms.
  let last = -1;
  while (b.counters().toTap.frames !== last) {
    last = b.counters().toTap.frames;
    await new Promise((res) => setTimeout(res, 200));
  }
  const delivered = b.counters().toTap.frames - before;
  const intoNic = a.counters().toNic.frames - aBefore;
  const ms = performance.now() - t0 - 200;
  const [sent, refused, pySec] = r.stdout.trim().split(' ').map(Number) as [number, number, number];
  const dev = rig.nics[1]!.stats().device;
  const missed = (dev.MPC ?? 0) - (devBefore.MPC ?? 0);
  const noBuf = (dev.RNBC ?? 0) - (devBefore.RNBC ?? 0);
  const hostDropped = tapDropped(rig) - tapDroppedBefore;
  return (
    `${size} B frames: offered ${sent} in ${(pySec * 1000).toFixed(0)} ms (${refused} refused by the socket); ` +
    `into NIC 1 ${intoNic}, out of TAP 2 ${delivered} in ${ms.toFixed(0)} ms = ${(delivered / (ms / 1000)).toFixed(0)} frames/s, ` +
    `${((delivered * size * 8) / (ms / 1000) / 1e6).toFixed(1)} Mbit/s; lost: in TAP 1's host queue (tx_dropped) ${hostDropped}, NIC 2 MPC ${missed}, RNBC ${noBuf}`
  );
}

/** The TAP's tx_dropped: frames the host's queue for it overflowed (read in its namespace). */
function tapDropped(rig: Rig): number {
  const r = spawnSync('ip', ['netns', 'exec', rig.ns[0], 'cat', `/sys/class/net/${rig.taps[0]!.name}/statistics/tx_dropped`], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

async function main(): Promise<void> {
  const blocked = rootTestsBlocked();
  if (blocked !== null) throw new Error(`measure: ${blocked}`);
  requireProgram('ping', 'iputils-ping');
  requireProgram('python3', 'python3');
  console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}, ${process.platform} ${process.arch}`);
  console.log(`veth baseline, ping -c 200 -i 0.01: ${await vethBaseline()}`);
  for (const interrupts of [
    ['msix', 'msix'],
    ['poll', 'poll'],
  ] as const) {
    const rig = await makeRig({ interrupts: [...interrupts] });
    try {
      const warm = await rig.lab.run(rig.ns[0], ['ping', '-c', '3', '-i', '0.05', '-q', ADDR2], 10_000);
      if (warm.code !== 0) throw new Error(`warm-up ping failed: ${warm.stdout}${warm.stderr}`);
      console.log(`\n== rig: both drivers ${interrupts[0]}, bridges batch 32, queue 256`);
      const p = await rig.lab.run(rig.ns[0], ['ping', '-c', '200', '-i', '0.01', '-q', ADDR2], 30_000);
      console.log(`ping -c 200 -i 0.01: ${rtt(p.stdout)}`);
      const f = await rig.lab.run(rig.ns[0], ['ping', '-f', '-c', '5000', '-q', ADDR2], 60_000);
      const time = /time (\d+)ms/.exec(f.stdout)?.[1];
      console.log(`ping -f -c 5000: ${rtt(f.stdout)}, total ${time} ms = ${time ? (5000 / (Number(time) / 1000)).toFixed(0) : '?'} round trips/s`);
      for (const size of [60, 1514]) console.log(`flood: ${await flood(rig, 100_000, size)}`);
      const c = rig.bridges.map((b) => b.counters());
      console.log(`bridge 1: ${JSON.stringify(c[0])}`);
      console.log(`bridge 2: ${JSON.stringify(c[1])}`);
      if (rig.errors.length) console.log(`errors: ${rig.errors.map(String).join('; ')}`);
    } finally {
      await rig.close();
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
