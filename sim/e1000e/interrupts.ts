/**
 * The 82574L model's interrupt logic (82574 §10.2.4): ICR (read-to-clear when IMS is 0 or
 * INT_ASSERTED is set, as QEMU 7.2 and §10.2.4.1 describe; write 1 to clear), ICS, IMS, IMC, IAM
 * with CTRL_EXT.IAME, EIAC (auto-clear and auto-mask of a cause once its message is sent: the
 * driver re-arms through IMS), and MSI-X routing by IVAR (§10.2.4.9: RXQ0, TXQ0, OTHER); without
 * MSI-X, vector 0 of whatever the host function delivers (MSI/INTx). No moderation: ITR is stored,
 * not timed.
 */
import { MSIX_LAYOUT, REG } from '../../spec/e1000e/registers.js';
import type { RegisterDef } from '../regs.js';
import type { E1000eCore } from './core.js';

/** How the model raises an interrupt: MSI-X vector `vector`, or vector 0 of MSI/INTx. */
export interface SimIrqLine {
  /** True when MSI-X is enabled in the function's capability (then IVAR routes causes). */
  msixEnabled(): boolean;
  raise(vector: number): void;
}

const { ICR, IVAR, CTRL_EXT } = REG;
const ICR_I = ICR.offset >>> 2;
const IMS_I = REG.IMS.offset >>> 2;
const IAM_I = REG.IAM.offset >>> 2;
const EIAC_I = REG.EIAC.offset >>> 2;
const IVAR_I = IVAR.offset >>> 2;
const CTRL_EXT_I = CTRL_EXT.offset >>> 2;
const IAME = CTRL_EXT.IAME.mask;
const INT_ASSERTED = ICR.INT_ASSERTED.mask;
const RXQ0 = ICR.RXQ0.mask,
  TXQ0 = ICR.TXQ0.mask,
  OTHER = ICR.OTHER.mask;
/** The causes that belong to the receive queue, to the transmit queue, and the queue causes themselves. */
export const RX_CAUSES = (ICR.RXT0.mask | ICR.RXO.mask | ICR.RXDMT0.mask) >>> 0;
export const TX_CAUSES = (ICR.TXDW.mask | ICR.TXQE.mask) >>> 0;
const QUEUE_CAUSES = (RXQ0 | TXQ0 | OTHER) >>> 0;
/** Every cause bit but INT_ASSERTED. */
const CAUSE_BITS = ~INT_ASSERTED >>> 0;

export class Interrupts {
  private readonly core: E1000eCore;
  private readonly regs: Uint32Array;
  private irq: SimIrqLine | null = null;

  constructor(core: E1000eCore) {
    this.core = core;
    this.regs = core.regs;
  }

  attach(irq: SimIrqLine): void {
    this.irq = irq;
  }

  registers(): RegisterDef[] {
    const c = this.core,
      r = this.regs;
    return [
      c.register(
        'ICR',
        () => this.readIcr(),
        (v) => {
          r[ICR_I] = (r[ICR_I]! & ~v) >>> 0;
        },
      ),
      // ICS is write-only in the datasheet; the model reads it back as ICR, without clearing it.
      c.register(
        'ICS',
        () => r[ICR_I]!,
        (v) => this.cause(v),
      ),
      c.register(
        'IMS',
        () => r[IMS_I]!,
        (v) => {
          r[IMS_I] = (r[IMS_I]! | v) >>> 0;
          this.cause(0);
        },
      ),
      c.register(
        'IMC',
        () => 0,
        (v) => {
          r[IMS_I] = (r[IMS_I]! & ~v) >>> 0;
        },
      ),
      c.stored('IAM'),
      c.stored('EIAC'),
      c.stored('IVAR'),
      c.stored('ITR'),
    ];
  }

  /** ICR read (§10.2.4.1): IAM auto-mask with CTRL_EXT.IAME, then clear when IMS is 0 or the interrupt was asserted. */
  private readIcr(): number {
    const r = this.regs;
    const icr = r[ICR_I]!;
    if (icr & INT_ASSERTED && r[CTRL_EXT_I]! & IAME) {
      r[IMS_I] = (r[IMS_I]! & ~r[IAM_I]!) >>> 0;
    }
    if (r[IMS_I] === 0 || icr & INT_ASSERTED) {
      r[ICR_I] = 0;
      if (icr & INT_ASSERTED) this.core.fn?.lowerIntx();
    }
    return icr;
  }

  /** Set cause bits and deliver whatever became pending and unmasked. */
  cause(bits: number): void {
    const r = this.regs;
    const irq = this.irq;
    let icr = (r[ICR_I]! | bits) >>> 0;
    if (irq !== null && irq.msixEnabled()) {
      if (bits & RX_CAUSES) icr |= RXQ0;
      if (bits & TX_CAUSES) icr |= TXQ0;
      if (bits & ~(RX_CAUSES | TX_CAUSES | QUEUE_CAUSES) & CAUSE_BITS) icr |= OTHER;
      const fire = icr & r[IMS_I]! & QUEUE_CAUSES;
      // EIAC (§10.2.4.6): a message for an auto-clear cause clears it in ICR and, unless
      // CTRL_EXT.IAME, masks it in IMS until the driver re-arms it (QEMU 7.2 does the same).
      const autoClear = fire & r[EIAC_I]!;
      icr = (icr & ~autoClear) >>> 0;
      r[ICR_I] = icr;
      if (autoClear && !(r[CTRL_EXT_I]! & IAME)) r[IMS_I] = (r[IMS_I]! & ~autoClear) >>> 0;
      if (fire === 0) return;
      const ivar = r[IVAR_I]!;
      if (fire & RXQ0) this.route(irq, ivar, IVAR.RXQ0_VALID.mask, IVAR.RXQ0_VECTOR.lo, IVAR.RXQ0_VECTOR.max);
      if (fire & TXQ0) this.route(irq, ivar, IVAR.TXQ0_VALID.mask, IVAR.TXQ0_VECTOR.lo, IVAR.TXQ0_VECTOR.max);
      if (fire & OTHER) this.route(irq, ivar, IVAR.OTHER_VALID.mask, IVAR.OTHER_VECTOR.lo, IVAR.OTHER_VECTOR.max);
      return;
    }
    if (icr & r[IMS_I]! & CAUSE_BITS) {
      r[ICR_I] = (icr | INT_ASSERTED) >>> 0;
      if (irq !== null) irq.raise(0);
    } else {
      r[ICR_I] = icr;
    }
  }

  /**
   * Raise the MSI-X vector an IVAR entry names, when the entry is valid. IVAR is driver-written and
   * its vector fields are 3 bits for 5 vectors (§10.2.4.9): a vector the function does not have
   * sends no message (counted in `irqBadVector`).
   */
  private route(irq: SimIrqLine, ivar: number, valid: number, lo: number, max: number): void {
    if (!(ivar & valid)) return;
    const v = (ivar >>> lo) & max;
    if (v >= MSIX_LAYOUT.VECTORS) this.core.counters.irqBadVector++;
    else irq.raise(v);
  }
}
