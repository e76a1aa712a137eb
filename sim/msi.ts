/**
 * MSI for a simulated function (PCI Local Bus 3.0 §6.8.1), the 64-bit layout with per-vector
 * masking. Unlike MSI-X its whole state lives in config space, so this class works on the
 * function's config bytes at the capability's offset:
 *
 *   +0x02 Message Control: bit 0 MSI Enable, 3:1 Multiple Message Capable (log2 of the vectors the
 *         function wants), 6:4 Multiple Message Enable (log2 of what software granted), bit 7
 *         64-bit Address Capable, bit 8 Per-vector Masking Capable
 *   +0x04 Message Address, +0x08 Message Upper Address, +0x0c Message Data
 *   +0x10 Mask Bits (one per vector), +0x14 Pending Bits (read-only)
 *
 * A function granted fewer vectors than it raises folds the vector number into the granted ones
 * (it may only modify the low MME bits of the data, §6.8.1.6): vector & (granted - 1).
 */
import { getField, setField } from '../spec/field.js';
import { MSI } from '../spec/pci/capabilities.js';
import { SimError } from './errors.js';

const MC = MSI.MC.offset,
  ADDR_LO = MSI.ADDR_LO.offset,
  ADDR_HI = MSI.ADDR_HI.offset,
  DATA = MSI.DATA.offset;
const MASK = MSI.MASK.offset,
  PENDING = MSI.PENDING.offset;
const ENABLE = MSI.MC.ENABLE.mask;

export class Msi {
  readonly vectors: number;
  readonly offset: number;
  private readonly cfg: DataView;
  /** Where delivered messages go (the PciFunction forwards them to the platform). */
  sink: ((vector: number) => void) | undefined;
  delivered = 0;
  lost = 0;

  constructor(cfg: DataView, offset: number, vectors: number) {
    if (![1, 2, 4, 8, 16, 32].includes(vectors))
      throw new SimError('ERR_SIM_ARG', `MSI vectors ${vectors}: must be 1, 2, 4, 8, 16 or 32 (§6.8.1.3)`, {
        fix: "declare the model's msi.vectors as a power of two up to 32",
      });
    this.cfg = cfg;
    this.offset = offset;
    this.vectors = vectors;
  }

  /** The read-only part of Message Control: what the function can do. */
  get capabilities(): number {
    return setField(0, MSI.MC.MMC, Math.log2(this.vectors)) | MSI.MC.ADDR64.mask | MSI.MC.PVM.mask;
  }

  /** Writable bits per register, for the function's config-space write mask. */
  static readonly WRITABLE: readonly [number, number, number][] = [
    [MC, 2, ENABLE | MSI.MC.MME.mask],
    [ADDR_LO, 4, 0xfffffffc],
    [ADDR_HI, 4, 0xffffffff],
    [DATA, 2, 0xffff],
  ];

  get enabled(): boolean {
    return (this.cfg.getUint16(this.offset + MC, true) & ENABLE) !== 0;
  }

  /** Vectors software granted (Multiple Message Enable), never more than the function has. */
  get granted(): number {
    const mme = getField(this.cfg.getUint16(this.offset + MC, true), MSI.MC.MME);
    return Math.min(1 << mme, this.vectors);
  }

  isPending(vector: number): boolean {
    return ((this.cfg.getUint32(this.offset + PENDING, true) >>> vector) & 1) === 1;
  }

  raise(vector: number): 'delivered' | 'pending' | 'disabled' {
    if (!this.enabled) return 'disabled';
    const v = vector & (this.granted - 1);
    if (((this.cfg.getUint32(this.offset + MASK, true) >>> v) & 1) === 1) {
      this.cfg.setUint32(this.offset + PENDING, (this.cfg.getUint32(this.offset + PENDING, true) | (1 << v)) >>> 0, true);
      return 'pending';
    }
    this.deliver(v);
    return 'delivered';
  }

  /** After a config write to the capability: deliver pending vectors that are now unmasked. */
  configWritten(): void {
    if (!this.enabled) return;
    let pending = this.cfg.getUint32(this.offset + PENDING, true);
    if (pending === 0) return;
    const mask = this.cfg.getUint32(this.offset + MASK, true);
    for (let v = 0; v < this.vectors; v++) {
      const bit = 1 << v;
      if ((pending & bit) !== 0 && (mask & bit) === 0) {
        pending &= ~bit;
        this.cfg.setUint32(this.offset + PENDING, pending >>> 0, true);
        this.deliver(v);
      }
    }
  }

  /** Power-on / FLR: disabled, one vector granted, nothing masked or pending. */
  reset(): void {
    this.cfg.setUint16(this.offset + MC, this.capabilities, true);
    this.cfg.setUint32(this.offset + ADDR_LO, 0, true);
    this.cfg.setUint32(this.offset + ADDR_HI, 0, true);
    this.cfg.setUint16(this.offset + DATA, 0, true);
    this.cfg.setUint32(this.offset + MASK, 0, true);
    this.cfg.setUint32(this.offset + PENDING, 0, true);
  }

  private deliver(v: number): void {
    if (this.sink === undefined) {
      this.lost++;
      return;
    }
    this.delivered++;
    this.sink(v);
  }
}
