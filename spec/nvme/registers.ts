/**
 * NVMe controller registers in BAR0 (NVM Express Base Specification 1.4, §3.1 "Register
 * Definition"), declared in the style of spec/field.ts: each register once, with its offset, width
 * and section, each field by the spec's mnemonic and bit range. The driver (drivers/nvme) and the
 * simulated controller (sim/nvme) both read this file, so they agree on every bit by construction.
 *
 *   const csts = regs.read32(REG.CSTS.offset);
 *   if (isSet(csts, REG.CSTS.CFS)) ...
 *   const dstrd = getField64(cap, REG.CAP.DSTRD);   // a field above bit 31 of a 64-bit register
 *
 * 64-bit registers (CAP, ASQ, ACQ) are accessed as two 32-bit accesses, low dword first (§3.1).
 */
import { bit, bits, getField, getField64, reg32, reg64, setField, setField64, type BitField } from '../field.js';

/** The controller registers (§3.1). */
export const REG = Object.freeze({
  /** Controller Capabilities, read-only (§3.1.1). */
  CAP: reg64(0x00, 'NVMe 1.4 §3.1.1', {
    /** Maximum Queue Entries Supported, 0's based: the largest I/O queue has MQES + 1 entries. */
    MQES: bits(15, 0),
    /** Contiguous Queues Required: I/O queues must be physically contiguous (PC = 1). */
    CQR: bit(16),
    /** Arbitration Mechanism Supported: bit 17 weighted round robin with urgent, bit 18 vendor specific. */
    AMS: bits(18, 17),
    /** Timeout: the worst case time for CSTS.RDY to follow CC.EN, in 500 ms units. */
    TO: bits(31, 24),
    /** Doorbell Stride: doorbells are (4 << DSTRD) bytes apart. */
    DSTRD: bits(35, 32),
    /** NVM Subsystem Reset Supported. */
    NSSRS: bit(36),
    /** Command Sets Supported: bit 0 of the field (register bit 37) is the NVM command set. */
    CSS: bits(44, 37),
    /** Boot Partition Support. */
    BPS: bit(45),
    /** Memory Page Size Minimum: 2 ^ (12 + MPSMIN) bytes. */
    MPSMIN: bits(51, 48),
    /** Memory Page Size Maximum: 2 ^ (12 + MPSMAX) bytes. */
    MPSMAX: bits(55, 52),
    /** Persistent Memory Region Supported. */
    PMRS: bit(56),
    /** Controller Memory Buffer Supported. */
    CMBS: bit(57),
  }),
  /** Version, read-only (§3.1.2): 1.4.0 reads 00010400h. */
  VS: reg32(0x08, 'NVMe 1.4 §3.1.2', {
    /** Major Version Number. */
    MJR: bits(31, 16),
    /** Minor Version Number. */
    MNR: bits(15, 8),
    /** Tertiary Version Number. */
    TER: bits(7, 0),
  }),
  /** Interrupt Mask Set: writing 1 masks a pin-based or MSI vector; reads the mask. Undefined with MSI-X (§3.1.3). */
  INTMS: reg32(0x0c, 'NVMe 1.4 §3.1.3'),
  /** Interrupt Mask Clear: writing 1 unmasks; reads the mask (§3.1.4). */
  INTMC: reg32(0x10, 'NVMe 1.4 §3.1.4'),
  /** Controller Configuration (§3.1.5). */
  CC: reg32(0x14, 'NVMe 1.4 §3.1.5', {
    /** Enable: 0 -> 1 starts the controller (§7.6.1), 1 -> 0 resets it (§7.3.2). */
    EN: bit(0),
    /** I/O Command Set Selected: 000b the NVM command set. */
    CSS: bits(6, 4),
    /** Memory Page Size: 2 ^ (12 + MPS) bytes, within CAP.MPSMIN..MPSMAX. */
    MPS: bits(10, 7),
    /** Arbitration Mechanism Selected: 000b round robin. */
    AMS: bits(13, 11),
    /** Shutdown Notification: 01b normal, 10b abrupt (values in SHN). */
    SHN: bits(15, 14),
    /** I/O Submission Queue Entry Size: 2 ^ IOSQES bytes. */
    IOSQES: bits(19, 16),
    /** I/O Completion Queue Entry Size: 2 ^ IOCQES bytes. */
    IOCQES: bits(23, 20),
  }),
  /** Controller Status, read-only (§3.1.6). */
  CSTS: reg32(0x1c, 'NVMe 1.4 §3.1.6', {
    /** Ready: the controller processes commands (follows CC.EN within CAP.TO). */
    RDY: bit(0),
    /** Controller Fatal Status: the controller stopped; only a reset brings it back. */
    CFS: bit(1),
    /** Shutdown Status (values in SHST). */
    SHST: bits(3, 2),
    /** NVM Subsystem Reset Occurred. */
    NSSRO: bit(4),
    /** Processing Paused. */
    PP: bit(5),
  }),
  /** NVM Subsystem Reset, optional (CAP.NSSRS): writing 4E564D65h ("NVMe") resets the subsystem (§3.1.7). */
  NSSR: reg32(0x20, 'NVMe 1.4 §3.1.7'),
  /** Admin Queue Attributes (§3.1.8). */
  AQA: reg32(0x24, 'NVMe 1.4 §3.1.8', {
    /** Admin Submission Queue Size, 0's based. */
    ASQS: bits(11, 0),
    /** Admin Completion Queue Size, 0's based. */
    ACQS: bits(27, 16),
  }),
  /** Admin Submission Queue Base Address; bits 11:0 are reserved, so the base is 4 KiB aligned (§3.1.9). */
  ASQ: reg64(0x28, 'NVMe 1.4 §3.1.9'),
  /** Admin Completion Queue Base Address; 4 KiB aligned like ASQ (§3.1.10). */
  ACQ: reg64(0x30, 'NVMe 1.4 §3.1.10'),
  /**
   * Submission Queue 0 Tail Doorbell, the first doorbell (§3.1.24). Doorbell y of each kind is at
   * `sqTailDoorbell(y, DSTRD)` / `cqHeadDoorbell(y, DSTRD)`; a CQ head doorbell holds CQH in the
   * same bits 15:0 (§3.1.25).
   */
  SQ0TDBL: reg32(0x1000, 'NVMe 1.4 §3.1.24', {
    /** Submission Queue Tail (CQ Head in a CQ head doorbell). */
    SQT: bits(15, 0),
  }),
});

/** The base of ASQ, ACQ and I/O queues created physically contiguous: 4 KiB aligned (§3.1.9, §3.1.10, §5.3). */
export const QUEUE_BASE_ALIGN = 4096;

/** VS of an NVMe 1.4.0 controller (§3.1.2). */
export const VS_1_4_0 = 0x0001_0400;

/** CAP.CSS bit 0 (register bit 37): the NVM command set (§3.1.1). */
export const CAP_CSS_NVM = 0x01;

/** CC.CSS 000b: the NVM command set; CC.AMS 000b: round robin (§3.1.5). */
export const CC_CSS_NVM = 0;
export const CC_AMS_ROUND_ROBIN = 0;

/** CC.SHN values (§3.1.5). */
export const SHN = Object.freeze({ NONE: 0, NORMAL: 1, ABRUPT: 2 });

/** CSTS.SHST values (§3.1.6). */
export const SHST = Object.freeze({ NORMAL: 0, OCCURRING: 1, COMPLETE: 2 });

/**
 * Bytes of a memory page for a CC.MPS or CAP.MPSMIN/MPSMAX value (4 bits): 2 ^ (12 + v)
 * (§3.1.1, §3.1.5). A shift, so the result is a small integer the hot paths can divide by cheaply.
 */
export function memoryPageBytes(mps: number): number {
  return 1 << (12 + mps);
}

/** The bound on a CSTS.RDY transition: CAP.TO in 500 ms units (§3.1.1). */
export const CAP_TO_UNIT_MS = 500;

/** Submission Queue y Tail Doorbell offset (§3.1.24): 1000h + (2y * (4 << CAP.DSTRD)). */
export function sqTailDoorbell(qid: number, dstrd: number): number {
  return REG.SQ0TDBL.offset + 2 * qid * (4 << dstrd);
}

/** Completion Queue y Head Doorbell offset (§3.1.25): 1000h + ((2y + 1) * (4 << CAP.DSTRD)). */
export function cqHeadDoorbell(qid: number, dstrd: number): number {
  return REG.SQ0TDBL.offset + (2 * qid + 1) * (4 << dstrd);
}

/** The names of a register's fields (not `offset`, `width`, `spec`). */
type FieldName<R> = { [K in keyof R]: R[K] extends BitField ? K : never }[keyof R];
/** A register value as its fields, by mnemonic. */
export type Fields<R> = { readonly [K in FieldName<R>]: number };

function fieldsOf<R extends object>(reg: R): [FieldName<R>, BitField][] {
  return Object.entries(reg).filter((e): e is [string, BitField] => typeof e[1] === 'object') as [FieldName<R>, BitField][];
}

/** CAP decoded into its fields (§3.1.1). */
export type Cap = Fields<typeof REG.CAP>;
/** CC as its fields (§3.1.5). */
export type Cc = Fields<typeof REG.CC>;

export function decodeCap(cap: bigint): Cap {
  const out: Record<string, number> = {};
  for (const [name, f] of fieldsOf(REG.CAP)) out[name] = getField64(cap, f);
  return out as Cap;
}

/** A CAP value from named fields (unnamed fields are 0); checked: every value must fit its field. */
export function encodeCap(fields: Partial<Cap>): bigint {
  let v = 0n;
  for (const [name, f] of fieldsOf(REG.CAP)) v = setField64(v, f, fields[name] ?? 0);
  return v;
}

/** A CC value from named fields (unnamed fields are 0); checked. */
export function encodeCc(fields: Partial<Cc>): number {
  let v = 0;
  for (const [name, f] of fieldsOf(REG.CC)) v = setField(v, f, fields[name] ?? 0);
  return v;
}

/** VS as its fields (§3.1.2). */
export function decodeVs(vs: number): Fields<typeof REG.VS> {
  return { MJR: getField(vs, REG.VS.MJR), MNR: getField(vs, REG.VS.MNR), TER: getField(vs, REG.VS.TER) };
}
