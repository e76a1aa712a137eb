/**
 * The 82574L's interrupt registers (datasheet 317694, §10.2.4 "Interrupt Register Descriptions").
 * ICR, ICS, IMS, IMC and IAM share one layout of cause bits, declared once (`CAUSE`); EIAC holds
 * the MSI-X queue causes, IVAR routes them to MSI-X vectors.
 */
import { bit, bits, reg32 } from '../field.js';

/** Interrupt cause bits, the layout of ICR, ICS, IMS, IMC and IAM (§10.2.4.1). */
export const CAUSE = Object.freeze({
  /** Transmit Descriptor Written Back. */
  TXDW: bit(0),
  /** Transmit Queue Empty. */
  TXQE: bit(1),
  /** Link Status Change. */
  LSC: bit(2),
  /** Receive Descriptor Minimum Threshold reached (RCTL.RDMTS). */
  RXDMT0: bit(4),
  /** Receiver Overrun: a frame was dropped for want of descriptors. */
  RXO: bit(6),
  /** Receiver Timer: frames were written to host memory. */
  RXT0: bit(7),
  /** MDI Access Complete. */
  MDAC: bit(9),
  /** Transmit Descriptor Low threshold hit. */
  TXD_LOW: bit(15),
  /** Small Receive Packet Detected. */
  SRPD: bit(16),
  /** Receive ACK frame detected. */
  ACK: bit(17),
  /** Manageability event. */
  MNG: bit(18),
  /** Receive Queue 0 (MSI-X). */
  RXQ0: bit(20),
  /** Receive Queue 1 (MSI-X). */
  RXQ1: bit(21),
  /** Transmit Queue 0 (MSI-X). */
  TXQ0: bit(22),
  /** Transmit Queue 1 (MSI-X). */
  TXQ1: bit(23),
  /** Other causes (MSI-X): link and the rest. */
  OTHER: bit(24),
});

/** The MSI-X queue causes (EIAC's layout, §10.2.4.6). */
const QUEUE_CAUSE = Object.freeze({ RXQ0: CAUSE.RXQ0, RXQ1: CAUSE.RXQ1, TXQ0: CAUSE.TXQ0, TXQ1: CAUSE.TXQ1, OTHER: CAUSE.OTHER });

export const INTERRUPTS = Object.freeze({
  /** Interrupt Cause Read (§10.2.4.1): read-to-clear (when IMS is 0 or INT_ASSERTED is set), write 1 to clear. */
  ICR: reg32(0x000c0, '82574 §10.2.4.1', {
    ...CAUSE,
    /** Interrupt Asserted: an unmasked cause is pending (INTx/MSI). */
    INT_ASSERTED: bit(31),
  }),
  /** Interrupt Throttling Rate (§10.2.4.2): minimum interval between interrupts. */
  ITR: reg32(0x000c4, '82574 §10.2.4.2', {
    /** In 256 ns units; 0 disables throttling. */
    INTERVAL: bits(15, 0),
  }),
  /** Interrupt Cause Set (§10.2.4.3): software raises causes. */
  ICS: reg32(0x000c8, '82574 §10.2.4.3', CAUSE),
  /** Interrupt Mask Set, reads back the mask (§10.2.4.4). */
  IMS: reg32(0x000d0, '82574 §10.2.4.4', CAUSE),
  /** Interrupt Mask Clear, write-only (§10.2.4.5). */
  IMC: reg32(0x000d8, '82574 §10.2.4.5', CAUSE),
  /** Extended Interrupt Auto Clear (§10.2.4.6): MSI-X queue causes cleared (and masked) once their message is sent. */
  EIAC: reg32(0x000dc, '82574 §10.2.4.6', QUEUE_CAUSE),
  /** Interrupt Acknowledge Auto Mask (§10.2.4.7): causes masked on an ICR read when CTRL_EXT.IAME is set. */
  IAM: reg32(0x000e0, '82574 §10.2.4.7', CAUSE),
  /**
   * Interrupt Vector Allocation (§10.2.4.9): the MSI-X vector of each queue cause (the
   * datasheet's INT_ALLOC[0..4]) and the bit that makes each entry valid.
   */
  IVAR: reg32(0x000e4, '82574 §10.2.4.9', {
    RXQ0_VECTOR: bits(2, 0),
    RXQ0_VALID: bit(3),
    RXQ1_VECTOR: bits(6, 4),
    RXQ1_VALID: bit(7),
    TXQ0_VECTOR: bits(10, 8),
    TXQ0_VALID: bit(11),
    TXQ1_VECTOR: bits(14, 12),
    TXQ1_VALID: bit(15),
    OTHER_VECTOR: bits(18, 16),
    OTHER_VALID: bit(19),
  }),
});
