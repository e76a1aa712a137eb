/**
 * NVMe commands (NVMe 1.4 §5 "Admin Command Set", §6 "NVM Command Set"): opcodes, and the fields
 * of the command dwords and completion dword 0 that dmabox uses, in the style of spec/field.ts.
 * The entry layout itself (CDW0, NSID, PRP1, PRP2, CDW10..15) is in spec/nvme/queue.ts.
 */
import { bit, bits, struct, u32, u64 } from '../field.js';

/** Admin command opcodes (§5). */
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

/** NVM command set opcodes (§6). */
export const NvmOpcode = Object.freeze({
  FLUSH: 0x00,
  WRITE: 0x01,
  READ: 0x02,
  WRITE_UNCORRECTABLE: 0x04,
  COMPARE: 0x05,
  WRITE_ZEROES: 0x08,
  DATASET_MANAGEMENT: 0x09,
});

/** Identify's Controller or Namespace Structure values (§5.15.1). */
export const Cns = Object.freeze({
  NAMESPACE: 0x00,
  CONTROLLER: 0x01,
  ACTIVE_NAMESPACE_LIST: 0x02,
});

/** Feature Identifiers (§5.21.1). */
export const FeatureId = Object.freeze({
  ARBITRATION: 0x01,
  POWER_MANAGEMENT: 0x02,
  VOLATILE_WRITE_CACHE: 0x06,
  NUMBER_OF_QUEUES: 0x07,
  INTERRUPT_COALESCING: 0x08,
});

/** The NSID that names every namespace, where a command allows it (Flush, §6.8). */
export const NSID_ALL = 0xffff_ffff;

/** Abort (§5.1). */
export const ABORT = Object.freeze({
  CDW10: Object.freeze({
    /** Submission Queue Identifier of the command to abort. */
    SQID: bits(15, 0, 'NVMe 1.4 §5.1'),
    /** Command Identifier of the command to abort. */
    CID: bits(31, 16, 'NVMe 1.4 §5.1'),
  }),
  /** Completion dword 0. */
  DW0: Object.freeze({
    /** 1: the command was not aborted. */
    NOT_ABORTED: bit(0, 'NVMe 1.4 §5.1'),
  }),
});

/** Create I/O Completion Queue (§5.3) and Create I/O Submission Queue (§5.4) CDW10: the same layout. */
export const CREATE_IO_QUEUE_CDW10 = Object.freeze({
  /** Queue Identifier. */
  QID: bits(15, 0, 'NVMe 1.4 §5.3, §5.4'),
  /** Queue Size, 0's based. */
  QSIZE: bits(31, 16, 'NVMe 1.4 §5.3, §5.4'),
});

/** Create I/O Completion Queue CDW11 (§5.3). */
export const CREATE_IO_CQ_CDW11 = Object.freeze({
  /** Physically Contiguous: PRP1 is the queue's base (required when CAP.CQR). */
  PC: bit(0, 'NVMe 1.4 §5.3'),
  /** Interrupts Enabled. */
  IEN: bit(1, 'NVMe 1.4 §5.3'),
  /** Interrupt Vector (MSI-X table entry). */
  IV: bits(31, 16, 'NVMe 1.4 §5.3'),
});

/** Create I/O Submission Queue CDW11 (§5.4). */
export const CREATE_IO_SQ_CDW11 = Object.freeze({
  /** Physically Contiguous. */
  PC: bit(0, 'NVMe 1.4 §5.4'),
  /** Queue Priority (weighted round robin only). */
  QPRIO: bits(2, 1, 'NVMe 1.4 §5.4'),
  /** Completion Queue Identifier the SQ posts to. */
  CQID: bits(31, 16, 'NVMe 1.4 §5.4'),
});

/** Delete I/O Completion Queue (§5.5) and Delete I/O Submission Queue (§5.6) CDW10. */
export const DELETE_IO_QUEUE_CDW10 = Object.freeze({
  QID: bits(15, 0, 'NVMe 1.4 §5.5, §5.6'),
});

/** Identify CDW10 (§5.15). */
export const IDENTIFY_CDW10 = Object.freeze({
  /** Controller or Namespace Structure (Cns). */
  CNS: bits(7, 0, 'NVMe 1.4 §5.15'),
  /** Controller Identifier. */
  CNTID: bits(31, 16, 'NVMe 1.4 §5.15'),
});

/** Set Features (§5.21) and Get Features (§5.13) CDW10. */
export const FEATURES_CDW10 = Object.freeze({
  /** Feature Identifier (FeatureId). */
  FID: bits(7, 0, 'NVMe 1.4 §5.13, §5.21'),
  /** Get Features: Select (000b current). */
  SEL: bits(10, 8, 'NVMe 1.4 §5.13'),
  /** Set Features: Save across resets. */
  SV: bit(31, 'NVMe 1.4 §5.21'),
});

/**
 * Number of Queues (§5.21.1.7): Set Features CDW11 asks (NSQR, NCQR), completion dword 0 grants
 * (NSQA, NCQA, same bits); every count 0's based, FFFFh invalid.
 */
export const NUMBER_OF_QUEUES = Object.freeze({
  /** Number of I/O Submission Queues Requested / Allocated. */
  NSQ: bits(15, 0, 'NVMe 1.4 §5.21.1.7'),
  /** Number of I/O Completion Queues Requested / Allocated. */
  NCQ: bits(31, 16, 'NVMe 1.4 §5.21.1.7'),
});

/** Volatile Write Cache feature, CDW11 and Get Features dword 0 (§5.21.1.6). */
export const VOLATILE_WRITE_CACHE = Object.freeze({
  /** Volatile Write Cache Enable. */
  WCE: bit(0, 'NVMe 1.4 §5.21.1.6'),
});

/**
 * Read (§6.9) and Write (§6.15): CDW10 and CDW11 hold the Starting LBA (low, high dword);
 * CDW12 as below.
 */
export const RW_CDW12 = Object.freeze({
  /** Number of Logical Blocks, 0's based. */
  NLB: bits(15, 0, 'NVMe 1.4 §6.9, §6.15'),
  /** Protection Information Field. */
  PRINFO: bits(29, 26, 'NVMe 1.4 §6.9, §6.15'),
  /** Force Unit Access: the data is on non-volatile media when the command completes. */
  FUA: bit(30, 'NVMe 1.4 §6.9, §6.15'),
  /** Limited Retry. */
  LR: bit(31, 'NVMe 1.4 §6.9, §6.15'),
});

/** Write Zeroes (§6.17): Starting LBA in CDW10/11 as for Read and Write; CDW12 as below. */
export const WRITE_ZEROES_CDW12 = Object.freeze({
  /** Number of Logical Blocks, 0's based. */
  NLB: bits(15, 0, 'NVMe 1.4 §6.17'),
  /** Deallocate: the blocks may be deallocated (reads return the DLFEAT value). */
  DEAC: bit(25, 'NVMe 1.4 §6.17'),
  PRINFO: bits(29, 26, 'NVMe 1.4 §6.17'),
  FUA: bit(30, 'NVMe 1.4 §6.17'),
  LR: bit(31, 'NVMe 1.4 §6.17'),
});

/** Blocks one Read, Write or Write Zeroes may name: NLB is 16 bits, 0's based. */
export const MAX_BLOCKS_PER_COMMAND = RW_CDW12.NLB.max + 1;

/** Dataset Management (§6.7): the data pointer addresses NR + 1 ranges (DSM_RANGE). */
export const DSM = Object.freeze({
  CDW10: Object.freeze({
    /** Number of Ranges, 0's based. */
    NR: bits(7, 0, 'NVMe 1.4 §6.7'),
  }),
  CDW11: Object.freeze({
    /** Integral Dataset for Read. */
    IDR: bit(0, 'NVMe 1.4 §6.7'),
    /** Integral Dataset for Write. */
    IDW: bit(1, 'NVMe 1.4 §6.7'),
    /** Attribute - Deallocate. */
    AD: bit(2, 'NVMe 1.4 §6.7'),
  }),
});

/** One Dataset Management range, 16 bytes (§6.7). */
export const DSM_RANGE = struct(16, 'NVMe 1.4 §6.7', {
  /** Context Attributes. */
  CATTR: u32(0),
  /** Length in logical blocks (not 0's based). */
  NLB: u32(4),
  /** Starting LBA. */
  SLBA: u64(8),
});

/** At most 256 ranges per command (NR is 8 bits, 0's based). */
export const DSM_MAX_RANGES = DSM.CDW10.NR.max + 1;
