/**
 * Submission and completion queue entries (NVMe 1.4 §4.2 "Submission Queue Entry - Command
 * Format", §4.6 "Completion Queue Entry"), in the style of spec/field.ts: the entry as a `struct`
 * of dwords, as the spec draws it, and the fields inside each dword as bit ranges.
 *
 * Hot paths read and write entries as host-order dwords through a Uint32Array (`sq32[base + i]`),
 * which is the little-endian layout the spec requires only on a little-endian host: x86-64 and
 * arm64 Linux. Users check `LITTLE_ENDIAN_HOST` once, in their constructors, and copy the dword
 * indices they need (`dword(SQE.PRP1)`) into module-level constants.
 */
import { bit, bits, struct, u32, u64, type Member } from '../field.js';

/** Submission Queue Entry: the Common Command Format, 64 bytes (§4.2). */
export const SQE = struct(64, 'NVMe 1.4 §4.2', {
  /** Command Dword 0: opcode, fused operation, PRP or SGL, command identifier (fields in SQE_CDW0). */
  CDW0: u32(0),
  /** Namespace Identifier (FFFFFFFFh: every namespace, where the command allows it). */
  NSID: u32(4),
  CDW2: u32(8),
  CDW3: u32(12),
  /** Metadata Pointer. */
  MPTR: u64(16),
  /** Data Pointer, PRP Entry 1: the first byte, with an offset into its memory page (§4.3). */
  PRP1: u64(24, 'NVMe 1.4 §4.3'),
  /** Data Pointer, PRP Entry 2: the second page, or a PRP list pointer (§4.3). */
  PRP2: u64(32, 'NVMe 1.4 §4.3'),
  CDW10: u32(40),
  CDW11: u32(44),
  CDW12: u32(48),
  CDW13: u32(52),
  CDW14: u32(56),
  CDW15: u32(60),
});

/** Command Dword 0 (§4.2). */
export const SQE_CDW0 = Object.freeze({
  /** Opcode. */
  OPC: bits(7, 0),
  /** Fused Operation: 00b normal. */
  FUSE: bits(9, 8),
  /** PRP or SGL for Data Transfer: 00b PRPs. */
  PSDT: bits(15, 14),
  /** Command Identifier: with the SQ identifier, names the command in its completion. */
  CID: bits(31, 16),
});

/** Completion Queue Entry, 16 bytes (§4.6). */
export const CQE = struct(16, 'NVMe 1.4 §4.6', {
  /** Dword 0: command specific. */
  DW0: u32(0),
  /** Dword 1: reserved (command specific). */
  DW1: u32(4),
  /** Dword 2: SQ head pointer and SQ identifier (fields in CQE_DW2). */
  DW2: u32(8),
  /** Dword 3: command identifier, phase tag and status field (fields in CQE_DW3). */
  DW3: u32(12),
});

/** Completion Queue Entry Dword 2 (§4.6). */
export const CQE_DW2 = Object.freeze({
  /** SQ Head Pointer: how far the controller has consumed the SQ. */
  SQHD: bits(15, 0),
  /** SQ Identifier: the SQ the command came from. */
  SQID: bits(31, 16),
});

/** Completion Queue Entry Dword 3 (§4.6, §4.6.1). */
export const CQE_DW3 = Object.freeze({
  /** Command Identifier of the completed command. */
  CID: bits(15, 0),
  /** Phase Tag: inverted by the controller each pass through the queue; a new entry has the expected phase. */
  P: bit(16),
  /** Status Field, 15 bits (its own fields in spec/nvme/status.ts STATUS). */
  STATUS: bits(31, 17, 'NVMe 1.4 §4.6.1'),
});

/** CC.IOSQES and Identify SQES: log2 of the SQE size, 6 (§3.1.5). */
export const SQE_SIZE_LOG2 = Math.log2(SQE.size);
/** CC.IOCQES and Identify CQES: log2 of the CQE size, 4 (§3.1.5). */
export const CQE_SIZE_LOG2 = Math.log2(CQE.size);

/** The dword index of a member of a queue entry, for Uint32Array access. */
export function dword(m: Member): number {
  return m.offset >>> 2;
}

/** Whether this host stores a Uint32Array's dwords little-endian, as queue entries are (every NVMe structure is little-endian). */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
