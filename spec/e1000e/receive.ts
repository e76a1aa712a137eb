/**
 * The 82574L's receive registers (datasheet 317694, §10.2.5 "Receive Register Descriptions"):
 * receive control, queue 0's descriptor ring, checksum and filter control, and the address
 * filters (receive addresses RAL/RAH, the multicast table).
 */
import { bit, bits, reg32 } from '../field.js';

export const RECEIVE = Object.freeze({
  /** Receive Control (§10.2.5.1). */
  RCTL: reg32(0x00100, '82574 §10.2.5.1', {
    /** Receiver Enable. */
    EN: bit(1),
    /** Store Bad Packets. */
    SBP: bit(2),
    /** Unicast Promiscuous Enable. */
    UPE: bit(3),
    /** Multicast Promiscuous Enable. */
    MPE: bit(4),
    /** Long Packet Enable: accept frames above 1522 bytes. */
    LPE: bit(5),
    /** Loopback Mode. */
    LBM: bits(7, 6),
    /** Receive Descriptor Minimum Threshold Size: RXDMT0 when free descriptors fall to 1/2 (00b), 1/4 (01b), 1/8 (10b) of the ring. */
    RDMTS: bits(9, 8),
    /** Descriptor Type: 00b legacy, 01b packet split. */
    DTYP: bits(11, 10),
    /** Multicast Offset: which destination address bits index the MTA (00b bits 47:36 ... 11b bits 43:32). */
    MO: bits(13, 12),
    /** Broadcast Accept Mode. */
    BAM: bit(15),
    /** Buffer Size: with BSEX 0, 00b 2048, 01b 1024, 10b 512, 11b 256 bytes; with BSEX 1, 16 times that (00b reserved). */
    BSIZE: bits(17, 16),
    /** VLAN Filter Enable. */
    VFE: bit(18),
    /** Canonical Form Indicator Enable, and the value compared. */
    CFIEN: bit(19),
    CFI: bit(20),
    /** Discard Pause Frames. */
    DPF: bit(22),
    /** Pass MAC Control Frames. */
    PMCF: bit(23),
    /** Buffer Size Extension. */
    BSEX: bit(25),
    /** Strip Ethernet CRC from received frames. */
    SECRC: bit(26),
    /** Flexible Buffer size, in KiB (0: BSIZE/BSEX decide). */
    FLXBUF: bits(30, 27),
  }),
  /** Receive Descriptor Base Address Low: 16-byte aligned (§10.2.5). */
  RDBAL: reg32(0x02800, '82574 §10.2.5', { RDBAL: bits(31, 4) }),
  /** Receive Descriptor Base Address High (§10.2.5). */
  RDBAH: reg32(0x02804, '82574 §10.2.5', { RDBAH: bits(31, 0) }),
  /** Receive Descriptor Length in bytes, a multiple of 128 (§10.2.5). */
  RDLEN: reg32(0x02808, '82574 §10.2.5', { LEN: bits(19, 7) }),
  /** Receive Descriptor Head: the device's next descriptor (§10.2.5). */
  RDH: reg32(0x02810, '82574 §10.2.5', { RDH: bits(15, 0) }),
  /** Receive Descriptor Tail: one past the last descriptor software gave (§10.2.5). */
  RDT: reg32(0x02818, '82574 §10.2.5', { RDT: bits(15, 0) }),
  /** Receive Delay Timer (§10.2.5). */
  RDTR: reg32(0x02820, '82574 §10.2.5', {
    /** In 1.024 us units; 0 disables the delay. */
    DELAY: bits(15, 0),
    /** Flush Partial Descriptor block. */
    FPD: bit(31),
  }),
  /** Receive Descriptor Control (§10.2.5.11). */
  RXDCTL: reg32(0x02828, '82574 §10.2.5.11', {
    /** Prefetch, host and write-back thresholds. */
    PTHRESH: bits(5, 0),
    HTHRESH: bits(13, 8),
    WTHRESH: bits(21, 16),
    /** Granularity: thresholds in descriptors (1) rather than cache lines (0). */
    GRAN: bit(24),
  }),
  /** Receive Checksum Control (§10.2.5). */
  RXCSUM: reg32(0x05000, '82574 §10.2.5', {
    /** Packet Checksum Start. */
    PCSS: bits(7, 0),
    /** IP checksum offload enable. */
    IPOFL: bit(8),
    /** TCP/UDP checksum offload enable. */
    TUOFL: bit(9),
    /** IP payload checksum enable. */
    IPPCSE: bit(12),
    /** Packet Checksum Disable (the RSS hash goes where the checksum would). */
    PCSD: bit(13),
  }),
  /** Receive Filter Control (§10.2.5): EXSTEN 0 keeps the legacy RX descriptor. */
  RFCTL: reg32(0x05008, '82574 §10.2.5', {
    ISCSI_DIS: bit(0),
    NFSW_DIS: bit(6),
    NFSR_DIS: bit(7),
    IPV6_DIS: bit(10),
    IPV6_XSUM_DIS: bit(11),
    ACK_DIS: bit(12),
    IPFRSP_DIS: bit(14),
    /** Extended Status Enable: extended RX descriptors. */
    EXSTEN: bit(15),
    IPV6_EX_DIS: bit(16),
    NEW_IPV6_EXT_DIS: bit(17),
  }),
  /** Multicast Table Array, entry 0 of 128 dwords: 4096 hash bits (§10.2.5). */
  MTA: reg32(0x05200, '82574 §10.2.5', {}),
  /** Receive Address Low, entry 0 of 16: address bytes 0..3 (§10.2.5). */
  RAL: reg32(0x05400, '82574 §10.2.5', { RAL: bits(31, 0) }),
  /** Receive Address High, entry 0 of 16 (§10.2.5). */
  RAH: reg32(0x05404, '82574 §10.2.5', {
    /** Address bytes 4..5. */
    RAH: bits(15, 0),
    /** Address Select: 00b destination address. */
    ASEL: bits(17, 16),
    /** Address Valid. */
    AV: bit(31),
  }),
});

/** MTA dwords (§10.2.5): 128 x 32 = 4096 hash bits. */
export const MTA_DWORDS = 128;
/** Receive address (RAL/RAH) pairs (§10.2.5). */
export const RAR_ENTRIES = 16;

/** Offset of MTA dword `i` (0..127). */
export function mtaOffset(i: number): number {
  return RECEIVE.MTA.offset + 4 * i;
}
/** Offset of RAL `n` (0..15); RAH `n` follows it. */
export function ralOffset(n: number): number {
  return RECEIVE.RAL.offset + 8 * n;
}
/** Offset of RAH `n` (0..15). */
export function rahOffset(n: number): number {
  return RECEIVE.RAH.offset + 8 * n;
}

const BSIZE_LO = RECEIVE.RCTL.BSIZE.lo;
const BSIZE_MAX = RECEIVE.RCTL.BSIZE.max;
const BSEX = RECEIVE.RCTL.BSEX.mask;

/** RX buffer size in bytes from an RCTL value (BSIZE with BSEX, §10.2.5.1); 0 for the reserved encoding. Per frame in the model: no allocation, constants only. */
export function rctlBufferSize(rctl: number): number {
  const bsize = (rctl >>> BSIZE_LO) & BSIZE_MAX;
  const base = 2048 >>> bsize;
  if (rctl & BSEX) return bsize === 0 ? 0 : base * 16;
  return base;
}
