/**
 * The 82574L's transmit registers (datasheet 317694, §10.2.6 "Transmit Register Descriptions"):
 * transmit control, the inter-packet gap, and queue 0's descriptor ring.
 */
import { bit, bits, reg32, setField } from '../field.js';

export const TRANSMIT = Object.freeze({
  /** Transmit Control (§10.2.6.1). */
  TCTL: reg32(0x00400, '82574 §10.2.6.1', {
    /** Transmit Enable. */
    EN: bit(1),
    /** Pad Short Packets to 64 bytes (with FCS). */
    PSP: bit(3),
    /** Collision Threshold (half duplex). */
    CT: bits(11, 4),
    /** Collision Distance, in byte times. */
    COLD: bits(21, 12),
    /** Software XOFF transmission. */
    SWXOFF: bit(22),
    /** Re-transmit on Late Collision. */
    RTLC: bit(24),
  }),
  /** Transmit Inter-Packet Gap (§10.2.6.2), in byte times. */
  TIPG: reg32(0x00410, '82574 §10.2.6.2', {
    IPGT: bits(9, 0),
    IPGR1: bits(19, 10),
    IPGR2: bits(29, 20),
  }),
  /** Transmit Descriptor Base Address Low: 16-byte aligned (§10.2.6). */
  TDBAL: reg32(0x03800, '82574 §10.2.6', { TDBAL: bits(31, 4) }),
  /** Transmit Descriptor Base Address High (§10.2.6). */
  TDBAH: reg32(0x03804, '82574 §10.2.6', { TDBAH: bits(31, 0) }),
  /** Transmit Descriptor Length in bytes, a multiple of 128 (§10.2.6). */
  TDLEN: reg32(0x03808, '82574 §10.2.6', { LEN: bits(19, 7) }),
  /** Transmit Descriptor Head: the next descriptor the device processes; those before it are done (§10.2.6). */
  TDH: reg32(0x03810, '82574 §10.2.6', { TDH: bits(15, 0) }),
  /** Transmit Descriptor Tail: writing it hands descriptors to the device (§10.2.6). */
  TDT: reg32(0x03818, '82574 §10.2.6', { TDT: bits(15, 0) }),
  /** Transmit Interrupt Delay Value (§10.2.6). */
  TIDV: reg32(0x03820, '82574 §10.2.6', {
    /** In 1.024 us units. */
    IDV: bits(15, 0),
    /** Flush Partial Descriptor block. */
    FPD: bit(31),
  }),
  /** Transmit Descriptor Control (§10.2.6.10). */
  TXDCTL: reg32(0x03828, '82574 §10.2.6.10', {
    PTHRESH: bits(5, 0),
    HTHRESH: bits(13, 8),
    /** Write-back threshold. */
    WTHRESH: bits(21, 16),
    /** Bit 22 is reserved and must be written as 1. */
    MUST_BE_ONE: bit(22),
    /** Granularity: thresholds in descriptors (1) rather than cache lines (0). */
    GRAN: bit(24),
    /** Transmit descriptor low threshold (TXD_LOW). */
    LWTHRESH: bits(31, 25),
  }),
});

/** TIPG for IEEE 802.3 copper (§10.2.6.2): IPGT 8, IPGR1 8, IPGR2 6. */
export const TIPG_COPPER = setField(setField(setField(0, TRANSMIT.TIPG.IPGT, 8), TRANSMIT.TIPG.IPGR1, 8), TRANSMIT.TIPG.IPGR2, 6);
