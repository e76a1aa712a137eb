/**
 * The NVMe model's side of a device fault plan (sim/faults): which of the model's events are
 * eligible for the plan's class, whether it fires (the plan's FaultInjector), and what the model
 * then does instead of the right thing. The hooks that ask are in queues.ts (I/O commands,
 * completion batches, interrupts), admin.ts (Identify data), registers.ts (CC.EN both ways) and
 * controller.ts (surprise removal's all-ones BAR). A model built without a plan holds none, and
 * each hook is one `undefined` compare, off the per-command path where it can be.
 */
import { FaultInjector } from '../faults/injector.js';
import { requireDevice, type FaultPlan } from '../faults/plan.js';
import { NvmOpcode } from '../../spec/nvme/commands.js';
import { ID_CTRL, ID_NS } from '../../spec/nvme/identify.js';
import { GenericSc, MediaSc, Sct, statusOf } from '../../spec/nvme/status.js';

/** What the queue engine does with an I/O command the plan fired on. */
export const IoFault = Object.freeze({
  NONE: 0,
  STATUS: 1,
  DROP: 2,
  DUPLICATE: 3,
  WRONG_CID: 4,
  WRONG_PHASE: 5,
  SQ_HEAD: 6,
  FATAL: 7,
  REMOVAL: 8,
  CORRUPT_READ: 9,
});

const IO_KINDS: Readonly<Record<string, number>> = {
  'nvme.status': IoFault.STATUS,
  'nvme.drop-completion': IoFault.DROP,
  'nvme.duplicate-completion': IoFault.DUPLICATE,
  'nvme.wrong-cid': IoFault.WRONG_CID,
  'nvme.wrong-phase': IoFault.WRONG_PHASE,
  'nvme.sq-head': IoFault.SQ_HEAD,
  'nvme.fatal': IoFault.FATAL,
  'nvme.removal': IoFault.REMOVAL,
  'nvme.corrupt-read': IoFault.CORRUPT_READ,
};

/** Internal Path Error (SCT 3, SC 00h, §4.6.1.2.4). */
const PATH_INTERNAL = 0x00;
/** Garbage written over the first bytes of a corrupted read. */
export const CORRUPTION = 0xdeadbeef;

export class NvmeFaultPlan {
  readonly injector: FaultInjector;
  /** The IoFault of an I/O class, NONE for the others. */
  readonly io: number;
  /** Surprise removal happened: every BAR read is all ones from now on. */
  removed = false;
  private readonly name: string;
  private readonly on: string;

  constructor(plan: FaultPlan) {
    requireDevice(plan, 'nvme', 'NVMe model');
    this.injector = new FaultInjector(plan);
    this.name = plan.cls.name;
    this.io = IO_KINDS[this.name] ?? IoFault.NONE;
    this.on = plan.params['on'] === undefined ? 'any' : String(plan.params['on']);
  }

  /**
   * The device behaves again from now on: the plan never fires again and a removed controller is
   * back on the bus (re-plugged; the driver still has to reset it). A campaign calls this before
   * checking that the driver recovers.
   */
  behave(): void {
    this.injector.disarm();
    this.removed = false;
  }

  /** An I/O command with opcode `opc` was fetched: the IoFault to apply to it (NONE mostly). */
  ioCommand(opc: number): number {
    if (this.io === IoFault.NONE) return IoFault.NONE;
    if (this.io === IoFault.CORRUPT_READ ? opc !== NvmOpcode.READ : !this.matches(opc)) return IoFault.NONE;
    return this.injector.fire() ? this.io : IoFault.NONE;
  }

  /** nvme.status: the status the command completes with. */
  status(opc: number): number {
    const dnr = this.injector.num('dnr') === 1;
    switch (this.injector.text('type')) {
      case 'media':
        return statusOf(Sct.MEDIA_DATA_INTEGRITY, opc === NvmOpcode.READ ? MediaSc.UNRECOVERED_READ_ERROR : MediaSc.WRITE_FAULT, dnr);
      case 'path':
        return statusOf(Sct.PATH_RELATED, PATH_INTERNAL, dnr);
      default:
        return statusOf(Sct.GENERIC, GenericSc.INTERNAL_ERROR, dnr);
    }
  }

  /** nvme.sq-head: the SQHD to report, from the SQ's real head and tail. */
  sqHead(head: number, tail: number, size: number): number {
    if (this.injector.text('mode') === 'past-tail') return (tail + 1 + this.injector.rng.below(size)) & 0xffff;
    return (head - 1 - this.injector.rng.below(size - 1) + 2 * size) % size;
  }

  /** nvme.corrupt-read: true when the corruption is reported (Data Transfer Error), false when silent. */
  get corruptionReported(): boolean {
    return this.injector.text('report') === 'error';
  }

  /** A batch of `n` completions is about to be written: swap its first two? */
  reorder(n: number): boolean {
    return n >= 2 && this.name === 'nvme.reorder-completions' && this.injector.fire();
  }

  /** An interrupt for a CQ is due: 0 send it, -1 lose it, n > 0 send it and n more on every vector. */
  interrupt(): number {
    if (this.name === 'nvme.irq-lost') return this.injector.fire() ? -1 : 0;
    if (this.name === 'nvme.irq-storm') return this.injector.fire() ? this.injector.num('count') : 0;
    return 0;
  }

  /** An Identify Controller (`controller`) or Namespace command filled `b`: garble the field the plan names, if it fires. */
  identify(controller: boolean, b: Uint8Array): void {
    if (this.name !== 'nvme.identify') return;
    const field = this.injector.text('field');
    if (field.startsWith('mdts') !== controller || !this.injector.fire()) return;
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    switch (field) {
      case 'mdts-zero':
        b[ID_CTRL.MDTS.offset] = 0;
        return;
      case 'mdts-huge':
        b[ID_CTRL.MDTS.offset] = 0xff;
        return;
      case 'nsze-zero':
        for (let i = 0; i < 24; i++) b[ID_NS.NSZE.offset + i] = 0; // NSZE, NCAP, NUSE
        return;
      case 'nsze-huge':
        for (let i = 0; i < 24; i++) b[ID_NS.NSZE.offset + i] = 0xff;
        return;
      case 'lbads-zero':
        b[ID_NS.LBAF.offset + 2] = 0; // LBAF0.LBADS (byte 2 of the format's dword)
        return;
      case 'lbads-huge':
        b[ID_NS.LBAF.offset + 2] = 63;
        return;
      default:
        // flbas-past: FLBAS names format 15 while NLBAF says there is 1.
        b[ID_NS.NLBAF.offset] = 0;
        b[ID_NS.FLBAS.offset] = 0x0f;
        v.setUint32(ID_NS.LBAF.offset + 4 * 15, 0, true);
    }
  }

  /** CC.EN 0 -> 1: true when the controller is to never become ready (nvme.never-ready). */
  refuseEnable(): boolean {
    return this.name === 'nvme.never-ready' && this.injector.fire();
  }

  /** CC.EN 1 -> 0: true when the controller is to ignore the reset (nvme.reset-fails). */
  refuseDisable(): boolean {
    return this.name === 'nvme.reset-fails' && this.injector.fire();
  }

  private matches(opc: number): boolean {
    if (this.on === 'read') return opc === NvmOpcode.READ;
    if (this.on === 'write') return opc === NvmOpcode.WRITE;
    return true;
  }
}
