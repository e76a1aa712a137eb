/**
 * MSI-X for a simulated function (PCI Local Bus 3.0 §6.8.2).
 *
 * The table (16 bytes per vector: Message Address, Message Upper Address, Message Data, Vector
 * Control) and the Pending Bit Array live in one of the function's BARs; the PciFunction routes
 * accesses in those ranges here. The capability's Message Control holds MSI-X Enable (bit 15) and
 * Function Mask (bit 14); each entry's Vector Control bit 0 masks one vector.
 *
 * `raise(v)`: a vector the table does not have -> dropped and counted (never an exception: the
 * number may come from a driver-written register); disabled -> not signalled (the function may fall back to INTx); function or vector
 * masked -> the vector's pending bit is set (§6.8.2.9); otherwise the message is delivered to the
 * sink (the platform's IrqVector handlers). Unmasking a vector with its pending bit set delivers it
 * and clears the bit.
 */
import { MSIX, MSIX_ENTRY, MSIX_VECTOR_MASKED } from '../spec/pci/capabilities.js';

const VC_MASKED = MSIX_VECTOR_MASKED.mask;

/** `dropped`: the vector does not exist; the message goes nowhere (counted in `dropped`). */
export type MsixOutcome = 'delivered' | 'pending' | 'disabled' | 'dropped';

export class Msix {
  readonly vectors: number;
  readonly tableSize: number;
  readonly pbaSize: number;
  private readonly table: Uint32Array;
  private readonly pba: Uint32Array;
  enabled = false;
  functionMask = false;
  /** Where delivered messages go (the PciFunction forwards them to the platform). Undefined: lost (counted). */
  sink: ((vector: number) => void) | undefined;
  delivered = 0;
  lost = 0;
  /**
   * Messages for a vector the table does not have (a driver-written vector number, such as an
   * e1000e IVAR entry, naming vector 7 of 5): dropped, as a write to a table entry that does not
   * exist goes nowhere on real hardware, and counted here.
   */
  dropped = 0;

  constructor(vectors: number) {
    this.vectors = vectors;
    this.tableSize = vectors * MSIX_ENTRY.size;
    // The PBA is made of QWORDs (§6.8.2.10).
    this.pbaSize = Math.ceil(vectors / 64) * 8;
    this.table = new Uint32Array(vectors * 4);
    this.pba = new Uint32Array(this.pbaSize / 4);
    this.reset();
  }

  /** Power-on / FLR state: every vector masked, nothing pending, MSI-X disabled. */
  reset(): void {
    this.table.fill(0);
    for (let v = 0; v < this.vectors; v++) this.table[v * 4 + 3] = VC_MASKED;
    this.pba.fill(0);
    this.enabled = false;
    this.functionMask = false;
  }

  raise(vector: number): MsixOutcome {
    // The vector is often driver-written data: out of range is a lost message, never an exception.
    if (!(vector >= 0 && vector < this.vectors) || (vector | 0) !== vector) {
      this.dropped++;
      return 'dropped';
    }
    if (!this.enabled) return 'disabled';
    if (this.functionMask || (this.table[vector * 4 + 3]! & VC_MASKED) !== 0) {
      this.pba[vector >>> 5]! |= 1 << (vector & 31);
      return 'pending';
    }
    this.deliver(vector);
    return 'delivered';
  }

  isMasked(vector: number): boolean {
    return (this.table[vector * 4 + 3]! & VC_MASKED) !== 0;
  }

  isPending(vector: number): boolean {
    return (this.pba[vector >>> 5]! & (1 << (vector & 31))) !== 0;
  }

  /** A write to the capability's Message Control. */
  setControl(messageControl: number): void {
    this.enabled = (messageControl & MSIX.MC.ENABLE.mask) !== 0;
    this.functionMask = (messageControl & MSIX.MC.FMASK.mask) !== 0;
    this.flushPending();
  }

  tableRead32(offset: number): number {
    return this.table[offset >>> 2]!;
  }

  tableWrite32(offset: number, value: number): void {
    const i = offset >>> 2;
    this.table[i] = value >>> 0;
    if ((i & 3) === 3) this.flushPending();
  }

  pbaRead32(offset: number): number {
    return this.pba[offset >>> 2]!;
  }

  /** The PBA is read-only (§6.8.2.10): writes are ignored. */
  pbaWrite32(_offset: number, _value: number): void {}

  private flushPending(): void {
    if (!this.enabled || this.functionMask) return;
    for (let w = 0; w < this.pba.length; w++) {
      let bits = this.pba[w]!;
      if (bits === 0) continue;
      for (let b = 0; b < 32 && bits !== 0; b++) {
        const v = w * 32 + b;
        if ((bits & (1 << b)) !== 0 && !this.isMasked(v)) {
          bits &= ~(1 << b);
          this.pba[w] = bits >>> 0;
          this.deliver(v);
        }
      }
    }
  }

  private deliver(vector: number): void {
    if (this.sink === undefined) {
      this.lost++;
      return;
    }
    this.delivered++;
    this.sink(vector);
  }
}
