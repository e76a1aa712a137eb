/**
 * A minimal polled NVMe block driver, written as an external driver module: it imports only the
 * driver contract (drivers/contract), the kit (drivers/kit) and the register maps (spec/), and
 * runs in a dmabox sandbox exactly as the built-in drivers do (policy.yaml beside it; README.md).
 *
 * What it does, after NVMe 1.4: the controller disabled and re-enabled with one admin queue pair
 * (§7.6.1), Identify Controller (MDTS) and Identify Namespace 1 (size, LBA format), one I/O queue
 * pair (Create I/O CQ and SQ, §5.3, §5.4), then Read, Write (with FUA) and Flush, each request's
 * data pointers straight into its tag's buffer in the block service's data areas (PRP lists from
 * the kit). Completions are polled, one look every event-loop turn while commands are in flight;
 * every wait is bounded (CAP.TO for CSTS.RDY, IO_TIMEOUT_MS per command). What it leaves out, on
 * purpose: interrupts, several queues, aborts and controller resets (a command that times out
 * fails every later one: the supervisor's hang detection restarts the container), Dataset
 * Management and Write Zeroes, namespaces other than 1.
 */
import { DRIVER_CONTRACT, type DriverContext, type DriverFault } from '../../drivers/contract/driver.js';
import type { BlockDevice, BlockServiceParams } from '../../drivers/contract/block.js';
import { DEVICE_READS, DEVICE_WRITES, type DmaWindow, type Platform, type RegisterSpace } from '../../drivers/contract/platform.js';
import { PrpListSpace, fillPrp } from '../../drivers/kit/prp.js';
import { getField, setField } from '../../spec/field.js';
import { PCI } from '../../spec/pci/config.js';
import { REG, SHN, SHST, cqHeadDoorbell, decodeCap, encodeCc, sqTailDoorbell } from '../../spec/nvme/registers.js';
import { CQE, CQE_DW3, SQE, SQE_CDW0 } from '../../spec/nvme/queue.js';
import { AdminOpcode, Cns, CREATE_IO_CQ_CDW11, CREATE_IO_SQ_CDW11, NvmOpcode, RW_CDW12 } from '../../spec/nvme/commands.js';
import { STATUS } from '../../spec/nvme/status.js';
import { prpListEntries } from '../../spec/nvme/prp.js';
import { IDENTIFY_SIZE, parseIdentifyController, parseIdentifyNamespace } from '../../spec/nvme/identify.js';
import { MinimalNvmeError } from './errors.js';

export const contract = DRIVER_CONTRACT;
export const name = 'minimal-nvme';
export const kind = 'block';

const PAGE = 4096;
const ADMIN_ENTRIES = 8;
const ADMIN_TIMEOUT_MS = 5000;
const IO_TIMEOUT_MS = 10_000;
/** Command ids above the tags, for flushes (the service posts at most one request per tag). */
const FLUSH_IDS = 4;

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
  deadline: number;
  what: string;
  /** Set by an admin command that wants the completion's dword 0. */
  dw0?: (v: number) => void;
}

/** One submission/completion queue pair: commands by CID, completions by phase (§4.1, §4.6). */
class QueuePair {
  readonly sq: DmaWindow;
  readonly cq: DmaWindow;
  private tail = 0;
  private head = 0;
  private phase = 1;
  readonly waiters: (Waiter | undefined)[];

  constructor(
    platform: Platform,
    private readonly regs: RegisterSpace,
    readonly qid: number,
    readonly entries: number,
    private readonly dstrd: number,
  ) {
    this.sq = platform.dma.alloc(entries * SQE.size, DEVICE_READS, { label: `minimal-nvme sq${qid}` });
    this.cq = platform.dma.alloc(entries * CQE.size, DEVICE_WRITES, { label: `minimal-nvme cq${qid}` });
    this.waiters = new Array<Waiter | undefined>(entries).fill(undefined);
  }

  /** Write the command at the tail (`fill` sets everything but CDW0's CID), ring the doorbell. */
  submit(cid: number, opcode: number, fill: (v: DataView, at: number) => void, w: Waiter): void {
    if (this.waiters[cid] !== undefined) throw new MinimalNvmeError('ERR_MINIMAL_NVME_STATE', `queue ${this.qid}: command id ${cid} is already in flight`);
    const at = this.tail * SQE.size,
      v = this.sq.view;
    this.sq.bytes.fill(0, at, at + SQE.size);
    v.setUint32(at + SQE.CDW0.offset, setField(setField(0, SQE_CDW0.OPC, opcode), SQE_CDW0.CID, cid), true);
    fill(v, at);
    this.waiters[cid] = w;
    this.tail = (this.tail + 1) % this.entries;
    this.regs.write32(sqTailDoorbell(this.qid, this.dstrd), this.tail);
  }

  /** Take every new completion (phase tag flipped), settle its command; returns how many. */
  reap(): number {
    const v = this.cq.view;
    let n = 0;
    for (;;) {
      const at = this.head * CQE.size;
      const dw3 = v.getUint32(at + CQE.DW3.offset, true);
      if (getField(dw3, CQE_DW3.P) !== this.phase) break;
      const cid = getField(dw3, CQE_DW3.CID),
        dw0 = v.getUint32(at + CQE.DW0.offset, true);
      if (++this.head === this.entries) {
        this.head = 0;
        this.phase ^= 1;
      }
      n++;
      const w = cid < this.entries ? this.waiters[cid] : undefined;
      if (!w) continue; // an unknown or late command id: never trusted, ignored
      this.waiters[cid] = undefined;
      const status = getField(dw3, CQE_DW3.STATUS);
      const sc = getField(status, STATUS.SC),
        sct = getField(status, STATUS.SCT);
      if (sc === 0 && sct === 0) {
        w.dw0?.(dw0);
        w.resolve();
      } else w.reject(MinimalNvmeError.status(w.what, sct, sc));
    }
    if (n > 0) this.regs.write32(cqHeadDoorbell(this.qid, this.dstrd), this.head);
    return n;
  }

  /** Reject what ran past its deadline; true when any did. */
  expire(now: number): boolean {
    let any = false;
    for (let cid = 0; cid < this.entries; cid++) {
      const w = this.waiters[cid];
      if (w && now > w.deadline) {
        this.waiters[cid] = undefined;
        w.reject(
          new MinimalNvmeError('ERR_MINIMAL_NVME_TIMEOUT', `${w.what}: no completion within its bound`, {
            fix: 'the device is stuck; the sandbox restarts the driver',
          }),
        );
        any = true;
      }
    }
    return any;
  }

  get busy(): boolean {
    return this.waiters.some((w) => w !== undefined);
  }
}

class MinimalNvme implements BlockDevice {
  readonly fua = true;
  blockSize = 0;
  blockCount = 0;
  private admin!: QueuePair;
  private io!: QueuePair;
  private regs!: RegisterSpace;
  private lists!: PrpListSpace;
  private readonly readArea: DmaWindow;
  private readonly writeArea: DmaWindow;
  private failed: Error | undefined;
  private polling = false;
  private readonly flushIds: number[] = [];
  private readonly pollTurn = (): void => this.poll();

  constructor(private readonly ctx: DriverContext<BlockServiceParams>) {
    const a = ctx.service.areas;
    // The data areas as windows for the kit's PRP builder: only their IOVA and size are used.
    const area = (iova: bigint, perm: typeof DEVICE_READS): DmaWindow => ({
      iova,
      size: a.entries * a.slotBytes,
      perm,
      bytes: new Uint8Array(0),
      view: new DataView(new ArrayBuffer(0)),
    });
    this.readArea = area(a.read, DEVICE_WRITES);
    this.writeArea = area(a.write, DEVICE_READS);
  }

  async open(): Promise<void> {
    const { platform: p, service } = this.ctx;
    const regs = (this.regs = p.bar(0));
    const cmd = PCI.COMMAND;
    p.config.write16(cmd.offset, p.config.read16(cmd.offset) | cmd.MEMORY_SPACE.mask | cmd.BUS_MASTER.mask);
    const cap = decodeCap(regs.read64(REG.CAP.offset));
    const readyMs = Math.max(1, cap.TO) * 500;
    // §7.6.1: disable, admin queues, enable.
    regs.write32(REG.CC.offset, setField(regs.read32(REG.CC.offset), REG.CC.EN, 0));
    await this.waitReady(0, readyMs);
    this.admin = new QueuePair(p, regs, 0, ADMIN_ENTRIES, cap.DSTRD);
    regs.write32(REG.AQA.offset, setField(setField(0, REG.AQA.ASQS, ADMIN_ENTRIES - 1), REG.AQA.ACQS, ADMIN_ENTRIES - 1));
    regs.write64(REG.ASQ.offset, this.admin.sq.iova);
    regs.write64(REG.ACQ.offset, this.admin.cq.iova);
    regs.write32(REG.CC.offset, encodeCc({ EN: 1, CSS: 0, MPS: 0, IOSQES: 6, IOCQES: 4 }));
    await this.waitReady(1, readyMs);
    // Identify: the largest transfer, and namespace 1.
    const id = p.dma.alloc(IDENTIFY_SIZE, DEVICE_WRITES, { label: 'minimal-nvme identify' });
    await this.adminCmd('Identify Controller', AdminOpcode.IDENTIFY, (v, at) => {
      v.setBigUint64(at + SQE.PRP1.offset, id.iova, true);
      v.setUint32(at + SQE.CDW10.offset, Cns.CONTROLLER, true);
    });
    const ctrl = parseIdentifyController(id.bytes);
    const mdts = ctrl.mdts === 0 ? Infinity : PAGE * 2 ** ctrl.mdts;
    await this.adminCmd('Identify Namespace 1', AdminOpcode.IDENTIFY, (v, at) => {
      v.setUint32(at + SQE.NSID.offset, 1, true);
      v.setBigUint64(at + SQE.PRP1.offset, id.iova, true);
      v.setUint32(at + SQE.CDW10.offset, Cns.NAMESPACE, true);
    });
    const ns = parseIdentifyNamespace(id.bytes);
    p.dma.free(id);
    this.blockSize = ns.blockSize;
    this.blockCount = Number(ns.nsze);
    if (this.blockCount === 0)
      throw new MinimalNvmeError('ERR_MINIMAL_NVME_DEVICE', `${p.name}: namespace 1 is not active`, { fix: 'create and attach namespace 1 on the controller' });
    if (service.areas.slotBytes > mdts)
      throw new MinimalNvmeError(
        'ERR_MINIMAL_NVME_DEVICE',
        `${p.name}: one ${service.areas.slotBytes}-byte request does not fit MDTS (${mdts} bytes), and this driver does not split requests`,
        { fix: 'use the built-in nvme driver, which does' },
      );
    // One I/O queue pair: a command id per tag, a few more for flushes, one entry always empty (§4.1.2).
    const entries = service.areas.entries + FLUSH_IDS + 1;
    if (entries > cap.MQES + 1)
      throw new MinimalNvmeError('ERR_MINIMAL_NVME_DEVICE', `${p.name}: the controller's queues hold ${cap.MQES + 1} entries; this driver needs ${entries}`);
    this.io = new QueuePair(p, regs, 1, entries, cap.DSTRD);
    await this.adminCmd('Create I/O CQ', AdminOpcode.CREATE_IO_CQ, (v, at) => {
      v.setBigUint64(at + SQE.PRP1.offset, this.io.cq.iova, true);
      v.setUint32(at + SQE.CDW10.offset, ((entries - 1) << 16) | 1, true);
      v.setUint32(at + SQE.CDW11.offset, CREATE_IO_CQ_CDW11.PC.mask, true);
    });
    await this.adminCmd('Create I/O SQ', AdminOpcode.CREATE_IO_SQ, (v, at) => {
      v.setBigUint64(at + SQE.PRP1.offset, this.io.sq.iova, true);
      v.setUint32(at + SQE.CDW10.offset, ((entries - 1) << 16) | 1, true);
      v.setUint32(at + SQE.CDW11.offset, (1 << 16) | CREATE_IO_SQ_CDW11.PC.mask, true);
    });
    for (let i = 0; i < FLUSH_IDS; i++) this.flushIds.push(service.areas.entries + i);
    // A PRP list slot per tag and direction, in a window the device only reads (the kit).
    const listPages = Math.max(1, Math.ceil((prpListEntries(service.areas.slotBytes / PAGE + 1, PAGE) * 8) / PAGE));
    this.lists = new PrpListSpace(p.dma.alloc(2 * service.areas.entries * listPages * PAGE, DEVICE_READS, { label: 'minimal-nvme prp lists' }), {
      slotPages: listPages,
    });
    for (let i = 0; i < 2 * service.areas.entries; i++) this.lists.alloc();
  }

  private async waitReady(want: 0 | 1, ms: number): Promise<void> {
    const { clock } = this.ctx.platform;
    const end = clock.now() + ms;
    for (;;) {
      const csts = this.regs.read32(REG.CSTS.offset);
      if (getField(csts, REG.CSTS.CFS) === 1)
        throw new MinimalNvmeError('ERR_MINIMAL_NVME_DEVICE', `${this.ctx.platform.name}: controller fatal status (CSTS.CFS)`, {
          fix: 'reset the device; the sandbox restarts the driver',
        });
      if (getField(csts, REG.CSTS.RDY) === want) return;
      if (clock.now() > end)
        throw new MinimalNvmeError('ERR_MINIMAL_NVME_TIMEOUT', `${this.ctx.platform.name}: CSTS.RDY did not become ${want} within CAP.TO (${ms} ms)`, {
          fix: 'the controller does not respond',
        });
      await clock.sleep(1);
    }
  }

  private adminCmd(what: string, opcode: number, fill: (v: DataView, at: number) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const deadline = this.ctx.platform.clock.now() + ADMIN_TIMEOUT_MS;
      const cid = this.admin.waiters.findIndex((w) => w === undefined);
      this.admin.submit(cid, opcode, fill, { resolve, reject, deadline, what });
      this.startPolling();
    });
  }

  private io1(what: string, cid: number, opcode: number, fill: (v: DataView, at: number) => void): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<void>((resolve, reject) => {
      this.io.submit(cid, opcode, fill, { resolve, reject, deadline: this.ctx.platform.clock.now() + IO_TIMEOUT_MS, what });
      this.startPolling();
    });
  }

  private transfer(opcode: number, area: DmaWindow, list: number, tag: number, lba: number, blocks: number, fua: boolean): Promise<void> {
    const a = this.ctx.service.areas;
    const what = `${opcode === NvmOpcode.READ ? 'read' : 'write'} of ${blocks} block(s) at LBA ${lba}`;
    return this.io1(what, tag, opcode, (v, at) => {
      v.setUint32(at + SQE.NSID.offset, 1, true);
      fillPrp(v, at + SQE.PRP1.offset, area, tag * a.slotBytes, blocks * this.blockSize, this.lists, list);
      v.setUint32(at + SQE.CDW10.offset, lba >>> 0, true);
      v.setUint32(at + SQE.CDW11.offset, Math.floor(lba / 0x1_0000_0000), true);
      v.setUint32(at + SQE.CDW12.offset, ((blocks - 1) & 0xffff) | (fua ? RW_CDW12.FUA.mask : 0), true);
    });
  }

  read(tag: number, lba: number, blocks: number): Promise<void> {
    return this.transfer(NvmOpcode.READ, this.readArea, 2 * tag, tag, lba, blocks, false);
  }

  write(tag: number, lba: number, blocks: number, fua: boolean): Promise<void> {
    return this.transfer(NvmOpcode.WRITE, this.writeArea, 2 * tag + 1, tag, lba, blocks, fua);
  }

  async flush(): Promise<void> {
    while (this.flushIds.length === 0) await this.ctx.platform.clock.sleep(1);
    const cid = this.flushIds.pop()!;
    try {
      await this.io1('flush', cid, NvmOpcode.FLUSH, (v, at) => v.setUint32(at + SQE.NSID.offset, 1, true));
    } finally {
      this.flushIds.push(cid);
    }
  }

  /** Generic status 04h, Data Transfer Error (§4.6.1.2.1): what a device reports when the IOMMU refused its DMA. */
  faultOf(error: unknown): DriverFault | undefined {
    const e = error as { code?: string; sct?: number; sc?: number } | null;
    if (e?.code === 'ERR_MINIMAL_NVME_STATUS' && e.sct === 0 && e.sc === 0x04) return { kind: 'dma', code: 0x04, iova: 0n };
    if (e?.code === 'ERR_MINIMAL_NVME_TIMEOUT') return { kind: 'timeout', code: 0, iova: 0n };
    return undefined;
  }

  describe(): string {
    return `minimal-nvme on ${this.ctx.platform.name}: ${this.blockCount} blocks of ${this.blockSize} bytes, one polled queue of ${this.io.entries}`;
  }

  async close(): Promise<void> {
    // Normal shutdown notification (§7.6.2), bounded; the manager quarantines the device anyway.
    const regs = this.regs,
      clock = this.ctx.platform.clock;
    regs.write32(REG.CC.offset, setField(regs.read32(REG.CC.offset), REG.CC.SHN, SHN.NORMAL));
    const end = clock.now() + 1000;
    while (getField(regs.read32(REG.CSTS.offset), REG.CSTS.SHST) !== SHST.COMPLETE && clock.now() < end) await clock.sleep(1);
    this.ctx.platform.close();
  }

  /** Poll both queues every event-loop turn while commands are in flight; give the CPU away when a look finds nothing. */
  private startPolling(): void {
    if (this.polling) return;
    this.polling = true;
    setImmediate(this.pollTurn);
  }

  private poll(): void {
    const n = this.admin.reap() + (this.io ? this.io.reap() : 0);
    const now = this.ctx.platform.clock.now();
    if ((this.admin.expire(now) || (this.io?.expire(now) ?? false)) && !this.failed) {
      this.failed = new MinimalNvmeError('ERR_MINIMAL_NVME_TIMEOUT', `${this.ctx.platform.name}: a command timed out; this driver does not abort or reset`, {
        fix: 'the sandbox restarts the driver',
      });
    }
    if (this.admin.busy || this.io?.busy) {
      if (n === 0) this.ctx.platform.clock.idle?.();
      setImmediate(this.pollTurn);
    } else {
      this.polling = false;
    }
  }
}

export async function start(ctx: DriverContext<BlockServiceParams>): Promise<BlockDevice> {
  const d = new MinimalNvme(ctx);
  await d.open();
  return d;
}
