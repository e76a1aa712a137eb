/**
 * The 82574L's general registers (datasheet 317694, §10.2.2 "General Register Descriptions"):
 * device control and status, the EEPROM interface, extended control and the PHY's MDI interface.
 * spec/field.ts explains the declaration style; registers.ts gathers every group into `REG`.
 */
import { bit, bits, getField, reg32 } from '../field.js';

export const GENERAL = Object.freeze({
  /** Device Control (§10.2.2.1). */
  CTRL: reg32(0x00000, '82574 §10.2.2.1', {
    /** Full Duplex (when not auto-negotiated). */
    FD: bit(0),
    /** GIO Master Disable: the device stops issuing new master (DMA) requests; STATUS.GIO_MASTER_ENABLE clears once none is pending. */
    GIO_MASTER_DISABLE: bit(2),
    /** Auto-Speed Detection Enable. */
    ASDE: bit(5),
    /** Set Link Up: the MAC/PHY link is enabled. */
    SLU: bit(6),
    /** Speed selection when forced: 00b 10, 01b 100, 10b 1000 Mb/s. */
    SPEED: bits(9, 8),
    /** Force Speed. */
    FRCSPD: bit(11),
    /** Force Duplex. */
    FRCDPX: bit(12),
    /** Device Reset: resets the MAC, self-clearing; software waits for it before touching registers. */
    RST: bit(26),
    /** Receive Flow Control Enable. */
    RFCE: bit(27),
    /** Transmit Flow Control Enable. */
    TFCE: bit(28),
    /** VLAN Mode Enable. */
    VME: bit(30),
    /** PHY Reset. */
    PHY_RST: bit(31),
  }),
  /** Device Status, read-only (§10.2.2.2). */
  STATUS: reg32(0x00008, '82574 §10.2.2.2', {
    /** Full Duplex. */
    FD: bit(0),
    /** Link Up. */
    LU: bit(1),
    /** Transmission Paused (flow control). */
    TXOFF: bit(4),
    /** Link speed: 00b 10 Mb/s, 01b 100 Mb/s, 1xb 1000 Mb/s. */
    SPEED: bits(7, 6),
    /** Auto-Speed Detection Value. */
    ASDV: bits(9, 8),
    /** PHY Reset Asserted: set by hardware after reset, cleared by software. */
    PHYRA: bit(10),
    /** GIO Master Enable Status: clear once master requests have stopped after CTRL.GIO_MASTER_DISABLE. */
    GIO_MASTER_ENABLE: bit(19),
  }),
  /** EEPROM/Flash Control (§10.2.2.3): the bit-banged EEPROM interface and its state. */
  EEC: reg32(0x00010, '82574 §10.2.2.3', {
    EE_SK: bit(0),
    EE_CS: bit(1),
    EE_DI: bit(2),
    EE_DO: bit(3),
    /** Request EEPROM access (bit-banging); wait for EE_GNT. */
    EE_REQ: bit(6),
    EE_GNT: bit(7),
    /** EEPROM Present. */
    EE_PRES: bit(8),
    /** Auto Read Done: the device has loaded its configuration from the EEPROM. */
    AUTO_RD: bit(9),
  }),
  /** EEPROM Read (§10.2.2.4): write START with ADDR, poll DONE, take DATA. */
  EERD: reg32(0x00014, '82574 §10.2.2.4', {
    START: bit(0),
    DONE: bit(1),
    /** Word address. */
    ADDR: bits(15, 2),
    /** The word read. */
    DATA: bits(31, 16),
  }),
  /** Extended Device Control (§10.2.2.5). */
  CTRL_EXT: reg32(0x00018, '82574 §10.2.2.5', {
    /** Speed Select Bypass. */
    SPD_BYPS: bit(15),
    /** Relaxed Ordering Disable. */
    RO_DIS: bit(17),
    /** Extended Interrupt Auto Mask Enable (EIAM, MSI-X). */
    EIAME: bit(24),
    /** Interrupt Acknowledge Auto-mask Enable: reading ICR clears the IMS bits set in IAM. */
    IAME: bit(27),
    /** Driver Loaded: tells firmware the driver owns the device. */
    DRV_LOAD: bit(28),
    /** Interrupt timers cleared when ICR is read. */
    INT_TIMERS_CLEAR_ENA: bit(29),
    /** MSI-X pending bits cleared on read (PBA support). */
    PBA_CLR: bit(31),
  }),
  /** MDI Control: PHY register access (§10.2.2.7). The simulator does not model a PHY. */
  MDIC: reg32(0x00020, '82574 §10.2.2.7', {
    DATA: bits(15, 0),
    /** PHY register address. */
    REGADD: bits(20, 16),
    /** PHY address. */
    PHYADD: bits(25, 21),
    /** Opcode: 01b write, 10b read. */
    OP: bits(27, 26),
    /** Ready: the access completed. */
    R: bit(28),
    /** Interrupt on completion. */
    I: bit(29),
    /** Error. */
    E: bit(30),
  }),
});

/** Speed in Mb/s from a STATUS value (§10.2.2.2: 00b 10, 01b 100, 1xb 1000). */
export function statusSpeed(status: number): 10 | 100 | 1000 {
  const s = getField(status, GENERAL.STATUS.SPEED);
  return s === 0 ? 10 : s === 1 ? 100 : 1000;
}

/**
 * The EEPROM (NVM) map the driver and the model share (82574 datasheet chapter 6, NVM map): the
 * Ethernet address in words 0..2, low byte first; words 0x00..0x3F sum to 0xBABA, word 0x3F
 * being chosen to make it so.
 */
export const NVM = Object.freeze({
  /** Ethernet address bytes 0-1, 2-3, 4-5 (low byte first). */
  MAC0: 0x00,
  MAC1: 0x01,
  MAC2: 0x02,
  /** The checksum word; words 0x00..CHECKSUM sum to CHECKSUM_SUM. */
  CHECKSUM: 0x3f,
  CHECKSUM_SUM: 0xbaba,
});
