/**
 * The 82574L register map: the subset this driver and the simulator use.
 *
 * Source: Intel 82574 GbE Controller Family Datasheet (317694), chapter 10 "Driver Programming
 * Interface", §10.2 register descriptions. Offsets are byte offsets into BAR0 (the 128 KiB memory
 * BAR). Every register is 32 bits wide and is accessed with exactly one 32-bit access.
 * Names are the datasheet's mnemonics so this file reads beside it.
 *
 * The simulator (sim/e1000e) imports this file too; QEMU's e1000e in the lab keeps both honest.
 */

/** Register offsets in BAR0. */
export const REG = Object.freeze({
  /** Device Control (§10.2.2.1). */
  CTRL: 0x00000,
  /** Device Status, read-only (§10.2.2.2). */
  STATUS: 0x00008,
  /** EEPROM/Flash Control (§10.2.2.3). */
  EEC: 0x00010,
  /** EEPROM Read: start a word read, poll DONE, take DATA (§10.2.2.4). */
  EERD: 0x00014,
  /** Extended Device Control (§10.2.2.5). */
  CTRL_EXT: 0x00018,
  /** MDI Control: PHY register access (§10.2.2.7). */
  MDIC: 0x00020,
  /** Interrupt Cause Read: read-to-clear (§10.2.4.1). */
  ICR: 0x000c0,
  /** Interrupt Throttling Rate (§10.2.4.2). */
  ITR: 0x000c4,
  /** Interrupt Cause Set: software raises causes (§10.2.4.3). */
  ICS: 0x000c8,
  /** Interrupt Mask Set, reads back the mask (§10.2.4.4). */
  IMS: 0x000d0,
  /** Interrupt Mask Clear, write-only (§10.2.4.5). */
  IMC: 0x000d8,
  /** Extended Interrupt Auto Clear, MSI-X (§10.2.4.6). */
  EIAC: 0x000dc,
  /** Interrupt Acknowledge Auto Mask (§10.2.4.7). */
  IAM: 0x000e0,
  /** Interrupt Vector Allocation: which MSI-X vector each cause uses (§10.2.4.9). */
  IVAR: 0x000e4,
  /** Receive Control (§10.2.5.1). */
  RCTL: 0x00100,
  /** Transmit Control (§10.2.6.1). */
  TCTL: 0x00400,
  /** Transmit Inter-Packet Gap (§10.2.6.2). */
  TIPG: 0x00410,
  /** Receive Descriptor Base Address Low, 16-byte aligned (§10.2.5). */
  RDBAL: 0x02800,
  /** Receive Descriptor Base Address High (§10.2.5). */
  RDBAH: 0x02804,
  /** Receive Descriptor Length in bytes, a multiple of 128 (§10.2.5). */
  RDLEN: 0x02808,
  /** Receive Descriptor Head: the device's next descriptor (§10.2.5). */
  RDH: 0x02810,
  /** Receive Descriptor Tail: one past the last descriptor software gave (§10.2.5). */
  RDT: 0x02818,
  /** Receive Delay Timer (§10.2.5). */
  RDTR: 0x02820,
  /** Receive Descriptor Control (§10.2.5.11). */
  RXDCTL: 0x02828,
  /** Transmit Descriptor Base Address Low (§10.2.6). */
  TDBAL: 0x03800,
  /** Transmit Descriptor Base Address High (§10.2.6). */
  TDBAH: 0x03804,
  /** Transmit Descriptor Length in bytes, a multiple of 128 (§10.2.6). */
  TDLEN: 0x03808,
  /** Transmit Descriptor Head (§10.2.6). */
  TDH: 0x03810,
  /** Transmit Descriptor Tail: writing it hands descriptors to the device (§10.2.6). */
  TDT: 0x03818,
  /** Transmit Interrupt Delay Value (§10.2.6). */
  TIDV: 0x03820,
  /** Transmit Descriptor Control; bit 22 must be written as 1 (§10.2.6.10). */
  TXDCTL: 0x03828,
  /** Receive Checksum Control (§10.2.5). */
  RXCSUM: 0x05000,
  /** Receive Filter Control: EXSTEN selects extended RX descriptors; 0 keeps legacy (§10.2.5). */
  RFCTL: 0x05008,
  /** Multicast Table Array: 128 dwords, 4096 hash bits (§10.2.5). */
  MTA: 0x05200,
  /** Receive Address Low, entry 0; entry n at RAL + 8n (§10.2.5). */
  RAL: 0x05400,
  /** Receive Address High, entry 0, with the Address Valid bit (§10.2.5). */
  RAH: 0x05404,
});

/** MTA has 128 dwords (§10.2.5). */
export const MTA_DWORDS = 128;
/** Receive address (RAL/RAH) pairs on the 82574 (§10.2.5). */
export const RAR_ENTRIES = 16;
/** BAR0 size: 128 KiB of memory-mapped registers. */
export const BAR0_SIZE = 0x20000;
/** PCI identity of the 82574L: vendor 8086h, device 10D3h (what QEMU's e1000e reports too). */
export const PCI_VENDOR_INTEL = 0x8086;
export const PCI_DEVICE_82574L = 0x10d3;

/** CTRL fields (§10.2.2.1). */
export const CTRL = Object.freeze({
  /** Full duplex. */
  FD: 1 << 0,
  /** GIO Master Disable: stop issuing new master (DMA) requests. */
  GIO_MASTER_DISABLE: 1 << 2,
  /** Auto-Speed Detection Enable. */
  ASDE: 1 << 5,
  /** Set Link Up: the MAC/PHY link is enabled. */
  SLU: 1 << 6,
  /** Device reset: resets the MAC, self-clearing; wait before touching registers. */
  RST: 1 << 26,
  /** Receive flow control enable. */
  RFCE: 1 << 27,
  /** Transmit flow control enable. */
  TFCE: 1 << 28,
  /** VLAN mode enable. */
  VME: 1 << 30,
  /** PHY reset. */
  PHY_RST: 0x8000_0000,
});

/** STATUS fields (§10.2.2.2). */
export const STATUS = Object.freeze({
  /** Full duplex. */
  FD: 1 << 0,
  /** Link up. */
  LU: 1 << 1,
  /** Transmission paused (flow control). */
  TXOFF: 1 << 4,
  /** Link speed, bits 7:6: 00b 10 Mb/s, 01b 100 Mb/s, 1xb 1000 Mb/s. */
  SPEED_SHIFT: 6,
  SPEED_MASK: 0b11 << 6,
  /** PHY Reset Asserted: set by hardware after reset, cleared by software. */
  PHYRA: 1 << 10,
  /** GIO Master Enable Status: clear once master requests have stopped after GIO_MASTER_DISABLE. */
  GIO_MASTER_ENABLE: 1 << 19,
});

/** Speed in Mb/s from STATUS.SPEED (§10.2.2.2). */
export function statusSpeed(status: number): 10 | 100 | 1000 {
  const s = (status & STATUS.SPEED_MASK) >>> STATUS.SPEED_SHIFT;
  return s === 0 ? 10 : s === 1 ? 100 : 1000;
}

/** EERD fields (§10.2.2.4): write START with ADDR, poll DONE, read DATA. */
export const EERD = Object.freeze({
  START: 1 << 0,
  DONE: 1 << 1,
  /** Word address, bits 15:2. */
  ADDR_SHIFT: 2,
  ADDR_MASK: 0x3fff << 2,
  /** Data word, bits 31:16. */
  DATA_SHIFT: 16,
});

/** EEPROM word addresses (the NVM map): the Ethernet address is words 0..2, little-endian. */
export const EEPROM_WORD = Object.freeze({ MAC0: 0, MAC1: 1, MAC2: 2 });

/** CTRL_EXT fields (§10.2.2.5). */
export const CTRL_EXT = Object.freeze({
  /** Driver loaded: tells firmware the driver owns the device. */
  DRV_LOAD: 1 << 28,
  /** Interrupt Acknowledge Auto-mask Enable: reading ICR clears IMS bits set in IAM. */
  IAME: 1 << 27,
  /** MSI-X pending bits cleared on read (PBA support). */
  PBA_CLR: 0x8000_0000,
});

/** Interrupt cause bits of ICR, ICS, IMS, IMC (§10.2.4.1). */
export const ICR = Object.freeze({
  /** Transmit descriptor written back. */
  TXDW: 1 << 0,
  /** Transmit queue empty. */
  TXQE: 1 << 1,
  /** Link status change. */
  LSC: 1 << 2,
  /** Receive descriptor minimum threshold reached. */
  RXDMT0: 1 << 4,
  /** Receiver overrun: a frame was dropped for want of descriptors. */
  RXO: 1 << 6,
  /** Receiver timer: frames were written to host memory. */
  RXT0: 1 << 7,
  /** MSI-X: receive queue 0 interrupt. */
  RXQ0: 1 << 20,
  /** MSI-X: transmit queue 0 interrupt. */
  TXQ0: 1 << 22,
  /** MSI-X: other causes (link). */
  OTHER: 1 << 24,
  /** Interrupt asserted (read-only, set while any unmasked cause is pending). */
  INT_ASSERTED: 0x8000_0000,
});

/** IVAR fields (§10.2.4.9): 3-bit vector + valid bit per cause. */
export const IVAR = Object.freeze({
  RXQ0_SHIFT: 0,
  TXQ0_SHIFT: 8,
  OTHER_SHIFT: 16,
  /** In each 4-bit entry, bit 3 marks it valid. */
  VALID: 0b1000,
  VECTOR_MASK: 0b0111,
});

/** RCTL fields (§10.2.5.1). */
export const RCTL = Object.freeze({
  /** Receiver enable. */
  EN: 1 << 1,
  /** Store bad packets. */
  SBP: 1 << 2,
  /** Unicast promiscuous. */
  UPE: 1 << 3,
  /** Multicast promiscuous. */
  MPE: 1 << 4,
  /** Long packet enable. */
  LPE: 1 << 5,
  /** Multicast offset, bits 13:12: which destination bits index the MTA. */
  MO_SHIFT: 12,
  MO_MASK: 0b11 << 12,
  /** Broadcast accept mode. */
  BAM: 1 << 15,
  /** Buffer size, bits 17:16: with BSEX=0, 00b 2048, 01b 1024, 10b 512, 11b 256 bytes. */
  BSIZE_SHIFT: 16,
  BSIZE_MASK: 0b11 << 16,
  /** Buffer size extension: multiplies BSIZE by 16. */
  BSEX: 1 << 25,
  /** Strip Ethernet CRC from incoming packets. */
  SECRC: 1 << 26,
});

/** RX buffer size in bytes from RCTL.BSIZE and RCTL.BSEX (§10.2.5.1). */
export function rctlBufferSize(rctl: number): number {
  const bsize = (rctl & RCTL.BSIZE_MASK) >>> RCTL.BSIZE_SHIFT;
  const base = 2048 >>> bsize;
  if (rctl & RCTL.BSEX) return bsize === 0 ? 0 /* reserved */ : base * 16;
  return base;
}

/** TCTL fields (§10.2.6.1). */
export const TCTL = Object.freeze({
  /** Transmit enable. */
  EN: 1 << 1,
  /** Pad short packets to 64 bytes. */
  PSP: 1 << 3,
  /** Collision threshold, bits 11:4. */
  CT_SHIFT: 4,
  /** Collision distance, bits 21:12. */
  COLD_SHIFT: 12,
  /** Re-transmit on late collision. */
  RTLC: 1 << 24,
});

/** TIPG default for IEEE 802.3 copper (§10.2.6.2): IPGT 8, IPGR1 8, IPGR2 6. */
export const TIPG_COPPER = 8 | (8 << 10) | (6 << 20);

/** TXDCTL fields (§10.2.6.10). */
export const TXDCTL = Object.freeze({
  /** Write-back threshold, bits 21:16. */
  WTHRESH_SHIFT: 16,
  /** Reserved bit 22: must be written as 1. */
  MUST_BE_ONE: 1 << 22,
  /** Granularity: thresholds in descriptors (1) rather than cache lines (0). */
  GRAN: 1 << 24,
});

/** RAH fields (§10.2.5): address bits 47:32 in 15:0, Address Valid in bit 31. */
export const RAH = Object.freeze({ AV: 0x8000_0000 });

/**
 * Statistics registers (§10.2, statistics section). Every one is cleared when read. The 64-bit
 * octet counters are low/high pairs: read the low dword first, then the high one; reading the
 * high dword clears the pair.
 */
export const STAT = Object.freeze({
  /** CRC error count. */
  CRCERRS: 0x04000,
  /** RX error count. */
  RXERRC: 0x0400c,
  /** Missed packets count: frames dropped for want of room. */
  MPC: 0x04010,
  /** Good packets received. */
  GPRC: 0x04074,
  /** Broadcast packets received. */
  BPRC: 0x04078,
  /** Multicast packets received. */
  MPRC: 0x0407c,
  /** Good packets transmitted. */
  GPTC: 0x04080,
  /** Good octets received, low and high. */
  GORCL: 0x04088,
  GORCH: 0x0408c,
  /** Good octets transmitted, low and high. */
  GOTCL: 0x04090,
  GOTCH: 0x04094,
  /** Receive no buffers count. */
  RNBC: 0x040a0,
  /** Receive undersize / oversize count. */
  RUC: 0x040a4,
  ROC: 0x040ac,
  /** Total octets received / transmitted, low and high. */
  TORL: 0x040c0,
  TORH: 0x040c4,
  TOTL: 0x040c8,
  TOTH: 0x040cc,
  /** Total packets received / transmitted. */
  TPR: 0x040d0,
  TPT: 0x040d4,
  /** Multicast / broadcast packets transmitted. */
  MPTC: 0x040f0,
  BPTC: 0x040f4,
});

/** The statistics block spans 0x04000..0x040ff (§10.2). */
export const STAT_FIRST = 0x04000;
export const STAT_LAST = 0x040fc;

/** The 32-bit (non-pair) statistics registers the driver accumulates. */
export const STAT32 = Object.freeze([
  'CRCERRS', 'RXERRC', 'MPC', 'GPRC', 'BPRC', 'MPRC', 'GPTC', 'RNBC', 'RUC', 'ROC', 'TPR', 'TPT', 'MPTC', 'BPTC',
] as const);
/** The 64-bit counters as [low, high] register names. */
export const STAT64 = Object.freeze([
  ['GORCL', 'GORCH'], ['GOTCL', 'GOTCH'], ['TORL', 'TORH'], ['TOTL', 'TOTH'],
] as const);
