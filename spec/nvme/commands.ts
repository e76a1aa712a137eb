/**
 * NVMe command and completion layouts (NVMe 1.4 §4.2 and §4.6), opcodes (§5, §6) and the fields
 * the driver and the simulated controller put in them. Layouts are byte offsets as data; the
 * hot path writes dwords straight into the queue memory through a Uint32Array (little-endian
 * host assumed: x86-64 and arm64 Linux; checked once at load).
 */

/** Submission Queue Entry size (§4.2): 64 bytes; CC.IOSQES = 6. */
export const SQE_SIZE = 64;
/** Completion Queue Entry size (§4.6): 16 bytes; CC.IOCQES = 4. */
export const CQE_SIZE = 16;

/** Common Command Format (§4.2, Figure 104/105): byte offsets. */
export const SQE = Object.freeze({
  /** CDW0: OPC bits 7:0, FUSE bits 9:8, PSDT bits 15:14, CID bits 31:16. */
  CDW0: 0,
  OPC: 0,
  CID: 2,
  /** Namespace Identifier. */
  NSID: 4,
  CDW2: 8,
  CDW3: 12,
  /** Metadata Pointer, 64-bit. */
  MPTR: 16,
  /** Data Pointer: PRP Entry 1 (§4.3). */
  PRP1: 24,
  /** Data Pointer: PRP Entry 2, or a pointer to a PRP list. */
  PRP2: 32,
  CDW10: 40,
  CDW11: 44,
  CDW12: 48,
  CDW13: 52,
  CDW14: 56,
  CDW15: 60,
});

/** Dword indices of the same fields, for Uint32Array access on the hot path. */
export const SQE_DW = Object.freeze({
  CDW0: 0,
  NSID: 1,
  MPTR_LO: 4,
  MPTR_HI: 5,
  PRP1_LO: 6,
  PRP1_HI: 7,
  PRP2_LO: 8,
  PRP2_HI: 9,
  CDW10: 10,
  CDW11: 11,
  CDW12: 12,
  CDW13: 13,
  CDW14: 14,
  CDW15: 15,
});

/** Completion Queue Entry (§4.6, Figure 121): byte offsets. */
export const CQE = Object.freeze({
  /** DW0: command specific. */
  DW0: 0,
  DW1: 4,
  /** SQ Head Pointer, 16-bit. */
  SQHD: 8,
  /** SQ Identifier, 16-bit. */
  SQID: 10,
  /** Command Identifier, 16-bit. */
  CID: 12,
  /** Status Field (§4.6.1) with the Phase Tag in bit 0, 16-bit. */
  STATUS: 14,
});

/** Dword indices in a CQE. */
export const CQE_DW = Object.freeze({ DW0: 0, DW1: 1, SQHD_SQID: 2, CID_STATUS: 3 });

/**
 * The Status Field (§4.6.1, Figure 124) as it sits in the upper 16 bits of CQE dword 3:
 * P (Phase Tag) bit 16, SC bits 24:17, SCT bits 27:25, CRD bits 29:28, M bit 30, DNR bit 31.
 */
export const CQE_DW3 = Object.freeze({
  P: 16,
  SC: 17,
  SCT: 25,
  CRD: 28,
  M: 30,
  DNR: 31,
});

/** Admin command opcodes (§5, Figure 139). */
export const AdminOpcode = Object.freeze({
  DELETE_IO_SQ: 0x00,
  CREATE_IO_SQ: 0x01,
  GET_LOG_PAGE: 0x02,
  DELETE_IO_CQ: 0x04,
  CREATE_IO_CQ: 0x05,
  IDENTIFY: 0x06,
  ABORT: 0x08,
  SET_FEATURES: 0x09,
  GET_FEATURES: 0x0a,
  ASYNC_EVENT_REQUEST: 0x0c,
});

/** NVM command set opcodes (§6, Figure 346). */
export const NvmOpcode = Object.freeze({
  FLUSH: 0x00,
  WRITE: 0x01,
  READ: 0x02,
  WRITE_UNCORRECTABLE: 0x04,
  COMPARE: 0x05,
  WRITE_ZEROES: 0x08,
  DATASET_MANAGEMENT: 0x09,
});

/** Identify CNS values (§5.15.1, Figure 244). */
export const Cns = Object.freeze({
  NAMESPACE: 0x00,
  CONTROLLER: 0x01,
  ACTIVE_NAMESPACE_LIST: 0x02,
});

/** Feature identifiers (§5.21.1, Figure 271). */
export const FeatureId = Object.freeze({
  ARBITRATION: 0x01,
  POWER_MANAGEMENT: 0x02,
  VOLATILE_WRITE_CACHE: 0x06,
  /** Number of Queues (§5.21.1.7): CDW11 NSQR 15:0, NCQR 31:16; DW0 NSQA 15:0, NCQA 31:16; all 0's based. */
  NUMBER_OF_QUEUES: 0x07,
  INTERRUPT_COALESCING: 0x08,
});

/** Create I/O Completion Queue CDW11 (§5.3, Figure 153): PC bit 0, IEN bit 1, IV bits 31:16. */
export const CREATE_CQ_PC = 1 << 0;
export const CREATE_CQ_IEN = 1 << 1;
/** Create I/O Submission Queue CDW11 (§5.4, Figure 157): PC bit 0, QPRIO bits 2:1, CQID bits 31:16. */
export const CREATE_SQ_PC = 1 << 0;

/** Read/Write/Write Zeroes CDW12 (§6.9, §6.15, §6.16): NLB bits 15:0 (0's based), DEAC bit 25, FUA bit 30, LR bit 31. */
export const RW_NLB_MASK = 0xffff;
export const WZ_DEAC = 1 << 25;
export const RW_FUA = 1 << 30;

/** Dataset Management (§6.7): CDW10 NR bits 7:0 (0's based); CDW11 IDR bit 0, IDW bit 1, AD bit 2. */
export const DSM_AD = 1 << 2;
/** A DSM range (§6.7, Figure 364): 16 bytes: context attributes, length in LBAs, starting LBA. */
export const DSM_RANGE = Object.freeze({ SIZE: 16, CATTR: 0, NLB: 4, SLBA: 8, MAX_RANGES: 256 });

/** Abort (§5.1): CDW10 SQID bits 15:0, CID bits 31:16; DW0 bit 0 = 1 means "not aborted". */
export const ABORT_NOT_ABORTED = 1;

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error('dmabox nvme: a big-endian host is not supported (queue entries are written as host-order dwords)');
}
