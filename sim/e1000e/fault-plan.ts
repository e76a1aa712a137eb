/**
 * The 82574L model's side of a device fault plan (sim/faults): which of the model's events are
 * eligible for the plan's class, whether it fires, and what the model does instead. The hooks
 * that ask are in rx.ts (a frame's write-back and data), tx.ts (the end of a transmit run),
 * eeprom.ts (EERD), and model.ts (MSI-X messages, the all-ones BAR after removal, the link). A
 * model built without a plan holds none: each hook is one `null` compare per frame or run.
 */
import { FaultInjector } from '../faults/injector.js';
import { requireDevice, type FaultPlan } from '../faults/plan.js';
import { MSIX_LAYOUT, NVM } from '../../spec/e1000e/registers.js';
import type { E1000eCore } from './core.js';
import { Thunderclap } from './thunderclap.js';

/** What the RX engine does with a frame the plan fired on. */
export const RxFault = Object.freeze({ NONE: 0, WRITEBACK: 1, DD_UNOWNED: 2, FREED: 3 });
/** What the TX engine does at the end of a run the plan fired on. */
export const TxFault = Object.freeze({ NONE: 0, DD_UNOWNED: 1, LINK_FLAP: 2, REMOVAL: 3 });

const RX_KINDS: Readonly<Record<string, number>> = {
  'e1000e.rx-writeback': RxFault.WRITEBACK,
  'e1000e.rx-dd-unowned': RxFault.DD_UNOWNED,
  'e1000e.rx-freed': RxFault.FREED,
};
const TX_KINDS: Readonly<Record<string, number>> = {
  'e1000e.tx-dd-unowned': TxFault.DD_UNOWNED,
  'e1000e.link-flap': TxFault.LINK_FLAP,
  'e1000e.removal': TxFault.REMOVAL,
};

export class E1000eFaultPlan {
  readonly injector: FaultInjector;
  readonly rx: number;
  readonly tx: number;
  /** Surprise removal happened: BAR0 reads all ones, nothing moves. */
  removed = false;
  /** Transmit runs left with the link down (e1000e.link-flap). */
  linkDownRuns = 0;
  /** The hostile device of e1000e.thunderclap, or null: told of every TX descriptor. */
  readonly thunderclap: Thunderclap | null;
  private readonly name: string;

  constructor(plan: FaultPlan, core: E1000eCore) {
    requireDevice(plan, 'e1000e', '82574L model');
    this.injector = new FaultInjector(plan);
    this.name = plan.cls.name;
    this.rx = RX_KINDS[this.name] ?? RxFault.NONE;
    this.tx = TX_KINDS[this.name] ?? TxFault.NONE;
    this.thunderclap = this.name === 'e1000e.thunderclap' ? new Thunderclap(this.injector, core) : null;
  }

  /**
   * The device behaves from now on: no more firings, a removed device is back (plugged in again),
   * the link is up. A campaign calls it before checking that the driver recovers.
   */
  behave(): void {
    this.injector.disarm();
    this.removed = false;
    this.linkDownRuns = 0;
  }

  /** A received frame (of one descriptor when `single`): the RxFault to apply (NONE mostly). */
  rxFrame(single: boolean): number {
    if (this.rx === RxFault.NONE || (this.rx === RxFault.FREED && !single)) return RxFault.NONE;
    return this.injector.fire() ? this.rx : RxFault.NONE;
  }

  /** e1000e.rx-writeback: garble a write-back's length, status and errors in `wb` at `o` (legacy layout, §7.1.4). */
  garbleWriteback(wv: DataView, o: number, bufSize: number): void {
    switch (this.injector.text('kind')) {
      case 'length-over':
        wv.setUint16(o + 8, bufSize + 1 + this.injector.rng.below(0x10000 - bufSize - 1), true);
        return;
      case 'length-zero':
        wv.setUint16(o + 8, 0, true);
        return;
      case 'error-bits':
        wv.setUint8(o + 13, wv.getUint8(o + 13) | 0x01); // ERRORS.CE on data that is fine
        return;
      default:
        wv.setUint8(o + 13, wv.getUint8(o + 13) | 0x08); // ERRORS bit 3: reserved
        wv.setUint8(o + 12, wv.getUint8(o + 12) | 0x88); // STATUS.VP and PIF with no VLAN and an exact match
    }
  }

  /** The end of a transmit run: the TxFault to apply (NONE mostly). While a link flap lasts, it counts the run down. */
  txRun(): number {
    if (this.tx === TxFault.NONE) return TxFault.NONE;
    if (this.linkDownRuns > 0) return TxFault.NONE;
    return this.injector.fire() ? this.tx : TxFault.NONE;
  }

  /** A read of TDH, which holds `head`, on a ring of `n` descriptors: e1000e.head-range may answer one outside the ring. */
  tdh(head: number, n: number): number {
    if (this.name !== 'e1000e.head-range' || !this.injector.fire()) return head;
    return n + this.injector.rng.below(16);
  }

  /** e1000e.link-flap: how many runs the link stays down. */
  get flapRuns(): number {
    return this.injector.num('runs');
  }

  /** An EERD read of word `addr` that yields `value`: the value to answer, or -1 for "DONE never set". */
  eeprom(addr: number, value: number): number {
    if (this.name !== 'e1000e.eeprom' || addr > NVM.MAC2 || !this.injector.fire()) return value;
    switch (this.injector.text('kind')) {
      case 'multicast':
        return addr === NVM.MAC0 ? (value | 0x0001) >>> 0 : value;
      case 'zeros':
        return 0;
      case 'ones':
        return 0xffff;
      default:
        return -1;
    }
  }

  /** An MSI-X message for vector `v`: the vector it goes to (the last one, never configured, when the plan fires). */
  vector(v: number): number {
    if (this.name !== 'e1000e.msix-unconfigured' || !this.injector.fire()) return v;
    return MSIX_LAYOUT.VECTORS - 1;
  }
}
