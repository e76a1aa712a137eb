/**
 * `npm run bench -- nic [--seconds=N] [--runs=N] [--window=N] [--json] [--no-results]`: the
 * simulated 82574L with its echo peer (10.0.2.2 answers ARP and ICMP echo), driven through the
 * NicPort interface the TAP bridge uses (linkback/tap/nic-port.ts), side by side in one run:
 *   1. sandboxed: the e1000e driver in its container, the model in its device process, this process
 *      the manager, moving frames through the packet rings (sandbox/manager/services/net.ts);
 *   2. in-process: the same driver and model in this process (linkback/in-process/e1000e.ts).
 * This process keeps `--window` (default 64) echo requests of 98 bytes in flight, in batches of up
 * to 32, and counts the replies: each is one frame sent and one received by the driver. Reported:
 * echo round trips (packets) per second and CPU microseconds per packet, of this process, the
 * container and the device process (/proc/PID/stat), the median of `--runs` (default 3),
 * alternating the targets. No TAP interface: what is measured is the sandbox's path to the bridge.
 * The container copies each frame once each way between a ring slot and the driver's DMA buffer
 * (sandbox/container/services/net.ts says why): that copy is part of the sandboxed figure.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { PacketBatch } from '../drivers/contract/packet-batch.js';
import { E1000e } from '../drivers/e1000e/device.js';
import { E1000ePort } from '../linkback/in-process/e1000e.js';
import type { NicPort } from '../linkback/tap/nic-port.js';
import { parsePolicies } from '../policies/index.js';
import { Supervisor } from '../sandbox/manager/supervisor.js';
import { SimMachine } from '../sim/machine.js';
import { E1000eModel } from '../sim/e1000e/model.js';
import { attachPeer } from '../sim/net/peer.js';
import { arpFrame, arpReplyFrom, icmpEcho, ipv4 } from '../sim/net/packets.js';
import { machineSummary } from './machine.js';

const HOST_IP = ipv4('10.0.2.15');
const PEER_IP = ipv4('10.0.2.2');
const BATCH = 32;
/** Descriptors per ring, both targets (pools of twice that, as the sandboxed driver makes them). */
const DEPTH = 256;

interface Serving {
  port: NicPort;
  /** Other processes serving (container, device process), for their CPU. */
  pids(): { container: number[]; device: number[] };
  stop(): Promise<void>;
}

async function sandboxed(): Promise<Serving> {
  const policy = parsePolicies(
    `
version: 1
name: bench-nic
device: { sim: e1000e, peer: echo }
driver: { name: e1000e, depth: ${DEPTH}, interrupts: polling }
windows: [ { size: 64KiB, access: read-write, label: rx-descriptors }, { size: 4MiB, label: buffers } ]
`,
    'bench-nic.yaml',
  ).policies[0]!.policy;
  const s = new Supervisor(policy);
  await s.start();
  return {
    port: s.nic!,
    pids: () => ({ container: s.pid ? [s.pid] : [], device: s.sim?.process?.pid ? [s.sim.process.pid] : [] }),
    stop: () => s.stop(),
  };
}

async function inProcess(): Promise<Serving> {
  const machine = new SimMachine();
  const model = new E1000eModel({ mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56] });
  machine.attach(model, { address: '0000:00:01.0' });
  attachPeer(model, 'echo');
  const platform = machine.platform('0000:00:01.0');
  const nic = await E1000e.open(platform, { rxDescriptors: DEPTH, txDescriptors: DEPTH, interrupts: 'poll' });
  return {
    port: new E1000ePort(nic),
    pids: () => ({ container: [], device: [] }),
    stop: async () => {
      await nic.close();
      platform.close();
    },
  };
}

const TARGETS = { sandboxed, 'in-process': inProcess } as const;
type TargetName = keyof typeof TARGETS;

/** CPU time (user + system) of a process in microseconds, from /proc (0 when it is gone). */
function procCpuUs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) / 100) * 1e6;
  } catch {
    return 0;
  }
}

/** Post `frame` once (bounded). */
async function post(port: NicPort, frame: Uint8Array, deadline: number): Promise<void> {
  const batch = new PacketBatch(1);
  while (performance.now() < deadline) {
    const b = port.txAlloc();
    if (b >= 0) {
      port.txBytes.set(frame, port.txOffset(b));
      batch.push(b, frame.length);
      if (port.tx(batch) === 1) return;
      batch.clear();
      port.txFree(b);
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`${port.name}: no TX buffer taken in time`);
}

/** The peer's MAC, by ARP (bounded). */
async function resolvePeer(port: NicPort): Promise<Uint8Array> {
  const end = performance.now() + 5000;
  const batch = new PacketBatch(BATCH);
  while (performance.now() < end) {
    await post(port, arpFrame('request', port.mac, HOST_IP, new Uint8Array(6), PEER_IP), end);
    const wait = performance.now() + 200;
    while (performance.now() < wait) {
      await port.waitRx(20);
      batch.clear();
      const k = port.rx(batch);
      let mac: Uint8Array | null = null;
      for (let i = 0; i < k && mac === null; i++) {
        const off = port.rxOffset(batch.buf[i]!);
        mac = arpReplyFrom(port.rxBytes.subarray(off, off + batch.len[i]!), batch.len[i]!, PEER_IP);
      }
      port.rxFree(batch);
      if (mac !== null) return mac;
    }
  }
  throw new Error(`${port.name}: no ARP reply from 10.0.2.2 within 5 s`);
}

interface Measured {
  pps: number;
  packets: number;
  /** CPU microseconds per packet (one echo round trip: a frame out and a frame in). */
  cpu: { self: number; container: number; device: number };
}

/** Echo requests kept `window` in flight for `seconds`; replies counted (an ICMP reply is recognised by its type byte). */
async function pump(t: Serving, peerMac: Uint8Array, seconds: number, window: number): Promise<Measured> {
  const port = t.port;
  const frame = icmpEcho('request', port.mac, peerMac, HOST_IP, PEER_IP, 0x4242, 1, new Uint8Array(56));
  const tb = new PacketBatch(BATCH),
    rb = new PacketBatch(BATCH);
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
  let inFlight = 0;
  let replies = 0;
  const run = async (ms: number): Promise<void> => {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // Send up to the window, a batch at a time.
      tb.clear();
      while (inFlight + tb.count < window && tb.count < BATCH) {
        const b = port.txAlloc();
        if (b < 0) break;
        port.txBytes.set(frame, port.txOffset(b));
        tb.push(b, frame.length);
      }
      if (tb.count > 0) {
        const want = tb.count;
        const sent = port.tx(tb);
        inFlight += sent;
        // Buffers the NIC did not take go back.
        for (let i = 0; i < want - sent; i++) port.txFree(tb.buf[i]!);
      }
      rb.clear();
      const k = port.rx(rb);
      for (let i = 0; i < k; i++) {
        const off = port.rxOffset(rb.buf[i]!);
        // ICMP echo reply (type 0) in an IPv4 frame: byte 34.
        if (rb.len[i]! >= 42 && port.rxBytes[off + 23] === 1 && port.rxBytes[off + 34] === 0) {
          replies++;
          inFlight--;
        }
      }
      port.rxFree(rb);
      if (k === 0) {
        // Nothing back yet: let the other side run; a lost request would otherwise hold the window forever.
        if (!(await port.waitRx(1)) && inFlight > 0) inFlight--;
      } else await tick();
    }
  };
  await run(300); // warm-up
  const p = t.pids();
  const c0 = p.container.reduce((a, x) => a + procCpuUs(x), 0),
    d0 = p.device.reduce((a, x) => a + procCpuUs(x), 0);
  const self0 = process.cpuUsage();
  const r0 = replies;
  const t0 = performance.now();
  await run(seconds * 1000);
  const secs = (performance.now() - t0) / 1000;
  const self = process.cpuUsage(self0);
  const n = replies - r0;
  return {
    pps: n / secs,
    packets: n,
    cpu: {
      self: (self.user + self.system) / Math.max(1, n),
      container: (p.container.reduce((a, x) => a + procCpuUs(x), 0) - c0) / Math.max(1, n),
      device: (p.device.reduce((a, x) => a + procCpuUs(x), 0) - d0) / Math.max(1, n),
    },
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(argv: string[]): Promise<void> {
  const opt = (name: string, dflt: number): number => {
    const a = argv.find((x) => x.startsWith(`--${name}=`));
    const v = a ? Number(a.slice(name.length + 3)) : dflt;
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer, got ${a}`);
    return v;
  };
  const seconds = opt('seconds', 3),
    runs = opt('runs', 3),
    window = opt('window', 64);
  const json = argv.includes('--json');
  const results = new Map<TargetName, Measured[]>([
    ['sandboxed', []],
    ['in-process', []],
  ]);
  for (let r = 0; r < runs; r++) {
    for (const name of Object.keys(TARGETS) as TargetName[]) {
      const t = await TARGETS[name]();
      try {
        const peer = await resolvePeer(t.port);
        const m = await pump(t, peer, seconds, window);
        results.get(name)!.push(m);
        if (!json)
          console.log(
            `  run ${r + 1}: ${name}: ${Math.round(m.pps)} echo round trips/s; CPU per packet: this process ${m.cpu.self.toFixed(1)} us${name === 'sandboxed' ? `, container ${m.cpu.container.toFixed(1)} us, device process ${m.cpu.device.toFixed(1)} us` : ''}`,
          );
      } finally {
        await t.stop();
      }
    }
  }
  const summary = Object.fromEntries(
    [...results].map(([name, ms]) => {
      const cpu = {
        self: median(ms.map((m) => m.cpu.self)),
        container: median(ms.map((m) => m.cpu.container)),
        device: median(ms.map((m) => m.cpu.device)),
      };
      return [
        name,
        {
          pps: Math.round(median(ms.map((m) => m.pps))),
          cpuUsPerPacket: Math.round((cpu.self + cpu.container + cpu.device) * 100) / 100,
          cpu,
          runs: ms.map((m) => Math.round(m.pps)),
        },
      ];
    }),
  ) as Record<TargetName, { pps: number; cpuUsPerPacket: number; cpu: Measured['cpu']; runs: number[] }>;
  const sb = summary.sandboxed,
    ip = summary['in-process'];
  const load = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const lines = [
    `simulated 82574L with its echo peer, through the NicPort the TAP bridge uses, no TAP; ${DEPTH} descriptors per ring, the driver polling; ICMP echo requests of 98 bytes, ${window} in flight, batches of up to ${BATCH}; ${seconds} s per run, ${runs} run(s) per target (median), targets alternating;`,
    `nproc ${availableParallelism()}, load average at the end ${load} (other work on the machine inflates these figures); a packet is one echo round trip (a frame sent and one received by the driver)`,
    `- sandboxed (driver in its container, model in its device process, packet rings to this process): ${sb.pps} packets/s (runs ${sb.runs.join(', ')}); CPU per packet ${sb.cpuUsPerPacket} us (manager ${sb.cpu.self.toFixed(1)} + container ${sb.cpu.container.toFixed(1)} + device process ${sb.cpu.device.toFixed(1)})`,
    `- in-process (same driver and model in this process): ${ip.pps} packets/s (runs ${ip.runs.join(', ')}); CPU per packet ${ip.cpuUsPerPacket} us`,
    `- sandboxed / in-process: ${(sb.pps / ip.pps).toFixed(3)} of the packets per second; the sandbox adds ${(sb.cpuUsPerPacket - ip.cpuUsPerPacket).toFixed(1)} us of CPU per packet`,
  ];
  console.log(lines.join('\n'));
  if (!argv.includes('--no-results')) {
    const file = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './RESULTS.md' : '../../bench/RESULTS.md', import.meta.url));
    appendFileSync(file, `\n## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: nic\n${machineSummary()}\n\n${lines.join('\n')}\n`);
    if (!json) console.log(`appended to ${file}`);
  }
  if (json)
    console.log(
      JSON.stringify({
        sandboxed: sb,
        inProcess: ip,
        ratioSandboxedInProcess: sb.pps / ip.pps,
        addedCpuUsPerPacket: sb.cpuUsPerPacket - ip.cpuUsPerPacket,
        loadAverage: loadavg(),
        seconds,
        runs,
        window,
      }),
    );
}
