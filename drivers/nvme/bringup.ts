/**
 * The register-level sequences of the controller: enable (NVMe 1.4 §7.6.1), disable (§7.3.2),
 * normal shutdown (§7.6.2), each wait on CSTS bounded (CAP.TO in 500 ms units, §3.1.1, or the
 * caller's shutdown bound), with the PCI command bits the controller needs before any DMA.
 */
import type { Clock, Platform, RegisterSpace } from '../contract/platform.js';
import { PCI } from '../../spec/pci/config.js';
import { getField, isSet, setField, type BitField } from '../../spec/field.js';
import {
  CAP_CSS_NVM,
  CAP_TO_UNIT_MS,
  CC_AMS_ROUND_ROBIN,
  cqHeadDoorbell,
  CC_CSS_NVM,
  decodeCap,
  encodeCc,
  memoryPageBytes,
  REG,
  SHN,
  SHST,
  type Cap,
} from '../../spec/nvme/registers.js';
import { CQE_SIZE_LOG2, SQE_SIZE_LOG2 } from '../../spec/nvme/queue.js';
import { NvmeControllerError, NvmeTimeoutError } from './errors.js';

/** What `enable` programs into AQA, ASQ and ACQ: the admin queue pair. */
export interface AdminQueueLayout {
  readonly entries: number;
  readonly sq: { readonly iova: bigint };
  readonly cq: { readonly iova: bigint };
}

/** A CSTS read of all ones: the device is gone (surprise removal, a dead link). */
const GONE = 0xffff_ffff;

export class ControllerRegisters {
  readonly regs: RegisterSpace;
  readonly cap: Cap;
  private readonly name: string;
  private readonly clock: Clock;

  constructor(platform: Platform) {
    this.name = platform.name;
    this.clock = platform.clock;
    this.regs = platform.bar(0);
    this.cap = decodeCap(this.regs.read64(REG.CAP.offset));
  }

  /** Bound for CSTS.RDY transitions: CAP.TO in 500 ms units (§3.1.1); at least 500 ms. */
  get readyTimeoutMs(): number {
    return Math.max(1, this.cap.TO) * CAP_TO_UNIT_MS;
  }

  /** Refuse a controller this driver cannot run: no NVM command set, or a minimum page above 4 KiB. */
  checkCapabilities(): void {
    const cap = this.cap;
    if ((cap.CSS & CAP_CSS_NVM) === 0) {
      throw new NvmeControllerError('ERR_NVME_UNSUPPORTED', `${this.name}: CAP.CSS 0x${cap.CSS.toString(16)} lacks the NVM command set`);
    }
    if (this.doorbellQueues() < 0) {
      // A controller whose doorbell stride puts even the admin doorbells beyond BAR0 (a hostile or
      // broken device): every ring would be a write outside the register space.
      throw new NvmeControllerError(
        'ERR_NVME_UNSUPPORTED',
        `${this.name}: CAP.DSTRD ${cap.DSTRD} (a ${4 << cap.DSTRD}-byte doorbell stride) puts the admin completion doorbell at 0x${cqHeadDoorbell(0, cap.DSTRD).toString(16)}, outside BAR0's ${this.regs.size} bytes`,
        'the device reports a doorbell stride its BAR cannot hold: check the device (firmware, BAR sizing) or pass through another controller',
      );
    }
    if (cap.MPSMIN > 0) {
      throw new NvmeControllerError(
        'ERR_NVME_UNSUPPORTED',
        `${this.name}: CAP.MPSMIN ${cap.MPSMIN} (${memoryPageBytes(cap.MPSMIN)} bytes) is above the driver's 4 KiB memory page`,
      );
    }
  }

  /**
   * The highest queue id whose doorbells (SQ tail and CQ head, §3.1.24-25, spaced by CAP.DSTRD) lie
   * inside BAR0; -1 when not even the admin queue's do. I/O queues are created only up to it.
   */
  doorbellQueues(): number {
    const stride = 4 << this.cap.DSTRD;
    // cqHeadDoorbell(y) + 4 <= size  <=>  y <= (size - 4 - 1000h - stride) / (2 * stride)
    return Math.floor((this.regs.size - 4 - REG.SQ0TDBL.offset - stride) / (2 * stride));
  }

  /** PCI command register (PCI Local Bus 3.0 §6.2.2): memory space and bus master on, before any DMA. */
  static enableBusMastering(platform: Platform): void {
    const at = PCI.COMMAND.offset;
    platform.config.write16(at, platform.config.read16(at) | PCI.COMMAND.MEMORY_SPACE.mask | PCI.COMMAND.BUS_MASTER.mask);
  }

  /** §7.6.1 steps 1-7: disable, wait RDY=0, program AQA/ASQ/ACQ and CC, enable, wait RDY=1. */
  async enable(admin: AdminQueueLayout): Promise<void> {
    const cc = this.regs.read32(REG.CC.offset);
    if (isSet(cc, REG.CC.EN)) this.regs.write32(REG.CC.offset, setField(cc, REG.CC.EN, 0));
    await this.waitCsts(REG.CSTS.RDY, 0, 'CSTS.RDY to clear after CC.EN=0', true);
    const size = admin.entries - 1;
    this.regs.write32(REG.AQA.offset, setField(setField(0, REG.AQA.ASQS, size), REG.AQA.ACQS, size));
    this.regs.write64(REG.ASQ.offset, admin.sq.iova);
    this.regs.write64(REG.ACQ.offset, admin.cq.iova);
    // NVM command set, 4 KiB pages (MPS 0), round robin, 64-byte SQEs and 16-byte CQEs (§3.1.5).
    const config = { CSS: CC_CSS_NVM, MPS: 0, AMS: CC_AMS_ROUND_ROBIN, IOSQES: SQE_SIZE_LOG2, IOCQES: CQE_SIZE_LOG2 };
    this.regs.write32(REG.CC.offset, encodeCc({ ...config, EN: 0 }));
    this.regs.write32(REG.CC.offset, encodeCc({ ...config, EN: 1 }));
    await this.waitCsts(REG.CSTS.RDY, 1, 'CSTS.RDY to set after CC.EN=1', false);
  }

  /** CC.EN = 0, then wait for CSTS.RDY = 0 (§7.3.2: the controller deletes every queue); CSTS.CFS is tolerated. */
  async disable(what: string): Promise<void> {
    this.regs.write32(REG.CC.offset, setField(this.regs.read32(REG.CC.offset), REG.CC.EN, 0));
    await this.waitCsts(REG.CSTS.RDY, 0, `CSTS.RDY to clear (${what})`, true);
  }

  /**
   * Normal shutdown (§7.6.2): CC.SHN = 01b, then poll CSTS.SHST for 10b, bounded by `timeoutMs`.
   * Resolves true when the controller reported shutdown complete in time.
   */
  async shutdown(timeoutMs: number): Promise<boolean> {
    this.regs.write32(REG.CC.offset, setField(this.regs.read32(REG.CC.offset), REG.CC.SHN, SHN.NORMAL));
    const deadline = this.clock.now() + timeoutMs;
    while (this.clock.now() < deadline) {
      if (getField(this.regs.read32(REG.CSTS.offset), REG.CSTS.SHST) === SHST.COMPLETE) return true;
      await this.clock.sleep(2);
    }
    return false;
  }

  /**
   * CSTS read once, for a command that timed out (§9.5: check CSTS.CFS before aborting): 'gone'
   * when it reads all ones (surprise removal), 'fatal' when CSTS.CFS is set, '' otherwise.
   */
  failure(): '' | 'fatal' | 'gone' {
    const csts = this.regs.read32(REG.CSTS.offset);
    if (csts === GONE) return 'gone';
    return isSet(csts, REG.CSTS.CFS) ? 'fatal' : '';
  }

  /** CC.EN = 0 without waiting, so the controller stops using queue memory; a device that is gone is not an error here. */
  stop(): void {
    try {
      const cc = this.regs.read32(REG.CC.offset);
      if (isSet(cc, REG.CC.EN)) this.regs.write32(REG.CC.offset, setField(cc, REG.CC.EN, 0));
    } catch {
      /* the device may be gone; the caller releases memory anyway */
    }
  }

  /** Poll CSTS until `field` equals `value`, bounded by CAP.TO; CSTS.CFS ends the wait unless tolerated. */
  private async waitCsts(field: BitField, value: number, what: string, tolerateCfs: boolean): Promise<void> {
    const clock = this.clock;
    const deadline = clock.now() + this.readyTimeoutMs;
    let delay = 0;
    for (;;) {
      const csts = this.regs.read32(REG.CSTS.offset);
      if (csts === GONE) {
        throw new NvmeControllerError(
          'ERR_NVME_FATAL',
          `${this.name}: CSTS reads all ones: the device is gone (surprise removal or a dead link)`,
          'check that the device is still present, then reset it and open it again',
        );
      }
      if (getField(csts, field) === value) return;
      if (!tolerateCfs && isSet(csts, REG.CSTS.CFS)) {
        throw new NvmeControllerError(
          'ERR_NVME_FATAL',
          `${this.name}: controller fatal status (CSTS.CFS) while waiting for ${what}`,
          'reset the device (FLR) and open it again',
        );
      }
      if (clock.now() >= deadline) {
        throw new NvmeTimeoutError(
          `${this.name}: no ${what} within CAP.TO = ${this.cap.TO} x 500 ms (CSTS 0x${csts.toString(16)})`,
          'the controller is not responding: check the device, then reset it',
        );
      }
      await clock.sleep(delay);
      delay = Math.min(delay === 0 ? 1 : delay * 2, 50);
    }
  }
}
