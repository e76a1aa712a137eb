/**
 * The Ethernet constants the 82574L's driver, its model and the simulated wire share (IEEE 802.3
 * §3.1.1 MAC frame format, §3.2.9 FCS, §4.4.2 frame size limits; EtherTypes from the IEEE
 * registry). Frames handed between the driver, the wire and the linkbacks carry no FCS: the device
 * appends it on transmit (TXD.CMD.IFCS) and strips it on receive (RCTL.SECRC).
 */

export const ETH = Object.freeze({
  /** Bytes of a MAC address. */
  ADDR: 6,
  /** Destination + source + EtherType. */
  HEADER: 14,
  /** Smallest frame without FCS: 64 - 4. */
  MIN_FRAME: 60,
  /** Largest untagged frame without FCS: 1518 - 4 (a 1500-byte payload). */
  MAX_FRAME: 1514,
  /** Frame Check Sequence: CRC-32. */
  FCS: 4,
});

/** EtherTypes the simulated peers and the test packets speak. */
export const ETHERTYPE = Object.freeze({
  IPV4: 0x0800,
  ARP: 0x0806,
});
