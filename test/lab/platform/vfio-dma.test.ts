/**
 * Lab test of platform/vfio.ts and dma/: runs INSIDE the lab guest (DMABOX_LAB=1) against QEMU's
 * NVMe behind its emulated VT-d. It drives the controller just far enough to prove the platform:
 * windows mapped with least privilege at IOVAs inside the kernel's ranges, PRP1/PRP2 and PRP lists
 * from dma/prp.ts read by a real controller, MSI-X through eventfds, and confinement: a device
 * write into a device-read-only window, or into a revoked window, is blocked by the IOMMU (QEMU's
 * DMAR trace shows it) and the memory keeps its bytes.
 *
 * NVMe 1.4 registers (§3.1): CAP 0x00 (MQES 15:0, TO 31:24 in 500 ms, DSTRD 35:32), CC 0x14 (EN 0,
 * IOSQES 19:16, IOCQES 23:20), CSTS 0x1c (RDY 0), AQA 0x24, ASQ 0x28, ACQ 0x30, doorbells from
 * 0x1000. Commands (§5, §6): Identify 0x06, Create I/O CQ 0x05, Create I/O SQ 0x01, Write 0x01,
 * Read 0x02. The device is left disabled, unmapped and with its data restored.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { parseDmarTrace } from '../../../appliance/lab/dmar.js';
import { DEVICE_READS, DEVICE_WRITES, type DmaWindow, type RegisterSpace } from '../../../drivers/contract/platform.js';
import { fillPrp, PrpListSpace } from '../../../drivers/kit/prp.js';
import { SQE } from '../../../spec/nvme/queue.js';
import { VfioPlatform } from '../../../platform/vfio.js';

const SQE_PRP1 = SQE.PRP1.offset;

function inLab(): void {
  if (process.env.DMABOX_LAB !== '1') {
    throw new Error('this test runs only inside the lab guest (DMABOX_LAB=1): use `npm run test:lab` or `dmabox lab run -- ...` (appliance/lab/README.md)');
  }
}

const REG = { CAP: 0x00, CC: 0x14, CSTS: 0x1c, AQA: 0x24, ASQ: 0x28, ACQ: 0x30 } as const;
const QDEPTH = 16;

/** Just enough of an NVMe host to exercise the platform; polled, bounded by CAP.TO. */
class MiniNvme {
  readonly bar: RegisterSpace;
  readonly timeoutMs: number;
  readonly stride: number;
  private readonly sq: DmaWindow[] = [];
  private readonly cq: DmaWindow[] = [];
  private tail = [0, 0];
  private head = [0, 0];
  private phase = [1, 1];
  private cid = 0;

  constructor(readonly p: VfioPlatform) {
    this.bar = p.bar(0);
    const cap = this.bar.read64(REG.CAP);
    this.timeoutMs = Number((cap >> 24n) & 0xffn) * 500 || 500;
    this.stride = 4 << Number((cap >> 32n) & 0xfn);
  }

  async waitRdy(want: 0 | 1): Promise<void> {
    const end = this.p.clock.now() + this.timeoutMs;
    while ((this.bar.read32(REG.CSTS) & 1) !== want) {
      if (this.p.clock.now() > end) throw new Error(`CSTS.RDY did not become ${want} within CAP.TO = ${this.timeoutMs} ms`);
      await this.p.clock.sleep(1);
    }
  }

  async enable(): Promise<void> {
    this.bar.write32(REG.CC, 0); // SeaBIOS leaves the controller enabled (appliance/lab/README.md)
    await this.waitRdy(0);
    this.sq[0] = this.p.dma.alloc(QDEPTH * 64, DEVICE_READS, { label: 'admin sq' });
    this.cq[0] = this.p.dma.alloc(QDEPTH * 16, DEVICE_WRITES, { label: 'admin cq' });
    this.bar.write32(REG.AQA, ((QDEPTH - 1) << 16) | (QDEPTH - 1));
    this.bar.write64(REG.ASQ, this.sq[0].iova);
    this.bar.write64(REG.ACQ, this.cq[0].iova);
    this.bar.write32(REG.CC, (4 << 20) | (6 << 16) | 1);
    await this.waitRdy(1);
  }

  async createIoQueue(): Promise<void> {
    this.sq[1] = this.p.dma.alloc(QDEPTH * 64, DEVICE_READS, { label: 'io sq' });
    this.cq[1] = this.p.dma.alloc(QDEPTH * 16, DEVICE_WRITES, { label: 'io cq' });
    let s = await this.admin(0x05, (v, o) => {
      // Create I/O CQ: QID 1, physically contiguous, no interrupts
      this.putU64(v, o + 24, this.cq[1]!.iova);
      v.setUint32(o + 40, ((QDEPTH - 1) << 16) | 1, true);
      v.setUint32(o + 44, 1, true);
    });
    assert.is(s, 0, 'Create I/O CQ succeeded');
    s = await this.admin(0x01, (v, o) => {
      // Create I/O SQ: QID 1 on CQ 1
      this.putU64(v, o + 24, this.sq[1]!.iova);
      v.setUint32(o + 40, ((QDEPTH - 1) << 16) | 1, true);
      v.setUint32(o + 44, (1 << 16) | 1, true);
    });
    assert.is(s, 0, 'Create I/O SQ succeeded');
  }

  putU64(v: DataView, at: number, x: bigint): void {
    v.setUint32(at, Number(x & 0xffffffffn), true);
    v.setUint32(at + 4, Number(x >> 32n), true);
  }

  admin(opcode: number, fill: (v: DataView, o: number) => void, nsid = 0): Promise<number> {
    return this.submit(0, opcode, nsid, fill);
  }

  /** Submit one command and poll its completion; returns the status field (0 = success). */
  async submit(q: number, opcode: number, nsid: number, fill: (v: DataView, o: number) => void): Promise<number> {
    const sq = this.sq[q]!,
      cq = this.cq[q]!;
    const o = this.tail[q]! * 64;
    sq.bytes.fill(0, o, o + 64);
    const cid = ++this.cid & 0xffff;
    sq.view.setUint32(o, opcode | (cid << 16), true);
    sq.view.setUint32(o + 4, nsid, true);
    fill(sq.view, o);
    this.tail[q] = (this.tail[q]! + 1) % QDEPTH;
    this.bar.write32(0x1000 + 2 * q * this.stride, this.tail[q]!);
    const end = this.p.clock.now() + this.timeoutMs;
    const c = this.head[q]! * 16;
    while (((cq.view.getUint32(c + 12, true) >>> 16) & 1) !== this.phase[q]) {
      if (this.p.clock.now() > end) throw new Error(`no completion for opcode 0x${opcode.toString(16)} on queue ${q} within ${this.timeoutMs} ms`);
      await this.p.clock.sleep(0);
    }
    const dw3 = cq.view.getUint32(c + 12, true);
    assert.is(dw3 & 0xffff, cid, 'the completion names our command');
    this.head[q] = (this.head[q]! + 1) % QDEPTH;
    if (this.head[q] === 0) this.phase[q] ^= 1;
    this.bar.write32(0x1000 + (2 * q + 1) * this.stride, this.head[q]!);
    return (dw3 >>> 17) & 0x7fff;
  }

  async disable(): Promise<void> {
    this.bar.write32(REG.CC, 0);
    await this.waitRdy(0);
  }
}

const nvmeBdf = (): string => {
  const b = (process.env.DMABOX_LAB_NVME ?? '').split(',').filter(Boolean)[0];
  if (!b) throw new Error('DMABOX_LAB_NVME names no NVMe: the lab machine needs one (--nvme 64M)');
  return b;
};

function faultsIn(w: DmaWindow, write: boolean): number {
  const trace = process.env.DMABOX_LAB_DMAR_TRACE;
  if (!trace || !existsSync(trace)) return -1;
  return parseDmarTrace(readFileSync(trace, 'utf8')).filter((f) => f.write === write && f.addr >= w.iova && f.addr < w.iova + BigInt(w.size)).length;
}

async function waitFaults(w: DmaWindow, write: boolean, before: number, ms: number): Promise<number> {
  const end = Date.now() + ms;
  let n = faultsIn(w, write);
  while (n <= before && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    n = faultsIn(w, write);
  }
  return n;
}

const text = (b: Uint8Array, from: number, to: number): string => Buffer.from(b.subarray(from, to)).toString('latin1').trim();

let p: VfioPlatform;
let nvme: MiniNvme;
let fired = 0;

test.after(async () => {
  if (nvme) await nvme.disable().catch(() => undefined);
  p?.close();
});

test('open: the IOMMU as the kernel reports it (4 KiB pages, MSI window cut out, mappings available)', () => {
  inLab();
  p = VfioPlatform.open(nvmeBdf(), { busMaster: true });
  nvme = new MiniNvme(p);
  const info = p.dma.info;
  assert.is(p.dma.pageSize, 4096);
  const top = info.ranges.reduce((m, r) => (r.end > m ? r.end : m), 0n);
  assert.ok(top < 1n << 48n, `IOVA ranges end at 0x${top.toString(16)}`);
  assert.ok(
    info.ranges.every((r) => !(r.start <= 0xfee00000n && 0xfee00000n <= r.end)),
    'the MSI window is not usable IOVA',
  );
  assert.ok(info.mappingsAvailable === undefined || info.mappingsAvailable > 1000);
  assert.is(p.config.read16(4) & 0x4, 0x4, 'bus mastering on');
});

test('Identify Controller through PRP1+PRP2 (window offset 2048), completion raises MSI-X vector 0', async () => {
  inLab();
  const [v0] = p.irq.enable('msix', 1);
  v0!.onFire(() => fired++);
  await nvme.enable();
  const id = p.dma.alloc(8192, DEVICE_WRITES, { label: 'identify' });
  assert.ok(id.iova >= 4096n, 'IOVA 0 page never handed out');
  const s = await nvme.admin(0x06, (v, o) => {
    assert.is(fillPrp(v, o + SQE_PRP1, id, 2048, 4096), 0);
    v.setUint32(o + 40, 1, true);
  });
  assert.is(s, 0);
  assert.is(text(id.bytes, 2048 + 4, 2048 + 24), 'lab0', 'serial number (Identify bytes 4..23)');
  assert.match(text(id.bytes, 2048 + 24, 2048 + 64), /QEMU NVMe Ctrl/);
  const end = Date.now() + 2000;
  while (fired === 0 && Date.now() < end) await p.clock.sleep(5);
  assert.ok(fired > 0, 'the admin completion raised MSI-X vector 0 through its eventfd');
  p.dma.free(id);
});

test('merged windows: one MAP_DMA for three windows, Identify lands in the third at its own IOVA', async () => {
  inLab();
  const before = p.dma.mappings;
  const [a, b, c] = p.dma.allocMerged(
    [
      { size: 4096, label: 'a' },
      { size: 8192, label: 'b' },
      { size: 4096, label: 'c', align: 65536 },
    ],
    DEVICE_WRITES,
  );
  assert.is(p.dma.mappings, before + 1, 'one mapping');
  assert.is(c!.iova % 65536n, 0n);
  a!.bytes.fill(0x11);
  b!.bytes.fill(0x22);
  assert.is(
    await nvme.admin(0x06, (v, o) => {
      fillPrp(v, o + SQE_PRP1, c!, 0, 4096);
      v.setUint32(o + 40, 1, true);
    }),
    0,
  );
  assert.is(text(c!.bytes, 4, 24), 'lab0');
  assert.ok(a!.bytes.every((x) => x === 0x11) && b!.bytes.every((x) => x === 0x22), 'the neighbours are untouched');
  for (const w of [a!, b!, c!]) p.dma.free(w);
  assert.is(p.dma.mappings, before);
});

test('least privilege: a device write into a device-read-only window is blocked (DMAR reason 5), bytes kept', async () => {
  inLab();
  const ro = p.dma.alloc(4096, DEVICE_READS, { label: 'read-only target' });
  ro.bytes.fill(0xee);
  const before = faultsIn(ro, true);
  await nvme.admin(0x06, (v, o) => {
    fillPrp(v, o + SQE_PRP1, ro, 0, 4096);
    v.setUint32(o + 40, 1, true);
  });
  assert.ok(
    ro.bytes.every((b) => b === 0xee),
    'a device-read-only window keeps its bytes',
  );
  if (before >= 0) assert.ok((await waitFaults(ro, true, before, 3000)) > before, 'the DMAR trace shows the blocked write');
  p.dma.free(ro);
});

test('revoke: the mapping goes, the memory stays, the device write is blocked', async () => {
  inLab();
  const rx = p.dma.alloc(4096, DEVICE_WRITES, { label: 'revoked' });
  rx.bytes.fill(0x5a);
  p.dma.revoke(rx);
  const before = faultsIn(rx, true);
  await nvme.admin(0x06, (v, o) => {
    fillPrp(v, o + SQE_PRP1, rx, 0, 4096);
    v.setUint32(o + 40, 1, true);
  });
  assert.ok(
    rx.bytes.every((b) => b === 0x5a),
    'a revoked window keeps its bytes',
  );
  if (before >= 0) assert.ok((await waitFaults(rx, true, before, 3000)) > before, 'the DMAR trace shows the blocked write');
  p.dma.free(rx);
});

test('PRP lists on a real controller: 128 KiB written and read back through lists (33 pages each)', async () => {
  inLab();
  const ns = p.dma.alloc(4096, DEVICE_WRITES, { label: 'identify ns' });
  assert.is(
    await nvme.admin(
      0x06,
      (v, o) => {
        fillPrp(v, o + SQE_PRP1, ns, 0, 4096);
        v.setUint32(o + 40, 0, true);
      },
      1,
    ),
    0,
    'Identify Namespace 1',
  );
  const flbas = ns.bytes[26]! & 0xf;
  const lbaSize = 1 << ns.bytes[128 + 4 * flbas + 2]!;
  await nvme.createIoQueue();
  const LEN = 128 * 1024;
  const lists = new PrpListSpace(p.dma.alloc(4 * 4096, DEVICE_READS, { label: 'prp lists' }));
  const out = p.dma.alloc(LEN + 8192, DEVICE_READS, { label: 'write data' });
  const back = p.dma.alloc(LEN + 8192, DEVICE_WRITES, { label: 'read data' });
  for (let i = 0; i < LEN; i++) out.bytes[512 + i] = (i * 31 + 7) & 0xff;
  // 32 MiB into the 64 MiB disk, restored to zeros afterwards (the suite shares the disk).
  const slba = (32n * 1024n * 1024n) / BigInt(lbaSize);
  const io = async (opcode: number, w: DmaWindow, off: number): Promise<number> => {
    const slot = lists.alloc();
    try {
      return await nvme.submit(1, opcode, 1, (v, o) => {
        assert.is(fillPrp(v, o + SQE_PRP1, w, off, LEN, lists, slot), 32, '33 pages: PRP1 plus a list of 32');
        v.setUint32(o + 40, Number(slba & 0xffffffffn), true);
        v.setUint32(o + 44, Number(slba >> 32n), true);
        v.setUint32(o + 48, LEN / lbaSize - 1, true);
      });
    } finally {
      lists.free(slot);
    }
  };
  assert.is(await io(0x01, out, 512), 0, 'Write 128 KiB');
  assert.is(await io(0x02, back, 1024), 0, 'Read 128 KiB');
  let diff = -1;
  for (let i = 0; i < LEN; i++)
    if (back.bytes[1024 + i] !== out.bytes[512 + i]) {
      diff = i;
      break;
    }
  assert.is(diff, -1, 'the bytes read back through a PRP list are the bytes written through one');
  out.bytes.fill(0);
  assert.is(await io(0x01, out, 512), 0, 'restore zeros for the next test');
});

test('close: every window unmapped and freed', async () => {
  inLab();
  await nvme.disable();
  const live = p.dma.live;
  assert.ok(live > 0);
  p.close();
  assert.is(p.dma.live, 0);
  assert.is(p.dma.mappings, 0);
});

test.run();
