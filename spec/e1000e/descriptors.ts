/**
 * Legacy RX and TX descriptors of the 82574 (16 bytes each, little-endian).
 *
 * Source: Intel 82574 GbE Controller Family Datasheet, §7.1.4 "Legacy Receive Descriptor Format"
 * and §7.2.10.1 "Legacy Transmit Descriptor Format". Legacy formats are selected by
 * RFCTL.EXSTEN = 0 (receive) and TDESC.CMD.DEXT = 0 (transmit).
 *
 * Layouts are data: byte offsets of each field inside one descriptor. The ring code reads and
 * writes them through a DataView (or typed arrays at these offsets) with no per-packet objects.
 */

/** Every legacy descriptor is 16 bytes (§7.1.4, §7.2.10.1). */
export const DESC_SIZE = 16;

/** Descriptor rings are a multiple of 128 bytes, i.e. of 8 descriptors (RDLEN/TDLEN, §10.2.5, §10.2.6). */
export const RING_ALIGN_DESCS = 8;

/** Legacy receive descriptor (§7.1.4). Software writes BUFFER_ADDR; hardware writes the rest back. */
export const RXD = Object.freeze({
  /** Buffer address, 64 bits, bytes 0..7. */
  BUFFER_ADDR: 0,
  /** Length of data written to the buffer, 16 bits (includes CRC unless RCTL.SECRC). */
  LENGTH: 8,
  /** Packet checksum, 16 bits. */
  CSUM: 10,
  /** Status, 8 bits. */
  STATUS: 12,
  /** Errors, 8 bits (valid when STATUS.EOP). */
  ERRORS: 13,
  /** VLAN tag (special), 16 bits. */
  SPECIAL: 14,
});

/** RX descriptor STATUS bits (§7.1.4.1). */
export const RXD_STATUS = Object.freeze({
  /** Descriptor done: hardware has written this descriptor back. */
  DD: 1 << 0,
  /** End of packet: last descriptor of a frame. */
  EOP: 1 << 1,
  /** Ignore checksum indication. */
  IXSM: 1 << 2,
  /** Packet is 802.1Q tagged. */
  VP: 1 << 3,
  /** TCP checksum calculated. */
  TCPCS: 1 << 5,
  /** IP checksum calculated. */
  IPCS: 1 << 6,
  /** Passed in-exact filter. */
  PIF: 1 << 7,
});

/** RX descriptor ERRORS bits (§7.1.4.2). */
export const RXD_ERRORS = Object.freeze({
  /** CRC or alignment error. */
  CE: 1 << 0,
  /** Symbol error. */
  SE: 1 << 1,
  /** Sequence error. */
  SEQ: 1 << 2,
  /** Carrier extension error. */
  CXE: 1 << 4,
  /** TCP/UDP checksum error. */
  TCPE: 1 << 5,
  /** IP checksum error. */
  IPE: 1 << 6,
  /** RX data error (the simulator also reports a blocked DMA write here). */
  RXE: 1 << 7,
});

/** Errors that mean the frame's data cannot be trusted (checksum offload bits excluded). */
export const RXD_ERRORS_FRAME = RXD_ERRORS.CE | RXD_ERRORS.SE | RXD_ERRORS.SEQ | RXD_ERRORS.CXE | RXD_ERRORS.RXE;

/** Legacy transmit descriptor (§7.2.10.1). */
export const TXD = Object.freeze({
  /** Buffer address, 64 bits, bytes 0..7. */
  BUFFER_ADDR: 0,
  /** Length of the buffer, 16 bits. */
  LENGTH: 8,
  /** Checksum offset, 8 bits. */
  CSO: 10,
  /** Command, 8 bits. */
  CMD: 11,
  /** Status (low nibble) and reserved (high nibble), 8 bits. */
  STA: 12,
  /** Checksum start, 8 bits. */
  CSS: 13,
  /** VLAN tag (special), 16 bits. */
  SPECIAL: 14,
});

/** TX descriptor CMD bits (§7.2.10.1.1). */
export const TXD_CMD = Object.freeze({
  /** End of packet: last descriptor of a frame. */
  EOP: 1 << 0,
  /** Insert FCS (the Ethernet CRC). */
  IFCS: 1 << 1,
  /** Insert checksum (at CSO, from CSS). */
  IC: 1 << 2,
  /** Report status: write back STA.DD when done. */
  RS: 1 << 3,
  /** Descriptor extension: 0 selects this legacy format. */
  DEXT: 1 << 5,
  /** VLAN packet enable. */
  VLE: 1 << 6,
  /** Interrupt delay enable. */
  IDE: 1 << 7,
});

/** TX descriptor STA bits (§7.2.10.1.2). */
export const TXD_STA = Object.freeze({
  /** Descriptor done. */
  DD: 1 << 0,
  /** Excess collisions. */
  EC: 1 << 1,
  /** Late collision. */
  LC: 1 << 2,
});

/** Ethernet frame limits the driver and model share (IEEE 802.3 §3.2, §4.4.2). */
export const ETH = Object.freeze({
  /** Destination + source + ethertype. */
  HEADER: 14,
  /** Smallest frame without FCS: 64 - 4. */
  MIN_FRAME: 60,
  /** Largest standard frame without FCS: 1518 - 4. */
  MAX_FRAME: 1514,
  FCS: 4,
});
