/**
 * The 82574L's statistics registers the driver and the model use (datasheet 317694, §10.2,
 * statistics registers). Every one is read-only and cleared when read; a 32-bit counter sticks at
 * its maximum. The 64-bit octet counters are low/high pairs: read the low dword first, then the
 * high one; reading the high dword clears the pair.
 */
import { reg32 } from '../field.js';

const SPEC = '82574 §10.2 (statistics)';

export const STAT = Object.freeze({
  /** CRC Error Count. */
  CRCERRS: reg32(0x04000, SPEC, {}),
  /** RX Error Count. */
  RXERRC: reg32(0x0400c, SPEC, {}),
  /** Missed Packets Count: frames dropped for want of room. */
  MPC: reg32(0x04010, SPEC, {}),
  /** Good Packets Received Count. */
  GPRC: reg32(0x04074, SPEC, {}),
  /** Broadcast Packets Received Count. */
  BPRC: reg32(0x04078, SPEC, {}),
  /** Multicast Packets Received Count. */
  MPRC: reg32(0x0407c, SPEC, {}),
  /** Good Packets Transmitted Count. */
  GPTC: reg32(0x04080, SPEC, {}),
  /** Good Octets Received Count, low and high. */
  GORCL: reg32(0x04088, SPEC, {}),
  GORCH: reg32(0x0408c, SPEC, {}),
  /** Good Octets Transmitted Count, low and high. */
  GOTCL: reg32(0x04090, SPEC, {}),
  GOTCH: reg32(0x04094, SPEC, {}),
  /** Receive No Buffers Count. */
  RNBC: reg32(0x040a0, SPEC, {}),
  /** Receive Undersize Count. */
  RUC: reg32(0x040a4, SPEC, {}),
  /** Receive Oversize Count. */
  ROC: reg32(0x040ac, SPEC, {}),
  /** Total Octets Received, low and high. */
  TORL: reg32(0x040c0, SPEC, {}),
  TORH: reg32(0x040c4, SPEC, {}),
  /** Total Octets Transmitted, low and high. */
  TOTL: reg32(0x040c8, SPEC, {}),
  TOTH: reg32(0x040cc, SPEC, {}),
  /** Total Packets Received. */
  TPR: reg32(0x040d0, SPEC, {}),
  /** Total Packets Transmitted. */
  TPT: reg32(0x040d4, SPEC, {}),
  /** Multicast Packets Transmitted Count. */
  MPTC: reg32(0x040f0, SPEC, {}),
  /** Broadcast Packets Transmitted Count. */
  BPTC: reg32(0x040f4, SPEC, {}),
});

/** The statistics block: first and last dword offsets (0x04000..0x040FC). */
export const STAT_FIRST = 0x04000;
export const STAT_LAST = 0x040fc;

/** The 32-bit statistics (not halves of a pair). */
export const STAT32 = Object.freeze(['CRCERRS', 'RXERRC', 'MPC', 'GPRC', 'BPRC', 'MPRC', 'GPTC', 'RNBC', 'RUC', 'ROC', 'TPR', 'TPT', 'MPTC', 'BPTC'] as const);

/** The 64-bit counters as [low, high] register names. */
export const STAT64 = Object.freeze([
  ['GORCL', 'GORCH'],
  ['GOTCL', 'GOTCH'],
  ['TORL', 'TORH'],
  ['TOTL', 'TOTH'],
] as const);
