/**
 * The simulated controller's register file (NVMe 1.4 §3.1) on sim/regs.ts's RegisterTable: CAP,
 * VS, INTMS/INTMC, CC, CSTS, AQA, ASQ, ACQ and the doorbells with CAP.DSTRD's stride, every
 * offset and field from spec/nvme/registers.ts. A CC write runs the controller's state changes
 * (§7.6.1 enable, §7.3.2 disable, §7.6.2 shutdown); the queue engine hears of them through hooks.
 *
 * BAR0 holds the registers, the doorbells, then the MSI-X table and PBA on pages of their own.
 */
import { RegisterTable } from '../regs.js';
import { getField, isSet, setField } from '../../spec/field.js';
import { encodeCap, QUEUE_BASE_ALIGN, REG, SHN, SHST, VS_1_4_0, CAP_CSS_NVM, CC_CSS_NVM } from '../../spec/nvme/registers.js';
import { CQE_SIZE_LOG2, SQE_SIZE_LOG2 } from '../../spec/nvme/queue.js';
import { MSIX_ENTRY } from '../../spec/pci/capabilities.js';
import type { SimNvmeConfig } from './config.js';

/** What the register file tells the rest of the controller. */
export interface RegisterHooks {
  /** CC.EN 0 -> 1 was accepted: create the admin queue pair from ASQ/ACQ and AQA (sizes are entries, not 0's based). */
  enable(asq: number, asqEntries: number, acq: number, acqEntries: number): void;
  /** CC.EN 1 -> 0 (§7.3.2), or a function-level reset: delete every queue, forget everything in flight. */
  disable(): void;
  /** A doorbell write: SQ `qid`'s new tail, or (cq) CQ `qid`'s new head. */
  doorbell(qid: number, cq: boolean, value: number): void;
  /** Whether the controller processes commands now (CSTS.RDY set, CFS clear, no shutdown) changed. */
  running(on: boolean): void;
  /** A device fault plan's say on CC.EN 0 -> 1 (true: never become ready) and 1 -> 0 (true: ignore the reset). */
  refuseEnable?: () => boolean;
  refuseDisable?: () => boolean;
}

const TWO32 = 0x1_0000_0000;
const PAGE = 4096;
/** CC bits a host may set (§3.1.5): everything but reserved bits 3:1 and 31:24. */
const CC_WRITABLE = REG.CC.EN.mask | REG.CC.CSS.mask | REG.CC.MPS.mask | REG.CC.AMS.mask | REG.CC.SHN.mask | REG.CC.IOSQES.mask | REG.CC.IOCQES.mask;
const AQA_WRITABLE = REG.AQA.ASQS.mask | REG.AQA.ACQS.mask;
/** ASQ/ACQ bits 11:0 are reserved (§3.1.9, §3.1.10). */
const BASE_RESERVED = QUEUE_BASE_ALIGN - 1;

export class NvmeRegisterFile {
  readonly table: RegisterTable;
  /** BAR0's size, and where the MSI-X table and PBA are in it. */
  readonly size: number;
  readonly msixTableOffset: number;
  readonly msixPbaOffset: number;
  /** The last reason the controller refused to become ready or went fatal. */
  lastError = '';
  private readonly cap: bigint;
  private readonly hooks: RegisterHooks;
  private readonly doorbellStride: number;
  private cc = 0;
  private csts = 0;
  private aqa = 0;
  private asq = 0;
  private acq = 0;
  private intms = 0;

  constructor(o: SimNvmeConfig, hooks: RegisterHooks) {
    this.hooks = hooks;
    this.cap = encodeCap({ MQES: o.maxQueueEntries - 1, CQR: 1, TO: o.timeout, DSTRD: o.dstrd, CSS: CAP_CSS_NVM, MPSMIN: 0, MPSMAX: 0 });
    this.doorbellStride = 4 << o.dstrd;
    const dbStart = REG.SQ0TDBL.offset;
    const dbEnd = dbStart + 2 * (o.maxIoQueues + 1) * this.doorbellStride;
    this.msixTableOffset = Math.ceil(dbEnd / PAGE) * PAGE;
    this.msixPbaOffset = this.msixTableOffset + Math.ceil((o.msixVectors * MSIX_ENTRY.size) / PAGE) * PAGE;
    let size = 0x4000;
    while (size < this.msixPbaOffset + PAGE) size *= 2;
    this.size = size;
    const R = REG;
    this.table = new RegisterTable(
      size,
      [
        { offset: R.CAP.offset, name: 'CAP', read: () => Number(this.cap % BigInt(TWO32)) },
        { offset: R.CAP.offset + 4, name: 'CAP.hi', read: () => Number(this.cap / BigInt(TWO32)) },
        { offset: R.VS.offset, name: 'VS', read: () => VS_1_4_0 },
        { offset: R.INTMS.offset, name: 'INTMS', read: () => this.intms, write: (v) => (this.intms = (this.intms | v) >>> 0) },
        { offset: R.INTMC.offset, name: 'INTMC', read: () => this.intms, write: (v) => (this.intms = (this.intms & ~v) >>> 0) },
        { offset: R.CC.offset, name: 'CC', read: () => this.cc, write: (v) => this.writeCc(v) },
        { offset: R.CSTS.offset, name: 'CSTS', read: () => this.csts },
        { offset: R.AQA.offset, name: 'AQA', read: () => this.aqa, write: (v) => (this.aqa = (v & AQA_WRITABLE) >>> 0) },
        { offset: R.ASQ.offset, name: 'ASQ', read: () => this.asq % TWO32, write: (v) => (this.asq = lowDword(this.asq, v)) },
        { offset: R.ASQ.offset + 4, name: 'ASQ.hi', read: () => Math.floor(this.asq / TWO32), write: (v) => (this.asq = highDword(this.asq, v)) },
        { offset: R.ACQ.offset, name: 'ACQ', read: () => this.acq % TWO32, write: (v) => (this.acq = lowDword(this.acq, v)) },
        { offset: R.ACQ.offset + 4, name: 'ACQ.hi', read: () => Math.floor(this.acq / TWO32), write: (v) => (this.acq = highDword(this.acq, v)) },
      ],
      [{ start: dbStart, end: dbEnd, name: 'doorbells', read: () => 0, write: (off, v) => this.doorbell(off, v) }],
    );
  }

  /** Processing commands: CSTS.RDY set, CSTS.CFS clear, no shutdown under way or done. */
  get ready(): boolean {
    return isSet(this.csts, REG.CSTS.RDY) && !isSet(this.csts, REG.CSTS.CFS) && getField(this.csts, REG.CSTS.SHST) === SHST.NORMAL;
  }

  /** Controller Fatal Status (§3.1.6): the controller stops processing commands until a reset. */
  fatal(reason: string): void {
    this.csts = setField(this.csts, REG.CSTS.CFS, 1);
    this.lastError = reason;
    this.hooks.running(false);
  }

  /** Function-level reset: every register to its power-on value, every queue forgotten. */
  reset(): void {
    this.cc = 0;
    this.aqa = 0;
    this.asq = 0;
    this.acq = 0;
    this.intms = 0;
    this.csts = 0;
    this.controllerReset();
  }

  /** CC write (§3.1.5, §7.6.1): EN 0 -> 1 brings the controller up, 1 -> 0 resets it; SHN shuts it down. */
  private writeCc(v: number): void {
    const wasEn = isSet(this.cc, REG.CC.EN);
    const en = isSet(v, REG.CC.EN);
    this.cc = (v & CC_WRITABLE) >>> 0;
    if (!wasEn && en) {
      const why = this.enableProblem();
      if (why !== '') {
        // The controller does not become ready; a driver sees CSTS.RDY stay 0 until CAP.TO.
        this.lastError = why;
        return;
      }
      if (this.hooks.refuseEnable?.() === true) {
        this.lastError = 'fault plan nvme.never-ready: CSTS.RDY is never set';
        return;
      }
      this.hooks.enable(this.asq, getField(this.aqa, REG.AQA.ASQS) + 1, this.acq, getField(this.aqa, REG.AQA.ACQS) + 1);
      this.csts = setField(setField(this.csts, REG.CSTS.SHST, SHST.NORMAL), REG.CSTS.RDY, 1);
    } else if (wasEn && !en) {
      if (this.hooks.refuseDisable?.() === true) {
        // The write is lost: CC.EN still reads 1, CSTS.RDY stays set and every queue stays.
        this.cc = setField(this.cc, REG.CC.EN, 1);
        this.lastError = 'fault plan nvme.reset-fails: CC.EN 1 -> 0 ignored';
        return;
      }
      this.controllerReset();
    }
    if (en && getField(v, REG.CC.SHN) !== SHN.NONE) {
      // Shutdown (§7.6.2): nothing is buffered, so it completes at once; processing stops.
      this.csts = setField(this.csts, REG.CSTS.SHST, SHST.COMPLETE);
    }
    this.hooks.running(this.ready);
  }

  private enableProblem(): string {
    const cc = this.cc;
    if (getField(cc, REG.CC.CSS) !== CC_CSS_NVM) return 'CC.CSS is not the NVM command set';
    if (getField(cc, REG.CC.MPS) !== 0) return 'CC.MPS is outside CAP.MPSMIN..MPSMAX (4 KiB only)';
    if (getField(cc, REG.CC.IOSQES) !== SQE_SIZE_LOG2 || getField(cc, REG.CC.IOCQES) !== CQE_SIZE_LOG2) {
      return `CC.IOSQES/IOCQES are not ${SQE_SIZE_LOG2}/${CQE_SIZE_LOG2} (64-byte SQEs, 16-byte CQEs)`;
    }
    if (this.asq === 0 || this.acq === 0 || this.asq % QUEUE_BASE_ALIGN !== 0 || this.acq % QUEUE_BASE_ALIGN !== 0)
      return 'ASQ/ACQ are zero or not 4 KiB aligned';
    if (getField(this.aqa, REG.AQA.ASQS) === 0 || getField(this.aqa, REG.AQA.ACQS) === 0) return 'AQA sizes below 2 entries';
    if (isSet(this.csts, REG.CSTS.CFS)) return 'controller fatal status is set';
    return '';
  }

  /** CC.EN 1 -> 0 (§7.3.2): every queue deleted, CSTS.RDY, SHST and CFS clear. */
  private controllerReset(): void {
    this.hooks.disable();
    this.csts = (this.csts & ~(REG.CSTS.RDY.mask | REG.CSTS.SHST.mask | REG.CSTS.CFS.mask)) >>> 0;
    this.hooks.running(false);
  }

  /**
   * Doorbell write (§3.1.24, §3.1.25): even slots are SQ tails, odd ones CQ heads. The whole
   * value goes on, reserved bits 31:16 included, so a value past the queue is seen as bad.
   */
  private doorbell(off: number, value: number): void {
    const rel = (off - REG.SQ0TDBL.offset) / this.doorbellStride;
    if (!Number.isInteger(rel)) return;
    this.hooks.doorbell(rel >>> 1, (rel & 1) === 1, value);
  }
}

/** A 64-bit base register after a write of its low dword (reserved bits 11:0 read 0). */
function lowDword(reg: number, v: number): number {
  return Math.floor(reg / TWO32) * TWO32 + ((v & ~BASE_RESERVED) >>> 0);
}

/** A 64-bit base register after a write of its high dword. */
function highDword(reg: number, v: number): number {
  return (reg % TWO32) + v * TWO32;
}
