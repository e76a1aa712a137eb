/**
 * `npm run bench -- e1000e [--seconds=N] [--runs=N] [--no-record] [--only=models|driver] [--vfio=BDF]`
 * (--only runs one measurement and records nothing: for profiling with `node --cpu-prof`): packets per second with 64-byte frames at
 * batch 32, and the driver's own cost per packet.
 *
 * Two measurements:
 * 1. Two simulated 82574L models cabled back to back (sim/e1000e, IOMMU on), work mode
 *    'deferred': tx() returns after the TDT write, the model runs between driver batches. Every
 *    driver call (txAlloc, tx, rx, rxFree) is timed, so driver time and model time are separated.
 * 2. The driver alone, against a minimal loopback device (below): TDT write = every queued frame
 *    sent (TDH = TDT), and each sent frame completes one RX descriptor (DD, EOP, length). That is
 *    the least a device can do; what remains is the driver's path.
 *
 * 3. With --vfio=BDF, instead: the driver on a real device through VFIO (TX rate, ICMP RTT); in the
 *    lab: `dmabox lab run --e1000e -- node dist/bench/main.js e1000e --vfio=0000:00:01.0`.
 *
 * Results print and are appended, with the machine line, to bench/RESULTS.md (dated section).
 */
import { appendFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import { machineSummary } from './machine.js';
import { E1000e } from '../drivers/e1000e/device.js';
import { PacketBatch } from '../drivers/contract/packet-batch.js';
import { REG } from '../spec/e1000e/registers.js';
import { setField } from '../spec/field.js';
import { SimMachine } from '../sim/machine.js';
import { E1000eModel } from '../sim/e1000e/model.js';
import { backToBack } from '../sim/wire.js';
import type { Platform, RegisterSpace, DmaWindow, DmaPerm, DmaAllocator, IrqVector } from '../drivers/contract/platform.js';

// The minimal device's register offsets and values, copied once from the spec (its accesses are in the timed loop).
const CTRL = REG.CTRL.offset,
  STATUS = REG.STATUS.offset,
  EERD = REG.EERD.offset;
const TDLEN = REG.TDLEN.offset,
  TDH = REG.TDH.offset,
  TDT = REG.TDT.offset;
const RDBAL = REG.RDBAL.offset,
  RDLEN = REG.RDLEN.offset,
  RDH = REG.RDH.offset,
  RDT = REG.RDT.offset;
const STATUS_UP = setField(REG.STATUS.LU.mask | REG.STATUS.FD.mask, REG.STATUS.SPEED, 2);
const CTRL_RST = REG.CTRL.RST.mask,
  EERD_DONE = REG.EERD.DONE.mask;

const BATCH = 32;
const FRAME = 60; // 64 bytes on the wire with the FCS the device appends

interface Result {
  pps: number;
  packets: number;
  seconds: number;
  /** Packets per second of this process's CPU time (user + system): less sensitive to other load than wall time. */
  ppsCpu: number;
  driverNsPerPacket: number;
  otherNsPerPacket: number;
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
}

/**
 * Write the frame template into every TX buffer once, as ixy's packet generator does at mempool
 * set-up: TX buffers are only ever written by us, so per packet only the sequence number changes.
 */
function prefill(nic: E1000e, template: Uint8Array): void {
  const pool = nic.txPool;
  for (let i = 0; i < pool.count; i++) pool.window.bytes.set(template, pool.offset(i));
}

/** Fill a TX batch with BATCH frames (template already in place) whose first payload dword is a sequence number. */
function fillTx(nic: E1000e, tb: PacketBatch, seq: number): number {
  const pool = nic.txPool;
  const bytes = pool.window.bytes;
  while (tb.count < BATCH) {
    const b = nic.txAlloc();
    if (b < 0) break;
    const off = pool.offset(b);
    bytes[off + 14] = seq;
    bytes[off + 15] = seq >>> 8;
    bytes[off + 16] = seq >>> 16;
    bytes[off + 17] = seq >>> 24;
    seq++;
    tb.buf[tb.count] = b;
    tb.len[tb.count] = FRAME;
    tb.count++;
  }
  return seq;
}

function template(dst: Uint8Array, src: Uint8Array): Uint8Array {
  const f = new Uint8Array(FRAME);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  return f;
}

/** Measurement 1: two full models. */
async function twoModels(seconds: number): Promise<Result> {
  const machine = new SimMachine();
  const ma = new E1000eModel({ mac: [0x52, 0x54, 0, 0, 0, 1] });
  const mb = new E1000eModel({ mac: [0x52, 0x54, 0, 0, 0, 2] });
  machine.attach(ma, { address: '0000:00:02.0', workMode: 'deferred' });
  machine.attach(mb, { address: '0000:00:03.0', workMode: 'deferred' });
  backToBack(ma, mb);
  const pa = machine.platform('0000:00:02.0');
  const pb = machine.platform('0000:00:03.0');
  const A = await E1000e.open(pa);
  const B = await E1000e.open(pb);
  prefill(A, template(B.mac, A.mac));
  const tb = new PacketBatch(BATCH),
    rb = new PacketBatch(BATCH);
  let seq = 0;
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
  // Warm-up, then measure.
  for (let phase = 0; phase < 2; phase++) {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const until = t0 + (phase === 0 ? 300 : seconds * 1000);
    let received = 0,
      driverNs = 0;
    let now = t0;
    while (now < until) {
      for (let k = 0; k < 8; k++) {
        const s = performance.now();
        seq = fillTx(A, tb, seq);
        A.tx(tb);
        const m = performance.now();
        driverNs += m - s;
        // Between the two driver steps the device runs (deferred work of A, delivery into B).
        await tick();
        const s2 = performance.now();
        received += B.rx(rb);
        B.rxFree(rb);
        driverNs += performance.now() - s2;
      }
      now = performance.now();
    }
    if (phase === 1) {
      const secs = (now - t0) / 1000;
      const cpu = cpuSeconds(cpu0);
      const st = B.stats();
      await A.close();
      await B.close();
      pa.close();
      pb.close();
      if (st.device.MPC !== 0) throw new Error(`bench: ${st.device.MPC} frames missed: the pacing is wrong`);
      const totalNs = (now - t0) * 1e6;
      driverNs *= 1e6;
      return {
        pps: received / secs,
        packets: received,
        seconds: secs,
        ppsCpu: received / cpu,
        driverNsPerPacket: driverNs / received,
        otherNsPerPacket: (totalNs - driverNs) / received,
      };
    }
  }
  throw new Error('unreachable');
}

/**
 * Measurement 2's device: the least an 82574L can do and still loop frames back. Registers are a
 * plain array; CTRL.RST self-clears, STATUS says link up, EERD answers at once; a TDT write sets
 * TDH = TDT and completes that many RX descriptors (DD | EOP, length 60) from RDH on, stopping at
 * RDT. No payload is copied. Windows are heap memory at made-up IOVAs (no IOMMU: this measures
 * the driver, not confinement).
 */
class MinimalLoopback implements Platform {
  readonly name = 'bench:minimal-e1000e';
  private readonly regs = new Uint32Array(0x20000 / 4);
  private readonly windows: DmaWindow[] = [];
  private nextIova = 0x1000_0000;
  private rxDesc: Uint8Array | null = null;
  private rxLen: Uint16Array | null = null;
  readonly config = {
    read8: () => 0,
    read16: (o: number) => (o === 0 ? 0x8086 : o === 2 ? 0x10d3 : 0),
    read32: () => 0,
    write16: () => {},
    write32: () => {},
  };
  readonly clock = { now: () => performance.now(), sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) };
  readonly irq = { count: () => 0, enable: (): IrqVector[] => [], disable: () => {} };
  readonly dma: DmaAllocator = {
    pageSize: 4096,
    alloc: (size: number, perm: DmaPerm): DmaWindow => {
      const bytes = new Uint8Array(size);
      const w: DmaWindow = { iova: BigInt(this.nextIova), size, perm, bytes, view: new DataView(bytes.buffer) };
      this.nextIova += size + 4096;
      this.windows.push(w);
      return w;
    },
    free: () => {},
  };
  private readonly bar0: RegisterSpace;

  constructor() {
    const r = this.regs;
    const loop = (): void => this.loop();
    this.bar0 = {
      size: 0x20000,
      read32(o: number): number {
        if (o === STATUS) return STATUS_UP;
        return r[o >>> 2]!;
      },
      write32(o: number, v: number): void {
        if (o === CTRL) {
          r[0] = v & ~CTRL_RST;
          return;
        }
        if (o === EERD) {
          r[o >>> 2] = (v & 0xfffc) | EERD_DONE | (0x5452 << 16);
          return;
        }
        r[o >>> 2] = v >>> 0;
        if (o === TDT) loop();
      },
      read64: () => 0n,
      write64: () => {},
    };
  }

  bar(): RegisterSpace {
    return this.bar0;
  }

  private loop(): void {
    const r = this.regs;
    const n = r[TDLEN >>> 2]! / 16;
    const tail = r[TDT >>> 2]!;
    let sent = (tail - r[TDH >>> 2]! + n) % n;
    r[TDH >>> 2] = tail;
    if (this.rxDesc === null) {
      const base = r[RDBAL >>> 2]!;
      const w = this.windows.find((x) => Number(x.iova) === base)!;
      this.rxDesc = w.bytes;
      this.rxLen = new Uint16Array(w.bytes.buffer);
    }
    const rn = r[RDLEN >>> 2]! / 16;
    const rdt = r[RDT >>> 2]!;
    let h = r[RDH >>> 2]!;
    const d = this.rxDesc,
      l = this.rxLen!;
    while (sent > 0 && h !== rdt) {
      l[h * 8 + 4] = FRAME;
      d[h * 16 + 12] = 3; // DD | EOP
      h = h + 1 === rn ? 0 : h + 1;
      sent--;
    }
    r[RDH >>> 2] = h;
  }

  reset(): void {}
  close(): void {}
}

/** Measurement 2: the driver alone. */
async function driverOnly(seconds: number): Promise<Result> {
  const p = new MinimalLoopback();
  const nic = await E1000e.open(p);
  prefill(nic, template(nic.mac, nic.mac));
  const tb = new PacketBatch(BATCH),
    rb = new PacketBatch(BATCH);
  let seq = 0,
    received = 0;
  let t0 = 0,
    now = 0;
  let cpu0 = process.cpuUsage();
  for (let phase = 0; phase < 2; phase++) {
    t0 = performance.now();
    cpu0 = process.cpuUsage();
    const until = t0 + (phase === 0 ? 300 : seconds * 1000);
    received = 0;
    now = t0;
    while (now < until) {
      for (let k = 0; k < 64; k++) {
        seq = fillTx(nic, tb, seq);
        nic.tx(tb);
        received += nic.rx(rb);
        nic.rxFree(rb);
      }
      now = performance.now();
    }
  }
  const secs = (now - t0) / 1000;
  const cpu = cpuSeconds(cpu0);
  await nic.close();
  return { pps: received / secs, packets: received, seconds: secs, ppsCpu: received / cpu, driverNsPerPacket: (secs * 1e9) / received, otherNsPerPacket: 0 };
}

/**
 * Against a real device through VFIO (`--vfio=BDF`: the lab guest's e1000e, or real hardware): the
 * driver in polling mode. TX: batches of 32 60-byte frames to an address nobody has, for `seconds`;
 * the device's own GPTC says how many left. RTT: ICMP echo to 10.0.2.2 (QEMU's slirp) one at a time.
 * Nothing can be received at line rate here (no traffic source), so RX is measured only by the RTT.
 */
async function onVfio(bdf: string, seconds: number): Promise<string[]> {
  const { VfioPlatform } = await import('../platform/vfio.js');
  const pk = await import('../test/drivers/e1000e/packets.js');
  const p = VfioPlatform.open(bdf);
  try {
    const nic = await E1000e.open(p, { linkTimeoutMs: 10_000 });
    try {
      prefill(nic, template(new Uint8Array([0x02, 0, 0, 0, 0, 0x99]), nic.mac));
      const tb = new PacketBatch(BATCH);
      nic.stats();
      let seq = 0,
        taken = 0;
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const until = t0 + seconds * 1000;
      while (performance.now() < until) {
        for (let k = 0; k < 16; k++) {
          seq = fillTx(nic, tb, seq);
          taken += nic.tx(tb);
        }
      }
      const secs = (performance.now() - t0) / 1000;
      const cpu = cpuSeconds(cpu0);
      await new Promise((r) => setTimeout(r, 200)); // let the device finish the ring
      const sent = nic.stats().device.GPTC;
      for (let i = 0; i < tb.count; i++) nic.txPool.free(tb.buf[i]!);
      tb.clear();
      // RTT: ARP for the gateway, then echo requests one at a time.
      const rx = new PacketBatch(BATCH);
      const wait = async (match: (f: Uint8Array) => boolean, ms: number): Promise<boolean> => {
        const end = performance.now() + ms;
        while (performance.now() < end) {
          nic.rx(rx);
          let hit = false;
          for (let i = 0; i < rx.count; i++) if (match(nic.rxData(rx.buf[i]!, rx.len[i]!))) hit = true;
          nic.rxFree(rx);
          if (hit) return true;
        }
        return false;
      };
      nic.send(pk.arpRequest(nic.mac, pk.GUEST_IP, pk.GATEWAY_IP));
      let gw: Uint8Array | null = null;
      await wait((f) => {
        const a = pk.parseArpReply(f);
        if (a) gw = a.senderMac;
        return a !== null;
      }, 5000);
      const rtts: number[] = [];
      if (gw !== null) {
        const payload = new Uint8Array(56);
        for (let i = 0; i < 50; i++) {
          const s0 = performance.now();
          nic.send(pk.icmpEchoRequest(nic.mac, gw, pk.GUEST_IP, pk.GATEWAY_IP, 0x1234, i, payload));
          if (
            await wait((f) => {
              const e = pk.parseIcmpEcho(f);
              return e !== null && e.type === 0 && e.seq === i;
            }, 2000)
          )
            rtts.push(performance.now() - s0);
        }
      }
      const us = (x: number) => (x * 1000).toFixed(0);
      return [
        `e1000e through VFIO at ${bdf} (driver polling, batch ${BATCH}, 60-byte frames + FCS), ${seconds} s`,
        `- TX: ${(sent / secs / 1e3).toFixed(1)} kpps left the device (GPTC ${sent}; the ring took ${taken});`,
        `  ${(taken / cpu / 1e6).toFixed(2)} Mpps handed to the ring per second of process CPU time`,
        rtts.length
          ? `- ICMP echo to 10.0.2.2, ${rtts.length}/50 answered: RTT median ${us(median(rtts))} us, min ${us(Math.min(...rtts))} us, max ${us(Math.max(...rtts))} us`
          : '- ICMP echo to 10.0.2.2: no ARP reply from the gateway (not on a slirp network?)',
      ];
    } finally {
      await nic.close();
    }
  } finally {
    p.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function run(argv: string[]): Promise<void> {
  const secArg = argv.find((a) => a.startsWith('--seconds='));
  const seconds = secArg ? Number(secArg.slice('--seconds='.length)) : 2;
  if (!(seconds > 0 && seconds <= 600)) throw new RangeError(`bench e1000e: ${secArg} must be a number of seconds from 0 to 600`);
  const runsArg = argv.find((a) => a.startsWith('--runs='));
  const runs = runsArg ? Number(runsArg.slice('--runs='.length)) : 3;
  if (!(Number.isInteger(runs) && runs >= 1 && runs <= 50)) throw new RangeError(`bench e1000e: ${runsArg} must be an integer from 1 to 50`);
  const vfioArg = argv.find((a) => a.startsWith('--vfio='));
  if (vfioArg !== undefined) {
    // Inside the lab guest the host tree is read-only: print only; the caller records the lines.
    for (const l of await onVfio(vfioArg.slice('--vfio='.length), seconds)) console.log(l);
    return;
  }
  const onlyArg = argv.find((a) => a.startsWith('--only='));
  const only = onlyArg?.slice('--only='.length);
  if (only !== undefined && only !== 'models' && only !== 'driver')
    throw new RangeError(`bench e1000e: ${onlyArg} must be --only=models or --only=driver (for profiling one of them)`);
  const full: Result[] = [],
    alone: Result[] = [];
  for (let i = 0; i < runs; i++) {
    if (only !== 'driver') full.push(await twoModels(seconds));
    if (only !== 'models') alone.push(await driverOnly(seconds));
  }
  if (only !== undefined) {
    for (const r of [...full, ...alone])
      console.log(
        `${only}: ${(r.pps / 1e6).toFixed(2)} Mpps (${(r.ppsCpu / 1e6).toFixed(2)} per CPU-second), driver ${r.driverNsPerPacket.toFixed(0)} ns/packet`,
      );
    return;
  }
  const mpps = (x: number) => (x / 1e6).toFixed(2);
  const range = (rs: Result[], f: (r: Result) => number, fmt: (x: number) => string) =>
    `${fmt(median(rs.map(f)))} (runs: ${rs.map((r) => fmt(f(r))).join(', ')})`;
  const ns = (x: number) => x.toFixed(0);
  const lines = [
    `e1000e, 64-byte frames (60 + FCS), batch ${BATCH}, one core, ${runs} runs of ${seconds} s each, median first;`,
    `load average at the end ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} (other work on the machine inflates these figures)`,
    `- two simulated 82574L back to back (IOMMU on, deferred device work): ${range(full, (r) => r.pps, mpps)} Mpps received;`,
    `  per second of process CPU time: ${range(full, (r) => r.ppsCpu, mpps)} Mpps;`,
    `  driver ${range(full, (r) => r.driverNsPerPacket, ns)} ns/packet (txAlloc + sequence number + tx + rx + rxFree, timed per call);`,
    `  model, wire, IOMMU and event loop ${range(full, (r) => r.otherNsPerPacket, ns)} ns/packet`,
    `- driver alone against a minimal loopback device: ${range(alone, (r) => r.pps, mpps)} Mpps, each frame sent and received;`,
    `  per second of process CPU time: ${range(alone, (r) => r.ppsCpu, mpps)} Mpps`,
    `  (${range(alone, (r) => r.driverNsPerPacket, ns)} ns/packet, the minimal device's two stores per frame included)`,
  ];
  for (const l of lines) console.log(l);
  if (!argv.includes('--no-record')) {
    const here = dirname(fileURLToPath(import.meta.url));
    // Compiled: dist/bench/e1000e.js -> the source tree's bench/RESULTS.md; from source: bench/RESULTS.md.
    const root = here.includes(join('dist', 'bench')) ? join(here, '..', '..') : join(here, '..');
    const file = join(root, 'bench', 'RESULTS.md');
    const head = existsSync(file) ? '' : '# Benchmark results\n\nEach section: date, machine, what was measured. Appended by `npm run bench`.\n';
    appendFileSync(file, `${head}\n## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: e1000e\n${machineSummary()}\n\n${lines.join('\n')}\n`);
    console.log(`recorded in ${file}`);
  }
}
