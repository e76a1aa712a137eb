/**
 * Frames per second through a sandboxed e1000e (not a test; `npm run build && node
 * dist/test/sandbox/net/measure.js [seconds]`): the same NicPort loop as the TAP bridge's, against
 * (a) the SandboxNicPort of a container (driver in its own process, registers through the mailbox,
 * one copy per frame in the container) and (b) the same driver in-process (E1000ePort on a
 * SimPlatform), both polling; the sandboxed NIC's model runs in its device process, its cable to a
 * socket of this process (wire.ts), the in-process one's model in this process.
 * - TX: the loop keeps the port fed, 32 frames a turn; counted where the model puts them on the wire.
 * - RX: the wire offers a burst of 32 frames whenever the port has drained the last; counted out of rx().
 *
 * Seen so far (2-core VMs shared with other jobs, Node v20.20.2; three runs, range or median):
 * - 2026-11, AMD EPYC, load 1.6 to 2.5, 2 s per figure, rings kicking after every batch: 60 B TX
 *   sandboxed 9,400 to 1,440,000/s (in-process 2.2 to 4.7 M), RX 44,000 to 250,000 (2.3 to 3.1 M);
 *   1514 B TX 136,000 to 665,000 (2.3 to 3.7 M), RX 103,000 to 183,000 (2.7 to 2.9 M).
 * - 2026-12-04, Intel Xeon, load 1.3 to 2.1, 3 s per figure, the previous build and this one run
 *   in turns (three pairs), medians: rings kicking after every batch: 60 B TX 1.43 M, RX 73,000;
 *   1514 B TX 1.25 M, RX 379,000. On the shared ring (sandbox/abi/ring.ts) with the container
 *   polling for 0.5 ms after the last frame: 60 B TX 1.96 M, RX 915,000; 1514 B TX 1.42 M, RX
 *   725,000 (in-process: 5.7 to 6.0 M and 3.9 to 4.5 M throughout). The RX figure of the previous
 *   build swung between 60,000 and 350,000 from run to run: its container looked at the NIC at
 *   its driver's 1 ms poll, or when a kick the manager sent for other reasons happened to wake it.
 * The sandboxed figures are very uneven: each register access of the container's driver is a
 * round trip through the register mailbox to the manager (the TX path reads TDH to reclaim
 * buffers; the container spins for the answer), so both processes must be on a core at once. A
 * probe of an 8 s TX flood saw 9,000 to 160,000 frames per 250 ms, the slow periods with the
 * container's event loop stalled for up to 190 ms (not fully explained; a profile of both
 * processes is the next step). VFIO containers touch BAR0 directly and have no such round trip.
 * The TAP is slower than either (linkback/tap/README.md), so the rings are not a TAP link's
 * bottleneck.
 */
import { cpus } from 'node:os';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { SimMachine } from '../../../sim/machine.js';
import { E1000eModel } from '../../../sim/e1000e/model.js';
import { E1000e } from '../../../drivers/e1000e/device.js';
import type { NicPort } from '../../../linkback/tap/nic-port.js';
import { E1000ePort } from '../../../linkback/in-process/e1000e.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import type { WirePort } from '../../../sim/wire.js';
import { nicPolicy } from './helpers.js';
import { TestWire } from './wire.js';
import { until } from '../helpers.js';

/** Where frames are counted and offered: a model in this process, or a device process's cable. */
interface MeasureWire {
  /** Frames put on the wire so far. */
  sent(): number;
  /** Offer `n` frames to the NIC's RX side; returns how many are on their way. */
  offer(frame: Uint8Array, len: number, n: number): number;
  close(): void;
}

function modelWire(model: WirePort): MeasureWire {
  let onWire = 0;
  model.attachWire(() => {
    onWire++;
  });
  return {
    sent: () => onWire,
    offer(frame, len, n) {
      let k = 0;
      model.burst?.(true);
      for (let i = 0; i < n; i++) if (model.receive(frame, len)) k++;
      model.burst?.(false);
      return k;
    },
    close: () => model.attachWire(null),
  };
}

function socketWire(w: TestWire): MeasureWire {
  let onWire = 0;
  w.keep = false;
  w.onFrame = () => {
    onWire++;
  };
  return {
    sent: () => onWire,
    offer(frame, len, n) {
      for (let i = 0; i < n; i++) w.send(frame.subarray(0, len));
      return n;
    },
    close: () => {
      w.onFrame = undefined;
    },
  };
}

const seconds = Number(process.argv[2] ?? 3);
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

async function txRate(port: NicPort, wire: MeasureWire, len: number): Promise<number> {
  const frame = new Uint8Array(len);
  frame.set([2, 0, 0, 0, 0, 1], 0);
  frame.set(port.mac, 6);
  frame[12] = 0x88;
  frame[13] = 0xb5;
  const b = new PacketBatch(32);
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  const start = wire.sent();
  while (performance.now() < end) {
    while (b.count < 32) {
      const s = port.txAlloc();
      if (s < 0) break;
      port.txBytes.set(frame, port.txOffset(s));
      b.push(s, len);
    }
    port.tx(b);
    if (port.rx(new PacketBatch(1)) < 0) break; // reaps TX completions on the sandbox port
    await turn();
  }
  const rate = (wire.sent() - start) / ((performance.now() - t0) / 1000);
  for (let i = 0; i < b.count; i++) port.txFree(b.buf[i]!);
  return rate;
}

async function rxRate(port: NicPort, wire: MeasureWire, len: number): Promise<number> {
  const frame = new Uint8Array(len);
  frame.set(port.mac, 0);
  frame.set([2, 0, 0, 0, 0, 1], 6);
  frame[12] = 0x88;
  frame[13] = 0xb5;
  const b = new PacketBatch(32);
  let got = 0,
    outstanding = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  while (performance.now() < end) {
    if (outstanding === 0) outstanding += wire.offer(frame, len, 32);
    await port.waitRx(5);
    b.clear();
    const k = port.rx(b);
    port.rxFree(b);
    got += k;
    outstanding = Math.max(0, outstanding - k);
    // a whole event-loop turn each time, as the TAP bridge does: a ready port resolves waitRx with
    // microtasks only, and a loop of those would starve this process's I/O (the container's heartbeats)
    await turn();
  }
  return got / ((performance.now() - t0) / 1000);
}

async function main(): Promise<void> {
  console.log(`machine: ${cpus().length} CPUs (${cpus()[0]?.model}), node ${process.version}; ${seconds} s per figure`);
  const tw = await TestWire.open();
  const s = new Supervisor(nicPolicy('measure-net'), tw.options());
  s.on('event', (e: { kind: string; text: string }) => {
    if (e.kind !== 'log' && e.kind !== 'spawn' && e.kind !== 'ready') console.log(`  sandbox event ${e.kind}: ${e.text}`);
  });
  await s.start();
  await until('the device process on the wire', () => tw.connected, 5000);
  const sandboxWire = socketWire(tw);
  const inprocWire = (): MeasureWire => modelWire(model);
  const machine = new SimMachine();
  const model = new E1000eModel();
  machine.attach(model, { address: '0000:00:02.0' });
  model.attachWire(() => undefined);
  const nic = await E1000e.open(machine.platform('0000:00:02.0'), { rxDescriptors: 64, txDescriptors: 64, rxBuffers: 128, txBuffers: 128 });
  const inproc = new E1000ePort(nic);
  try {
    for (const len of [60, 1514]) {
      const sbTx = await txRate(s.nic!, sandboxWire, len);
      const ipTx = await txRate(inproc, inprocWire(), len);
      const sbRx = await rxRate(s.nic!, sandboxWire, len);
      const ipRx = await rxRate(inproc, inprocWire(), len);
      console.log(
        `${len} B frames: TX sandboxed ${Math.round(sbTx)}/s, in-process ${Math.round(ipTx)}/s (${(sbTx / ipTx).toFixed(2)}x); RX sandboxed ${Math.round(sbRx)}/s, in-process ${Math.round(ipRx)}/s (${(sbRx / ipRx).toFixed(2)}x)`,
      );
    }
    console.log(
      `sandbox: ${s.restarts} restart(s) during the run (a figure measured across one is not comparable); port counters ${JSON.stringify(s.nic!.counters)}`,
    );
  } finally {
    await nic.close();
    await s.stop();
    sandboxWire.close();
    tw.close();
  }
}

await main();
