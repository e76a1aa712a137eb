/**
 * The capability structures this project reads or models: MSI (PCI 3.0 §6.8.1), MSI-X (§6.8.2) and
 * the PCI Express capability's device registers (PCIe Base 4.0 §7.5.3). Offsets are relative to the
 * capability's start in configuration space; the MSI-X table entry is a structure in a BAR.
 */
import { bit, bits, reg16, reg32, struct, u32 } from '../field.js';

/** MSI capability, the 64-bit layout with per-vector masking (§6.8.1, Figure 6-9). */
export const MSI = Object.freeze({
  /** Message Control (§6.8.1.3). */
  MC: reg16(0x02, 'PCI 3.0 §6.8.1.3', {
    ENABLE: bit(0),
    /** Multiple Message Capable: log2 of the vectors the function asks for. */
    MMC: bits(3, 1),
    /** Multiple Message Enable: log2 of the vectors software granted. */
    MME: bits(6, 4),
    /** 64-bit Address Capable. */
    ADDR64: bit(7),
    /** Per-vector Masking Capable. */
    PVM: bit(8),
  }),
  ADDR_LO: reg32(0x04, 'PCI 3.0 §6.8.1.4'),
  ADDR_HI: reg32(0x08, 'PCI 3.0 §6.8.1.5'),
  DATA: reg16(0x0c, 'PCI 3.0 §6.8.1.6'),
  /** Mask Bits, one per vector (§6.8.1.7). */
  MASK: reg32(0x10, 'PCI 3.0 §6.8.1.7'),
  /** Pending Bits, read-only (§6.8.1.8). */
  PENDING: reg32(0x14, 'PCI 3.0 §6.8.1.8'),
  /** Bytes of this layout. */
  SIZE: 0x18,
});

/** MSI-X capability (§6.8.2, Figure 6-10). */
export const MSIX = Object.freeze({
  /** Message Control (§6.8.2.3). */
  MC: reg16(0x02, 'PCI 3.0 §6.8.2.3', {
    /** Table Size, N - 1. */
    TABLE_SIZE: bits(10, 0),
    /** Function Mask: every vector masked. */
    FMASK: bit(14),
    /** MSI-X Enable. */
    ENABLE: bit(15),
  }),
  /** Table Offset and BIR: the BAR holding the table (bits 2:0) and the table's offset in it (§6.8.2.4). */
  TABLE: reg32(0x04, 'PCI 3.0 §6.8.2.4', { BIR: bits(2, 0), OFFSET: bits(31, 3) }),
  /** PBA Offset and BIR (§6.8.2.5). */
  PBA: reg32(0x08, 'PCI 3.0 §6.8.2.5', { BIR: bits(2, 0), OFFSET: bits(31, 3) }),
  /** Bytes of this capability. */
  SIZE: 12,
});

/** One MSI-X table entry in the BAR (§6.8.2.6 to §6.8.2.9). */
export const MSIX_ENTRY = struct(16, 'PCI 3.0 §6.8.2.6', {
  ADDR_LO: u32(0),
  ADDR_HI: u32(4),
  DATA: u32(8),
  /** Vector Control: bit 0 masks the vector (§6.8.2.9). */
  VECTOR_CONTROL: u32(12),
});
/** Vector Control's Mask Bit (§6.8.2.9). */
export const MSIX_VECTOR_MASKED = bit(0, 'PCI 3.0 §6.8.2.9');
/** The MSI-X table holds at most 2048 vectors (Table Size is 11 bits, N - 1). */
export const MSIX_MAX_VECTORS = 2048;

/** The PCI Express capability's device registers (PCIe Base 4.0 §7.5.3.3 to §7.5.3.5). */
export const PCIE = Object.freeze({
  DEVCAP: reg32(0x04, 'PCIe 4.0 §7.5.3.3', {
    /** Function Level Reset Capability. */
    FLR: bit(28),
  }),
  DEVCTL: reg16(0x08, 'PCIe 4.0 §7.5.3.4', {
    /** Correctable Error Reporting Enable: the function may send ERR_COR. */
    CERE: bit(0),
    /** Non-Fatal Error Reporting Enable: ERR_NONFATAL. */
    NFERE: bit(1),
    /** Fatal Error Reporting Enable: ERR_FATAL. */
    FERE: bit(2),
    /** Unsupported Request Reporting Enable. */
    URRE: bit(3),
    /** Initiate Function Level Reset (Bridge Configuration Retry Enable on bridges); reads 0. */
    INITIATE_FLR: bit(15),
  }),
  /** Device Status (§7.5.3.5): error-detected bits are RW1C (write 1 to clear). */
  DEVSTA: reg16(0x0a, 'PCIe 4.0 §7.5.3.5', {
    /** Correctable Error Detected. */
    CED: bit(0),
    /** Non-Fatal Error Detected. */
    NFED: bit(1),
    /** Fatal Error Detected: the function hit an uncorrectable internal error. */
    FED: bit(2),
    /** Unsupported Request Detected. */
    URD: bit(3),
  }),
  /** Bytes of a version 2 PCI Express capability. */
  SIZE: 0x3c,
});
