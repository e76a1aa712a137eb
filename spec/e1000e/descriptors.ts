/**
 * The 82574L's legacy RX and TX descriptors (16 bytes each, little-endian), in the style of
 * spec/field.ts: the structure with its members, and each status, error or command byte as an
 * 8-bit field group at its member's offset (declared with `reg8`, so every bit is checked to fit).
 *
 * Source: Intel 82574 GbE Controller Family Datasheet (317694), §7.1.4 "Legacy Receive Descriptor
 * Format" and §7.2.10.1 "Legacy Transmit Descriptor Format". Legacy formats are selected by
 * RFCTL.EXSTEN = 0 (receive) and TXD.CMD.DEXT = 0 (transmit).
 *
 * The ring code reads and writes descriptors through typed arrays at these offsets, with no
 * per-packet objects: hot loops copy `.offset` and `.mask` into module-level constants.
 */
import { bit, reg8, struct, u16, u64, u8 } from '../field.js';
import { RECEIVE } from './receive.js';

/** Legacy receive descriptor (§7.1.4). Software writes BUFFER_ADDR; the device writes the rest back. */
export const RXD = struct(16, '82574 §7.1.4', {
  /** Buffer address, 64 bits. */
  BUFFER_ADDR: u64(0),
  /** Bytes written to the buffer (the CRC included unless RCTL.SECRC). */
  LENGTH: u16(8),
  /** Packet checksum. */
  CSUM: u16(10),
  STATUS: u8(12),
  /** Errors, valid when STATUS.EOP is set. */
  ERRORS: u8(13),
  /** VLAN tag. */
  SPECIAL: u16(14),
});

/** RX descriptor STATUS bits (§7.1.4.1). */
export const RXD_STATUS = reg8(RXD.STATUS.offset, '82574 §7.1.4.1', {
  /** Descriptor Done: the device has written this descriptor back. */
  DD: bit(0),
  /** End Of Packet: the last descriptor of a frame. */
  EOP: bit(1),
  /** Ignore Checksum Indication. */
  IXSM: bit(2),
  /** The packet is 802.1Q tagged (VLAN Packet). */
  VP: bit(3),
  /** UDP checksum calculated. */
  UDPCS: bit(4),
  /** TCP checksum calculated. */
  TCPCS: bit(5),
  /** IP checksum calculated. */
  IPCS: bit(6),
  /** Passed In-exact Filter. */
  PIF: bit(7),
});

/** RX descriptor ERRORS bits (§7.1.4.2). */
export const RXD_ERRORS = reg8(RXD.ERRORS.offset, '82574 §7.1.4.2', {
  /** CRC or alignment error. */
  CE: bit(0),
  /** Symbol error. */
  SE: bit(1),
  /** Sequence error. */
  SEQ: bit(2),
  /** Carrier extension error. */
  CXE: bit(4),
  /** TCP/UDP checksum error. */
  TCPE: bit(5),
  /** IP checksum error. */
  IPE: bit(6),
  /** RX data error (the simulator also reports a refused DMA write here). */
  RXE: bit(7),
});

/** The ERRORS bits that mean a frame's data cannot be trusted (the checksum-offload bits excluded). */
export const RXD_ERRORS_FRAME = (RXD_ERRORS.CE.mask | RXD_ERRORS.SE.mask | RXD_ERRORS.SEQ.mask | RXD_ERRORS.CXE.mask | RXD_ERRORS.RXE.mask) >>> 0;

/** Legacy transmit descriptor (§7.2.10.1). */
export const TXD = struct(16, '82574 §7.2.10.1', {
  /** Buffer address, 64 bits. */
  BUFFER_ADDR: u64(0),
  /** Bytes in the buffer. */
  LENGTH: u16(8),
  /** Checksum Offset: where to insert the checksum (with CMD.IC). */
  CSO: u8(10),
  CMD: u8(11),
  /** Status in the low nibble; the high nibble is reserved. */
  STA: u8(12),
  /** Checksum Start. */
  CSS: u8(13),
  /** VLAN tag (with CMD.VLE). */
  SPECIAL: u16(14),
});

/** TX descriptor CMD bits (§7.2.10.1.1). */
export const TXD_CMD = reg8(TXD.CMD.offset, '82574 §7.2.10.1.1', {
  /** End Of Packet: the last descriptor of a frame. */
  EOP: bit(0),
  /** Insert FCS (the Ethernet CRC). */
  IFCS: bit(1),
  /** Insert Checksum at CSO, computed from CSS. */
  IC: bit(2),
  /** Report Status: write STA.DD back when done. */
  RS: bit(3),
  /** Descriptor Extension: 0 selects this legacy format. */
  DEXT: bit(5),
  /** VLAN Packet Enable. */
  VLE: bit(6),
  /** Interrupt Delay Enable (TIDV). */
  IDE: bit(7),
});

/** TX descriptor STA bits (§7.2.10.1.2). */
export const TXD_STA = reg8(TXD.STA.offset, '82574 §7.2.10.1.2', {
  /** Descriptor Done. */
  DD: bit(0),
  /** Excess Collisions. */
  EC: bit(1),
  /** Late Collision. */
  LC: bit(2),
});

/** Every legacy descriptor is 16 bytes (§7.1.4, §7.2.10.1). */
export const DESC_SIZE = RXD.size;

/**
 * Rings hold a multiple of 8 descriptors: RDLEN and TDLEN count bytes in units of 128 (their LEN
 * field starts at bit 7, §10.2.5, §10.2.6).
 */
export const RING_ALIGN_DESCS = 2 ** RECEIVE.RDLEN.LEN.lo / DESC_SIZE;
