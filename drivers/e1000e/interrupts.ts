/**
 * The driver's interrupts: MSI-X vector 0 or the INTx line, set up after the rings (§4.6), and the
 * wait `waitRx` does on them. One vector serves every cause: the driver polls its rings when woken,
 * as a NAPI-style driver does, so what it needs from an interrupt is only "look now".
 *
 * - MSI-X: RX, TX and other causes routed to vector 0 (IVAR, §10.2.4.9) and auto-cleared on their
 *   message (EIAC, §10.2.4.6). The 82574 (and QEMU 7.2) also auto-mask a queue cause in IMS once
 *   its message is sent, so `rearm()` writes IMS again before each wait.
 * - INTx (INTA#): RX and link causes unmasked. The line is level-triggered: the handler reads ICR,
 *   which clears the causes and deasserts it (§10.2.4.1), before the platform unmasks it.
 * - poll: every cause stays masked; nothing here runs.
 */
import type { IrqVector, Platform, RegisterSpace } from '../contract/platform.js';
import { REG } from '../../spec/e1000e/registers.js';
import { E1000eError } from './errors.js';
import type { E1000eInterruptMode } from './options.js';

const { ICR, IVAR } = REG;
/** Causes unmasked in MSI-X mode: RX and link, and their queue causes. */
const MSIX_IMS = (ICR.RXT0.mask | ICR.RXO.mask | ICR.LSC.mask | ICR.RXQ0.mask | ICR.OTHER.mask) >>> 0;
/** Causes unmasked in INTx mode: RX and link (no auto-mask there). */
const INTX_IMS = (ICR.RXT0.mask | ICR.RXO.mask | ICR.LSC.mask) >>> 0;
/** The causes auto-cleared on their MSI-X message: the three queue causes. */
const MSIX_EIAC = (REG.EIAC.RXQ0.mask | REG.EIAC.TXQ0.mask | REG.EIAC.OTHER.mask) >>> 0;
/** IVAR: RX, TX and other causes on MSI-X vector 0, each entry valid. */
const IVAR_ALL_ON_VECTOR_0 = (IVAR.RXQ0_VALID.mask | IVAR.TXQ0_VALID.mask | IVAR.OTHER_VALID.mask) >>> 0;
const IMS_AT = REG.IMS.offset;
const ICR_AT = ICR.offset;

export class InterruptWait {
  readonly mode: E1000eInterruptMode;
  /** Interrupts taken since open. */
  count = 0;
  private readonly platform: Platform;
  private readonly regs: RegisterSpace;
  private vectors: IrqVector[] = [];
  private wake: (() => void) | null = null;
  private readonly fired = (): void => {
    this.count++;
    const w = this.wake;
    if (w !== null) {
      this.wake = null;
      w();
    }
  };

  constructor(platform: Platform, regs: RegisterSpace, mode: E1000eInterruptMode) {
    this.platform = platform;
    this.regs = regs;
    this.mode = mode;
  }

  /** Enable the mode's vector and unmask its causes (nothing in poll mode). */
  enable(): void {
    if (this.mode === 'msix') this.enableMsix();
    else if (this.mode === 'intx') this.enableIntx();
  }

  private enableMsix(): void {
    const irq = this.platform.irq;
    if (irq.count('msix') < 1) {
      throw new E1000eError('ERR_E1000E_IRQ', `${this.platform.name}: MSI-X asked for, but the function offers no MSI-X vector`, {
        fix: "open with { interrupts: 'poll' }",
      });
    }
    this.vectors = irq.enable('msix', 1);
    this.vectors[0]!.onFire(this.fired);
    const r = this.regs;
    r.write32(IVAR.offset, IVAR_ALL_ON_VECTOR_0);
    r.write32(REG.CTRL_EXT.offset, (r.read32(REG.CTRL_EXT.offset) | REG.CTRL_EXT.PBA_CLR.mask) >>> 0);
    r.write32(REG.EIAC.offset, MSIX_EIAC);
    r.write32(IMS_AT, MSIX_IMS);
  }

  private enableIntx(): void {
    const irq = this.platform.irq;
    if (irq.count('intx') < 1) {
      throw new E1000eError('ERR_E1000E_IRQ', `${this.platform.name}: INTx asked for, but the function has no interrupt pin routed`, {
        fix: "open with { interrupts: 'msix' } or { interrupts: 'poll' }",
      });
    }
    this.vectors = irq.enable('intx', 1);
    const regs = this.regs;
    this.vectors[0]!.onFire(() => {
      regs.read32(ICR_AT);
      this.fired();
    });
    regs.write32(IMS_AT, INTX_IMS);
  }

  /** MSI-X: unmask again what the last message auto-masked. Call before looking at the ring, then wait. */
  rearm(): void {
    if (this.mode === 'msix') this.regs.write32(IMS_AT, MSIX_IMS);
  }

  /** Wait until the vector fires or `ms` passes (MSI-X and INTx modes). */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** Disable the vector (at close). */
  disable(): void {
    if (this.vectors.length) {
      this.platform.irq.disable();
      this.vectors = [];
    }
  }
}
