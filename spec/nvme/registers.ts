/**
 * NVMe controller registers (NVMe Base Specification 1.4, §3.1 "Register Definition", Figure 78),
 * as data: offsets and bit fields with the spec's mnemonics, so this file reads beside the spec.
 * Shared by the driver and the simulated controller (sim/nvme), which must agree on every bit.
 */

/** Register offsets in BAR0 (NVMe 1.4 §3.1, Figure 78). */
export const REG = Object.freeze({
  /** Controller Capabilities, 64-bit, RO (§3.1.1). */
  CAP: 0x00,
  /** Version, RO (§3.1.2). */
  VS: 0x08,
  /** Interrupt Mask Set (§3.1.3): pin-based and MSI only; undefined with MSI-X. */
  INTMS: 0x0c,
  /** Interrupt Mask Clear (§3.1.4). */
  INTMC: 0x10,
  /** Controller Configuration (§3.1.5). */
  CC: 0x14,
  /** Controller Status (§3.1.6). */
  CSTS: 0x1c,
  /** NVM Subsystem Reset (§3.1.7), optional. */
  NSSR: 0x20,
  /** Admin Queue Attributes (§3.1.8). */
  AQA: 0x24,
  /** Admin Submission Queue Base Address, 64-bit (§3.1.9). */
  ASQ: 0x28,
  /** Admin Completion Queue Base Address, 64-bit (§3.1.10). */
  ACQ: 0x30,
  /** First doorbell (§3.1.24: SQ0TDBL). */
  DOORBELL_BASE: 0x1000,
});

/**
 * Submission Queue y Tail Doorbell offset (§3.1.24): 1000h + (2y * (4 << CAP.DSTRD)).
 */
export function sqTailDoorbell(qid: number, dstrd: number): number {
  return REG.DOORBELL_BASE + 2 * qid * (4 << dstrd);
}

/**
 * Completion Queue y Head Doorbell offset (§3.1.25): 1000h + ((2y + 1) * (4 << CAP.DSTRD)).
 */
export function cqHeadDoorbell(qid: number, dstrd: number): number {
  return REG.DOORBELL_BASE + (2 * qid + 1) * (4 << dstrd);
}

/** CAP, Controller Capabilities, decoded (§3.1.1, Figure 79). */
export interface Cap {
  /** Maximum Queue Entries Supported, bits 15:0, 0's based (so entries = MQES + 1). */
  readonly MQES: number;
  /** Contiguous Queues Required, bit 16. */
  readonly CQR: boolean;
  /** Arbitration Mechanism Supported, bits 18:17. */
  readonly AMS: number;
  /** Timeout, bits 31:24, in 500 ms units: worst case for CSTS.RDY to follow CC.EN. */
  readonly TO: number;
  /** Doorbell Stride, bits 35:32: doorbells are (4 << DSTRD) bytes apart. */
  readonly DSTRD: number;
  /** NVM Subsystem Reset Supported, bit 36. */
  readonly NSSRS: boolean;
  /** Command Sets Supported, bits 44:37 (bit 37: NVM command set). */
  readonly CSS: number;
  /** Boot Partition Support, bit 45. */
  readonly BPS: boolean;
  /** Memory Page Size Minimum, bits 51:48: 2 ^ (12 + MPSMIN) bytes. */
  readonly MPSMIN: number;
  /** Memory Page Size Maximum, bits 55:52: 2 ^ (12 + MPSMAX) bytes. */
  readonly MPSMAX: number;
}

/** CAP.CSS bit 0 (register bit 37): the NVM command set (§3.1.1). */
export const CAP_CSS_NVM = 0x01;

export function decodeCap(cap: bigint): Cap {
  const lo = Number(cap & 0xffff_ffffn);
  const hi = Number(cap >> 32n);
  return {
    MQES: lo & 0xffff,
    CQR: ((lo >>> 16) & 1) === 1,
    AMS: (lo >>> 17) & 0x3,
    TO: (lo >>> 24) & 0xff,
    DSTRD: hi & 0xf,
    NSSRS: ((hi >>> 4) & 1) === 1,
    CSS: (hi >>> 5) & 0xff,
    BPS: ((hi >>> 13) & 1) === 1,
    MPSMIN: (hi >>> 16) & 0xf,
    MPSMAX: (hi >>> 20) & 0xf,
  };
}

export function encodeCap(c: Cap): bigint {
  const lo = (c.MQES & 0xffff) | ((c.CQR ? 1 : 0) << 16) | ((c.AMS & 3) << 17) | ((c.TO & 0xff) << 24);
  const hi =
    (c.DSTRD & 0xf) |
    ((c.NSSRS ? 1 : 0) << 4) |
    ((c.CSS & 0xff) << 5) |
    ((c.BPS ? 1 : 0) << 13) |
    ((c.MPSMIN & 0xf) << 16) |
    ((c.MPSMAX & 0xf) << 20);
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** VS, Version (§3.1.2): MJR 31:16, MNR 15:8, TER 7:0. */
export function decodeVs(vs: number): { MJR: number; MNR: number; TER: number } {
  return { MJR: vs >>> 16, MNR: (vs >>> 8) & 0xff, TER: vs & 0xff };
}
export const VS_1_4_0 = 0x0001_0400;

/** CC, Controller Configuration, fields (§3.1.5, Figure 82): shift and width of each. */
export const CC = Object.freeze({
  /** Enable, bit 0. */
  EN: { shift: 0, bits: 1 },
  /** I/O Command Set Selected, bits 6:4 (000b: NVM command set). */
  CSS: { shift: 4, bits: 3 },
  /** Memory Page Size, bits 10:7: 2 ^ (12 + MPS). */
  MPS: { shift: 7, bits: 4 },
  /** Arbitration Mechanism Selected, bits 13:11 (000b: round robin). */
  AMS: { shift: 11, bits: 3 },
  /** Shutdown Notification, bits 15:14 (01b normal, 10b abrupt). */
  SHN: { shift: 14, bits: 2 },
  /** I/O Submission Queue Entry Size, bits 19:16: 2 ^ IOSQES bytes (6: 64 B). */
  IOSQES: { shift: 16, bits: 4 },
  /** I/O Completion Queue Entry Size, bits 23:20: 2 ^ IOCQES bytes (4: 16 B). */
  IOCQES: { shift: 20, bits: 4 },
});

/** CC.SHN values (§3.1.5). */
export const SHN_NONE = 0;
export const SHN_NORMAL = 1;
export const SHN_ABRUPT = 2;

/** CSTS, Controller Status, fields (§3.1.6, Figure 83). */
export const CSTS = Object.freeze({
  /** Ready, bit 0. */
  RDY: { shift: 0, bits: 1 },
  /** Controller Fatal Status, bit 1. */
  CFS: { shift: 1, bits: 1 },
  /** Shutdown Status, bits 3:2 (00b normal operation, 01b occurring, 10b complete). */
  SHST: { shift: 2, bits: 2 },
  /** NVM Subsystem Reset Occurred, bit 4. */
  NSSRO: { shift: 4, bits: 1 },
  /** Processing Paused, bit 5. */
  PP: { shift: 5, bits: 1 },
});

/** CSTS.SHST values (§3.1.6). */
export const SHST_NORMAL = 0;
export const SHST_OCCURRING = 1;
export const SHST_COMPLETE = 2;

/** AQA, Admin Queue Attributes (§3.1.8): ASQS bits 11:0 and ACQS bits 27:16, both 0's based. */
export const AQA = Object.freeze({
  ASQS: { shift: 0, bits: 12 },
  ACQS: { shift: 16, bits: 12 },
});

export interface Field {
  readonly shift: number;
  readonly bits: number;
}

/** Extract a field from a 32-bit register value. */
export function getField(value: number, f: Field): number {
  return (value >>> f.shift) & ((1 << f.bits) - 1);
}

/** Return `value` with field `f` replaced by `v` (checked: `v` must fit). */
export function setField(value: number, f: Field, v: number): number {
  const mask = (1 << f.bits) - 1;
  if (!Number.isInteger(v) || v < 0 || v > mask) {
    throw new RangeError(`field value ${v} does not fit in ${f.bits} bit(s) at bit ${f.shift}`);
  }
  return ((value & ~(mask << f.shift)) | (v << f.shift)) >>> 0;
}

/** Build a CC value from named fields (unnamed fields are 0). */
export function encodeCc(f: { EN?: number; CSS?: number; MPS?: number; AMS?: number; SHN?: number; IOSQES?: number; IOCQES?: number }): number {
  let v = 0;
  for (const k of Object.keys(f) as (keyof typeof f)[]) v = setField(v, CC[k], f[k] ?? 0);
  return v;
}

/** A 64-bit queue base (ASQ/ACQ, §3.1.9/§3.1.10): bits 11:0 are reserved, so the base is 4 KiB aligned. */
export const QUEUE_BASE_ALIGN = 4096;
