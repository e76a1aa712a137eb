/**
 * The 82574L's register map: every register the driver and the simulator use, with its fields,
 * declared once in the style of spec/field.ts, grouped by the datasheet's sections:
 * general.ts (§10.2.2), interrupts.ts (§10.2.4), receive.ts (§10.2.5), transmit.ts (§10.2.6),
 * statistics.ts. `REG` gathers them all by mnemonic, so code reads `REG.CTRL.offset`,
 * `REG.CTRL.SLU.mask`, `getField(v, REG.EERD.DATA)`.
 *
 * Source: Intel 82574 GbE Controller Family Datasheet (317694), chapter 10, and chapter 9 for the
 * PCI identity and BARs. Offsets are byte offsets in BAR0; every register is 32 bits wide and is
 * accessed with exactly one 32-bit access. The simulator (sim/e1000e) imports this map too; QEMU's
 * e1000e in the lab keeps both honest.
 */
import { GENERAL } from './general.js';
import { INTERRUPTS } from './interrupts.js';
import { RECEIVE } from './receive.js';
import { TRANSMIT } from './transmit.js';
import { STAT } from './statistics.js';

export { GENERAL, NVM, statusSpeed } from './general.js';
export { INTERRUPTS, CAUSE } from './interrupts.js';
export { RECEIVE, MTA_DWORDS, RAR_ENTRIES, mtaOffset, ralOffset, rahOffset, rctlBufferSize } from './receive.js';
export { TRANSMIT, TIPG_COPPER } from './transmit.js';
export { STAT, STAT32, STAT64, STAT_FIRST, STAT_LAST } from './statistics.js';

/** Every register, by its datasheet mnemonic (test/spec/e1000e checks that no group reuses a name or an offset). */
export const REG = Object.freeze({ ...GENERAL, ...INTERRUPTS, ...RECEIVE, ...TRANSMIT, ...STAT });
/** A register's mnemonic. */
export type RegName = keyof typeof REG;

/** BAR0: 128 KiB of memory-mapped registers (a 32-bit memory BAR). */
export const BAR0_SIZE = 0x20000;

/** The 82574L's PCI identity and BAR layout (datasheet chapter 9; what QEMU's e1000e reports too). */
export const PCI_ID = Object.freeze({
  VENDOR: 0x8086,
  DEVICE_82574L: 0x10d3,
  /** Class code: network controller (02h), Ethernet (00h), programming interface 00h. */
  CLASS: 0x020000,
});

/** MSI-X: 5 vectors, the table at offset 0 and the PBA at 0x2000 of the 16 KiB BAR3. */
export const MSIX_LAYOUT = Object.freeze({
  VECTORS: 5,
  BAR: 3,
  BAR_SIZE: 0x4000,
  TABLE_OFFSET: 0x0000,
  PBA_OFFSET: 0x2000,
});
