/**
 * What the parts of the 82574L model share: the register file (BAR0 as dwords, where every
 * register that is plain storage keeps its value), the function it is attached to, its DMA engine
 * behind the 2^53 guard, the wire, the model's own counters and the ring-fault state; and the
 * helpers that turn a spec register (spec/e1000e) into a row of the BAR's register table.
 */
import { REG, BAR0_SIZE, type RegName } from '../../spec/e1000e/registers.js';
import type { RegisterDef } from '../regs.js';
import type { PciFunction } from '../pci.js';
import type { FrameSink } from '../wire.js';
import type { E1000eFaultPlan } from './fault-plan.js';

/** The DMA calls the model makes (sim/dma.ts DeviceDma has these): all-or-nothing, false when refused. */
export interface SimDeviceDma {
  read(iova: number, dst: Uint8Array, off: number, len: number): boolean;
  write(iova: number, src: Uint8Array, off: number, len: number): boolean;
}

/** Counters kept by the model itself (not device registers): what a test asks about. */
export interface E1000eModelCounters {
  /** Frames dropped because a DMA transfer was refused (RX buffer write or TX buffer read). */
  rxDmaDropped: number;
  txDmaDropped: number;
  /** Frames dropped because no RX descriptors were available (also in MPC). */
  rxNoDescriptor: number;
  /** Frames not accepted by the address filter. */
  rxFiltered: number;
  /** Frames offered while the receiver was off or the link down. */
  rxDisabled: number;
  /** Frames sent to the wire. */
  txFrames: number;
  /** Extended (DEXT) TX descriptors: not modelled, skipped. */
  txUnsupported: number;
  /** Interrupt messages an IVAR entry routed to an MSI-X vector the function does not have: dropped. */
  irqBadVector: number;
  /** Exceptions inside the model caught by its PCI function: each stopped the device until a reset. */
  deviceFaults: number;
  /** TX runs that stopped at their descriptor budget and went on in a later step. */
  txYields: number;
}

/** The sim's IOVAs are exact numbers below 2^53; anything beyond is refused before the DMA engine. */
export const MAX_IOVA = Number.MAX_SAFE_INTEGER;

const CTRL_I = REG.CTRL.offset >>> 2;
const SLU = REG.CTRL.SLU.mask;

export class E1000eCore {
  /** BAR0 as dwords: `regs[offset >>> 2]`. Registers with side effects keep their value here too. */
  readonly regs = new Uint32Array(BAR0_SIZE / 4);
  readonly counters: E1000eModelCounters = {
    rxDmaDropped: 0,
    txDmaDropped: 0,
    rxNoDescriptor: 0,
    rxFiltered: 0,
    rxDisabled: 0,
    txFrames: 0,
    txUnsupported: 0,
    irqBadVector: 0,
    deviceFaults: 0,
    txYields: 0,
  };
  /**
   * Why the device stopped after an internal error (PciFunction.deviceFault), or null: no transmit,
   * no receive, STATUS.GIO_MASTER_ENABLE reads 0, until CTRL.RST or a function-level reset.
   */
  fatal: string | null = null;
  /** Set when a descriptor fetch or write-back was refused: that ring stops until reset. */
  ringFault: 'rx' | 'tx' | null = null;
  fn: PciFunction | null = null;
  dma: SimDeviceDma | null = null;
  /** Where transmitted frames go (null: no cable), and the peer's burst signal. */
  wire: FrameSink | null = null;
  wireBurst: ((on: boolean) => void) | null = null;
  /** A device fault plan (sim/faults): consulted per frame and per transmit run only when set. */
  plan: E1000eFaultPlan | null = null;

  /** The function's hang switch, or the device stopped by an internal error: no transmit, no receive. */
  get hung(): boolean {
    return this.fatal !== null || (this.fn !== null && this.fn.hung) || (this.plan !== null && this.plan.removed);
  }

  /** STATUS.LU: CTRL.SLU is set and a cable is plugged in. */
  linkUp(): boolean {
    return (this.regs[CTRL_I]! & SLU) !== 0 && this.wire !== null && (this.plan === null || this.plan.linkDownRuns === 0);
  }

  /**
   * DMA through the function's engine. Addresses come from registers and descriptors a hostile
   * driver controls: one at or above 2^53 (no IOMMU domain reaches it; the sim's IOVAs are exact
   * numbers below it) is refused here and logged as not present, like any unmapped IOVA. The
   * per-frame paths (TX descriptor burst and data, RX data) make the same check inline.
   */
  dmaRead(iova: number, dst: Uint8Array, off: number, len: number): boolean {
    return iova + len <= MAX_IOVA ? this.dma!.read(iova, dst, off, len) : this.refuse(iova, len, 'read');
  }

  dmaWrite(iova: number, src: Uint8Array, off: number, len: number): boolean {
    return iova + len <= MAX_IOVA ? this.dma!.write(iova, src, off, len) : this.refuse(iova, len, 'write');
  }

  /** Log a transfer refused before the engine (beyond 2^53); returns false, the transfer's result. */
  refuse(iova: number, len: number, access: 'read' | 'write'): false {
    const fn = this.fn;
    if (fn !== null) fn.iommu.recordFault(fn.address, iova, len, access, 'not-present');
    return false;
  }

  /** A register-table row for spec register `name` with its behaviour. */
  register(name: RegName, read?: () => number, write?: (value: number) => void): RegisterDef {
    return { offset: REG[name].offset, name, read, write };
  }

  /** A register that is plain storage: reads what was written, through `writable` (bits outside it read 0). */
  stored(name: RegName, writable = 0xffffffff): RegisterDef {
    const r = this.regs;
    const i = REG[name].offset >>> 2;
    return this.register(
      name,
      () => r[i]!,
      (v) => {
        r[i] = (v & writable) >>> 0;
      },
    );
  }
}
