/**
 * The smallest raw NVMe command sequence the VFIO lab tests need to make the controller do DMA:
 * reset, admin queues, one Identify. Not a driver (drivers/nvme is): no I/O queues, no error
 * recovery; every wait bounded by CAP.TO. Registers per NVMe 1.4 §3.1, commands per §4.2 and
 * §5.15, completions per §4.6, every register, field and entry from spec/nvme.
 */
import { getField64, isSet, setField } from '../../../spec/field.js';
import { AdminOpcode, Cns, IDENTIFY_CDW10 } from '../../../spec/nvme/commands.js';
import { SQE, SQE_CDW0 } from '../../../spec/nvme/queue.js';
import { CAP_TO_UNIT_MS, cqHeadDoorbell, encodeCc, REG } from '../../../spec/nvme/registers.js';

/** What the helper needs of a BAR: the shape of vfio-bindings' Mmio (and drivers/platform.ts's RegisterSpace). */
export interface Regs {
  read32(offset: number): number;
  write32(offset: number, value: number): void;
  read64(offset: number): bigint;
  write64(offset: number, value: bigint): void;
}

export { REG };

/** IOSQES = 6 (64-byte entries), IOCQES = 4 (16-byte entries), MPS 0 (4 KiB), CSS 0 (NVM), EN 1. */
const CC_ENABLED = encodeCc({ EN: 1, IOSQES: 6, IOCQES: 4 });

export const sleep = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

export interface Queue {
  bytes: Uint8Array;
  iova: bigint;
}

export interface Completion {
  cid: number;
  /** Status field (DW3 31:17): 0 = success. */
  status: number;
  sqhd: number;
}

export class RawNvme {
  /** CAP.TO in ms: the bound on every CSTS.RDY wait. */
  readonly timeoutMs: number;
  private readonly cqDoorbell: number;
  private sqTail = 0;
  private cqHead = 0;
  private phase = 1;
  private nextCid = 1;

  constructor(
    private readonly regs: Regs,
    private readonly sq: Queue,
    private readonly cq: Queue,
    private readonly depth = 16,
  ) {
    const cap = regs.read64(REG.CAP.offset);
    this.timeoutMs = Math.max(CAP_TO_UNIT_MS, getField64(cap, REG.CAP.TO) * CAP_TO_UNIT_MS);
    this.cqDoorbell = cqHeadDoorbell(0, getField64(cap, REG.CAP.DSTRD));
  }

  /** CC.EN = 0 and wait for CSTS.RDY = 0 (the firmware may have left the controller enabled). */
  disable(): void {
    this.regs.write32(REG.CC.offset, 0);
    this.waitReady(0);
  }

  /** Program the admin queues (§7.6.1) and enable; waits for CSTS.RDY = 1. */
  enable(): void {
    this.disable();
    this.sq.bytes.fill(0);
    this.cq.bytes.fill(0);
    this.sqTail = 0;
    this.cqHead = 0;
    this.phase = 1;
    this.regs.write32(REG.AQA.offset, setField(setField(0, REG.AQA.ASQS, this.depth - 1), REG.AQA.ACQS, this.depth - 1));
    this.regs.write64(REG.ASQ.offset, this.sq.iova);
    this.regs.write64(REG.ACQ.offset, this.cq.iova);
    this.regs.write32(REG.CC.offset, CC_ENABLED);
    this.waitReady(1);
  }

  /** Submit Identify Controller with its 4 KiB data at `prp1`; returns the command id. */
  submitIdentify(prp1: bigint): number {
    const cid = this.nextCid++ & 0xffff;
    const e = new DataView(this.sq.bytes.buffer, this.sq.bytes.byteOffset + this.sqTail * 64, 64);
    for (let i = 0; i < 64; i += 4) e.setUint32(i, 0, true);
    e.setUint32(SQE.CDW0.offset, setField(setField(0, SQE_CDW0.OPC, AdminOpcode.IDENTIFY), SQE_CDW0.CID, cid), true);
    e.setBigUint64(SQE.PRP1.offset, prp1, true);
    e.setUint32(SQE.CDW10.offset, setField(0, IDENTIFY_CDW10.CNS, Cns.CONTROLLER), true);
    if (++this.sqTail === this.depth) this.sqTail = 0;
    this.regs.write32(REG.SQ0TDBL.offset, this.sqTail);
    return cid;
  }

  /** The next completion, if its phase bit says it is new (§4.6); rings CQ0HDBL. */
  poll(): Completion | undefined {
    const v = new DataView(this.cq.bytes.buffer, this.cq.bytes.byteOffset + this.cqHead * 16, 16);
    const dw3 = v.getUint32(12, true);
    if (((dw3 >>> 16) & 1) !== this.phase) return undefined;
    const c = { cid: dw3 & 0xffff, status: dw3 >>> 17, sqhd: v.getUint32(8, true) & 0xffff };
    if (++this.cqHead === this.depth) {
      this.cqHead = 0;
      this.phase ^= 1;
    }
    this.regs.write32(this.cqDoorbell, this.cqHead);
    return c;
  }

  /** Poll (bounded) for the completion of `cid`. */
  waitCompletion(cid: number, ms = this.timeoutMs): Completion {
    const end = Date.now() + ms;
    for (;;) {
      const c = this.poll();
      if (c) {
        if (c.cid !== cid) throw new Error(`completion for unknown CID ${c.cid} (waiting for ${cid})`);
        return c;
      }
      if (Date.now() > end) throw new Error(`no completion for CID ${cid} within ${ms} ms (CSTS 0x${this.regs.read32(REG.CSTS.offset).toString(16)})`);
      sleep(1);
    }
  }

  /** Identify and wait: the common case. */
  identify(prp1: bigint): Completion {
    return this.waitCompletion(this.submitIdentify(prp1));
  }

  private waitReady(want: 0 | 1): void {
    const end = Date.now() + this.timeoutMs;
    for (;;) {
      const csts = this.regs.read32(REG.CSTS.offset);
      if ((isSet(csts, REG.CSTS.RDY) ? 1 : 0) === want) return;
      if (isSet(csts, REG.CSTS.CFS)) throw new Error('controller fatal status (CSTS.CFS)');
      if (Date.now() > end) throw new Error(`CSTS.RDY did not become ${want} within CAP.TO = ${this.timeoutMs} ms`);
      sleep(1);
    }
  }
}

/** Serial number (bytes 4-23) and model (24-63) of an Identify Controller structure (§5.15.2.2, figure 251). */
export function identifyStrings(data: Uint8Array): { serial: string; model: string } {
  const ascii = (a: number, b: number): string => new TextDecoder('latin1').decode(data.subarray(a, b)).trim();
  return { serial: ascii(4, 24), model: ascii(24, 64) };
}
