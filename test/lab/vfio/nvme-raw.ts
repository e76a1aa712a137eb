/**
 * The smallest raw NVMe command sequence the VFIO lab tests need to make the controller do DMA:
 * reset, admin queues, one Identify. Not a driver (drivers/nvme is): no I/O queues, no error
 * recovery; every wait bounded by CAP.TO. Registers per NVMe 1.4 §3.1, commands per §4.2 and
 * §5.15, completions per §4.6.
 */

/** What the helper needs of a BAR: the shape of vfio-bindings' Mmio (and drivers/platform.ts's RegisterSpace). */
export interface Regs {
  read32(offset: number): number;
  write32(offset: number, value: number): void;
  read64(offset: number): bigint;
  write64(offset: number, value: bigint): void;
}

/** Controller registers (NVMe 1.4 §3.1, figure 78). */
export const REG = {
  /** Controller Capabilities, 64-bit: MQES 15:0, TO 31:24 (500 ms units), DSTRD 35:32. */
  CAP: 0x00,
  /** Version: MJR 31:16, MNR 15:8, TER 7:0. */
  VS: 0x08,
  /** Controller Configuration: EN bit 0, CSS 6:4, MPS 10:7, IOSQES 19:16, IOCQES 23:20. */
  CC: 0x14,
  /** Controller Status: RDY bit 0, CFS bit 1. */
  CSTS: 0x1c,
  /** Admin Queue Attributes: ASQS 11:0, ACQS 27:16 (0's based). */
  AQA: 0x24,
  /** Admin Submission Queue base, 64-bit. */
  ASQ: 0x28,
  /** Admin Completion Queue base, 64-bit. */
  ACQ: 0x30,
  /** SQ0TDBL: admin SQ tail doorbell (§3.1.24; CQ0HDBL follows at 4 << DSTRD). */
  SQ0TDBL: 0x1000,
} as const;

const CC_EN = 1;
/** IOSQES = 6 (64-byte entries), IOCQES = 4 (16-byte entries), MPS 0 (4 KiB), CSS 0 (NVM). */
const CC_QUEUE_SIZES = (6 << 16) | (4 << 20);
const CSTS_RDY = 1;
const CSTS_CFS = 2;
/** Admin opcode Identify (§5.15); CNS 1 = the controller data structure. */
export const OPC_IDENTIFY = 0x06;

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
    const cap = regs.read64(REG.CAP);
    this.timeoutMs = Math.max(500, Number((cap >> 24n) & 0xffn) * 500);
    const dstrd = Number((cap >> 32n) & 0xfn);
    this.cqDoorbell = REG.SQ0TDBL + (4 << dstrd);
  }

  /** CC.EN = 0 and wait for CSTS.RDY = 0 (the firmware may have left the controller enabled). */
  disable(): void {
    this.regs.write32(REG.CC, 0);
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
    this.regs.write32(REG.AQA, ((this.depth - 1) << 16) | (this.depth - 1));
    this.regs.write64(REG.ASQ, this.sq.iova);
    this.regs.write64(REG.ACQ, this.cq.iova);
    this.regs.write32(REG.CC, CC_QUEUE_SIZES | CC_EN);
    this.waitReady(1);
  }

  /** Submit Identify Controller with its 4 KiB data at `prp1`; returns the command id. */
  submitIdentify(prp1: bigint): number {
    const cid = this.nextCid++ & 0xffff;
    const e = new DataView(this.sq.bytes.buffer, this.sq.bytes.byteOffset + this.sqTail * 64, 64);
    for (let i = 0; i < 64; i += 4) e.setUint32(i, 0, true);
    e.setUint32(0, OPC_IDENTIFY | (cid << 16), true); // CDW0: OPC 7:0, CID 31:16
    e.setBigUint64(24, prp1, true); // DPTR.PRP1
    e.setUint32(40, 1, true); // CDW10.CNS = 1
    if (++this.sqTail === this.depth) this.sqTail = 0;
    this.regs.write32(REG.SQ0TDBL, this.sqTail);
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
      if (Date.now() > end) throw new Error(`no completion for CID ${cid} within ${ms} ms (CSTS 0x${this.regs.read32(REG.CSTS).toString(16)})`);
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
      const csts = this.regs.read32(REG.CSTS);
      if ((csts & CSTS_RDY) === want) return;
      if (csts & CSTS_CFS) throw new Error('controller fatal status (CSTS.CFS)');
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
