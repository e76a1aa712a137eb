/**
 * A simulated NVMe controller (NVMe Base Specification 1.4 subset) as a sim DeviceModel.
 *
 * Registers (§3.1): CAP, VS, INTMS/INTMC, CC, CSTS, AQA, ASQ, ACQ and doorbells with a
 * configurable stride (CAP.DSTRD). Admin commands (§5): Identify (CNS 00h, 01h, 02h), Create and
 * Delete I/O SQ/CQ, Get/Set Features (Number of Queues, Volatile Write Cache), Abort. NVM commands
 * (§6): Read, Write, Flush, Write Zeroes, Dataset Management (deallocate). PRP1/PRP2/PRP lists,
 * phase tags, MSI-X per CQ vector or no interrupts (polling). Every DMA goes through the function's
 * IOMMU-checked engine; a refused data transfer completes the command with Data Transfer Error
 * (SCT 0, SC 04h), unlike QEMU 7.2 which reports success, and the IOMMU logs the fault.
 *
 * Fault switches for tests: `fatal()` sets CSTS.CFS and stops processing; the function's
 * `hang()` stops the device answering doorbells; `swallow(n)` fetches the next n I/O commands
 * and never completes them (until an Abort names them).
 */
import type { BarDecl, DeviceModel, MsixDecl, PciIds } from '../model.js';
import type { PciFunction } from '../pci.js';
import type { DeviceWork, WorkMode } from '../sched.js';
import { RegisterTable } from '../regs.js';
import { SimError } from '../errors.js';
import { AQA, CAP_CSS_NVM, CC, CSTS, encodeCap, getField, REG, SHST_COMPLETE, VS_1_4_0 } from '../../spec/nvme/registers.js';
import { AdminOpcode, Cns, CREATE_CQ_IEN, CREATE_CQ_PC, CREATE_SQ_PC, FeatureId } from '../../spec/nvme/commands.js';
import { CommandSpecificSc, GenericSc, Sct, statusOf } from '../../drivers/nvme/status.js';
import { encodeIdentifyController, encodeIdentifyNamespace, IDENTIFY_SIZE, ONCS_DSM, ONCS_WRITE_ZEROES } from '../../spec/nvme/identify.js';
import { PAGE, PrpResult, PrpWalker } from './prp.js';
import type { BlockStore } from './store.js';
import { MemoryStore } from './store.js';
import { NvmEngine } from './nvm.js';

export interface SimNamespaceConfig {
  /** Size in logical blocks. */
  blocks: number;
  /** 512 or 4096 (any power of two from 512). Default 512. */
  blockSize?: number;
  /** Backing store; default a MemoryStore of blocks * blockSize bytes. */
  store?: BlockStore;
}

export interface SimNvmeOptions {
  serial?: string;
  model?: string;
  firmware?: string;
  namespaces?: SimNamespaceConfig[];
  /** CAP.MQES + 1: the largest queue. Default 1024. */
  maxQueueEntries?: number;
  /** CAP.DSTRD. Default 0. */
  dstrd?: number;
  /** CAP.TO in 500 ms units. Default 10 (5 s). */
  timeout?: number;
  /** Identify MDTS: 2^mdts pages per command; 0 = no limit. Default 5 (128 KiB). */
  mdts?: number;
  /** I/O queue pairs the controller grants at most. Default 8. */
  maxIoQueues?: number;
  /** MSI-X vectors. Default maxIoQueues + 1. */
  msixVectors?: number;
  /** When the model processes doorbells: 'sync' (inside the doorbell write) or 'deferred'. Default 'deferred'. */
  workMode?: WorkMode;
  /** Move data between the store and host memory (default true). False: a null data path, for the driver's own cost. */
  copyData?: boolean;
}

interface Sq {
  id: number;
  base: number;
  size: number;
  head: number;
  tail: number;
  cq: Cq;
}
interface Cq {
  id: number;
  base: number;
  size: number;
  head: number;
  tail: number;
  phase: number;
  ien: boolean;
  iv: number;
  /** Entries posted since the last interrupt. */
  posted: number;
  sqs: number;
}

export interface SimNamespace {
  readonly nsid: number;
  readonly blocks: number;
  readonly blockSize: number;
  readonly blockShift: number;
  readonly store: BlockStore;
}

const TWO32 = 0x1_0000_0000;

export class SimNvme implements DeviceModel {
  readonly name = 'nvme';
  readonly ids: PciIds = { vendor: 0x1b36, device: 0x0010, classCode: 0x010802, revision: 2 };
  readonly bars: readonly BarDecl[];
  readonly msix: MsixDecl;
  readonly namespaces: SimNamespace[] = [];
  readonly maxTransfer: number;
  /** Counters for tests and benchmarks. */
  readonly stats = { commands: 0, adminCommands: 0, dataTransferErrors: 0, badDoorbells: 0, cqOverflows: 0, interrupts: 0, fatal: 0, fuaWrites: 0 };
  /** The last reason the controller refused to become ready or went fatal. */
  lastError = '';

  private readonly o: Required<Omit<SimNvmeOptions, 'namespaces'>>;
  private readonly cap: bigint;
  private fn!: PciFunction;
  private workItem!: DeviceWork;
  nvm!: NvmEngine;
  private prp!: PrpWalker;
  // Registers (§3.1).
  private cc = 0;
  private csts = 0;
  private aqa = 0;
  private asq = 0;
  private acq = 0;
  private intms = 0;
  // Queues, by id (0 = admin).
  private readonly sqs: (Sq | undefined)[];
  private readonly cqs: (Cq | undefined)[];
  private grantedQueues = 0;
  private ioQueuesCreated = false;
  private volatileWriteCache = 1;
  /** Commands fetched and held (swallowed): sqid << 16 | cid. */
  private readonly held = new Set<number>();
  private swallowNext = 0;
  private readonly sqe = new Uint8Array(64);
  private readonly sqe32 = new Uint32Array(this.sqe.buffer);
  /** Submission entries fetched in one DMA read per batch (up to 64 at a time). */
  private readonly fetch = new Uint8Array(64 * 64);
  private readonly fetch32 = new Uint32Array(this.fetch.buffer);
  /** Completions of the current batch, written to the CQ in one DMA write (two at a wrap). */
  private readonly stage = new Uint8Array(16 * 64);
  private readonly stage32 = new Uint32Array(this.stage.buffer);
  private stageCq: Cq | undefined;
  private stageStart = 0;
  private staged = 0;
  private readonly idBuf = new Uint8Array(IDENTIFY_SIZE);
  private readonly doorbellStride: number;

  constructor(options: SimNvmeOptions = {}) {
    const maxIoQueues = options.maxIoQueues ?? 8;
    this.o = {
      serial: options.serial ?? 'dmabox-sim0',
      model: options.model ?? 'dmabox simulated NVMe',
      firmware: options.firmware ?? '1.0',
      maxQueueEntries: options.maxQueueEntries ?? 1024,
      dstrd: options.dstrd ?? 0,
      timeout: options.timeout ?? 10,
      mdts: options.mdts ?? 5,
      maxIoQueues,
      msixVectors: options.msixVectors ?? maxIoQueues + 1,
      workMode: options.workMode ?? 'deferred',
      copyData: options.copyData ?? true,
    };
    const o = this.o;
    if (o.maxQueueEntries < 2 || o.maxQueueEntries > 65536) throw new SimError('ERR_SIM_ARG', `maxQueueEntries ${o.maxQueueEntries}: must be 2..65536`);
    if (o.dstrd < 0 || o.dstrd > 15) throw new SimError('ERR_SIM_ARG', `dstrd ${o.dstrd}: must be 0..15`);
    if (maxIoQueues < 1 || maxIoQueues > 1023) throw new SimError('ERR_SIM_ARG', `maxIoQueues ${maxIoQueues}: must be 1..1023`);
    this.maxTransfer = o.mdts === 0 ? 2 * 1024 * 1024 : PAGE * 2 ** o.mdts;
    for (const [i, ns] of (options.namespaces ?? [{ blocks: 2048 }]).entries()) {
      const bs = ns.blockSize ?? 512;
      if (bs < 512 || (bs & (bs - 1)) !== 0) throw new SimError('ERR_SIM_ARG', `namespace ${i + 1}: block size ${bs} is not a power of two >= 512`);
      const store = ns.store ?? new MemoryStore(ns.blocks * bs);
      if (store.size < ns.blocks * bs) throw new SimError('ERR_SIM_ARG', `namespace ${i + 1}: store of ${store.size} bytes is smaller than ${ns.blocks} x ${bs}`);
      this.namespaces.push({ nsid: i + 1, blocks: ns.blocks, blockSize: bs, blockShift: Math.log2(bs), store });
    }
    this.cap = encodeCap({
      MQES: o.maxQueueEntries - 1,
      CQR: true,
      AMS: 0,
      TO: o.timeout,
      DSTRD: o.dstrd,
      NSSRS: false,
      CSS: CAP_CSS_NVM,
      BPS: false,
      MPSMIN: 0,
      MPSMAX: 0,
    });
    this.sqs = new Array<Sq | undefined>(maxIoQueues + 1).fill(undefined);
    this.cqs = new Array<Cq | undefined>(maxIoQueues + 1).fill(undefined);
    this.doorbellStride = 4 << o.dstrd;
    // BAR0: registers, doorbells, then the MSI-X table and PBA on their own pages.
    const dbEnd = REG.DOORBELL_BASE + 2 * (maxIoQueues + 1) * this.doorbellStride;
    const tableOffset = Math.ceil(dbEnd / PAGE) * PAGE;
    const pbaOffset = tableOffset + Math.ceil((o.msixVectors * 16) / PAGE) * PAGE;
    let size = 0x4000;
    while (size < pbaOffset + PAGE) size *= 2;
    const table = new RegisterTable(
      size,
      [
        { offset: REG.CAP, name: 'CAP', read: () => Number(this.cap & 0xffff_ffffn) },
        { offset: REG.CAP + 4, name: 'CAP.hi', read: () => Number(this.cap >> 32n) },
        { offset: REG.VS, name: 'VS', read: () => VS_1_4_0 },
        { offset: REG.INTMS, name: 'INTMS', read: () => this.intms, write: (v) => (this.intms = (this.intms | v) >>> 0) },
        { offset: REG.INTMC, name: 'INTMC', read: () => this.intms, write: (v) => (this.intms = (this.intms & ~v) >>> 0) },
        { offset: REG.CC, name: 'CC', read: () => this.cc, write: (v) => this.writeCc(v) },
        { offset: REG.CSTS, name: 'CSTS', read: () => this.csts },
        { offset: REG.AQA, name: 'AQA', read: () => this.aqa, write: (v) => (this.aqa = v & 0x0fff_0fff) },
        { offset: REG.ASQ, name: 'ASQ', read: () => this.asq % TWO32, write: (v) => (this.asq = Math.floor(this.asq / TWO32) * TWO32 + ((v & ~0xfff) >>> 0)) },
        { offset: REG.ASQ + 4, name: 'ASQ.hi', read: () => Math.floor(this.asq / TWO32), write: (v) => (this.asq = (this.asq % TWO32) + v * TWO32) },
        { offset: REG.ACQ, name: 'ACQ', read: () => this.acq % TWO32, write: (v) => (this.acq = Math.floor(this.acq / TWO32) * TWO32 + ((v & ~0xfff) >>> 0)) },
        { offset: REG.ACQ + 4, name: 'ACQ.hi', read: () => Math.floor(this.acq / TWO32), write: (v) => (this.acq = (this.acq % TWO32) + v * TWO32) },
      ],
      [{ start: REG.DOORBELL_BASE, end: dbEnd, name: 'doorbells', read: () => 0, write: (off, v) => this.doorbell(off, v) }],
    );
    this.bars = [{ index: 0, size, handler: table }];
    this.msix = { vectors: o.msixVectors, bar: 0, tableOffset, pbaOffset };
  }

  attach(fn: PciFunction): void {
    this.fn = fn;
    this.workItem = fn.work(() => this.process(), this.o.workMode);
    this.prp = new PrpWalker(fn.dma, this.maxTransfer);
    this.nvm = new NvmEngine(fn.dma, this.prp, this.namespaces, this.maxTransfer, this.o.copyData, this.stats);
  }

  /** Function-level reset: registers to power-on values, every queue forgotten. */
  reset(): void {
    this.workItem?.cancel();
    this.cc = 0;
    this.csts = 0;
    this.aqa = 0;
    this.asq = 0;
    this.acq = 0;
    this.intms = 0;
    this.controllerReset();
  }

  /** Put the controller in Controller Fatal Status (§3.1.6): it stops processing commands. */
  fatal(reason = 'fatal() called by a test'): void {
    this.csts |= 1 << CSTS.CFS.shift;
    this.stats.fatal++;
    this.lastError = reason;
  }

  /** Fetch the next `n` I/O commands and never complete them (an Abort completes them). */
  swallow(n: number): void {
    this.swallowNext = n;
  }

  /**
   * Post a completion no command asked for (a misbehaving device): CID `cid` on the CQ of SQ
   * `sqid`, then signal. For the driver's "unknown CID is never trusted" tests.
   */
  injectCompletion(sqid: number, cid: number, status = 0): void {
    const sq = this.sqs[sqid];
    if (sq === undefined) throw new SimError('ERR_SIM_ARG', `injectCompletion: SQ ${sqid} does not exist`);
    this.complete(sq, cid, status, 0);
    this.signal();
  }

  /** Make the next swallowed commands immune to Abort (Abort answers "not aborted"), to force a reset. */
  unabortable = false;

  /** How many I/O queue pairs exist now. */
  get ioQueueCount(): number {
    let n = 0;
    for (let i = 1; i < this.sqs.length; i++) if (this.sqs[i]) n++;
    return n;
  }

  // ---- registers ----------------------------------------------------------------------------

  /** CC write (§3.1.5, §7.6.1): EN 0->1 brings the controller up, 1->0 resets it; SHN shuts down. */
  private writeCc(v: number): void {
    const wasEn = getField(this.cc, CC.EN);
    const en = getField(v, CC.EN);
    this.cc = v & 0x00ff_fff1;
    if (wasEn === 0 && en === 1) {
      const why = this.enableProblem();
      if (why !== '') {
        // The controller does not become ready; a driver sees CSTS.RDY stay 0 until CAP.TO.
        this.lastError = why;
        return;
      }
      const asqs = getField(this.aqa, AQA.ASQS) + 1;
      const acqs = getField(this.aqa, AQA.ACQS) + 1;
      const cq: Cq = { id: 0, base: this.acq, size: acqs, head: 0, tail: 0, phase: 1, ien: true, iv: 0, posted: 0, sqs: 1 };
      this.cqs[0] = cq;
      this.sqs[0] = { id: 0, base: this.asq, size: asqs, head: 0, tail: 0, cq };
      this.csts = (this.csts & ~(3 << CSTS.SHST.shift)) | 1;
    } else if (wasEn === 1 && en === 0) {
      this.controllerReset();
    }
    const shn = getField(v, CC.SHN);
    if (shn !== 0 && en === 1) {
      // Shutdown (§7.6.2): nothing is buffered, so it completes at once; processing stops.
      this.csts = (this.csts & ~(3 << CSTS.SHST.shift)) | (SHST_COMPLETE << CSTS.SHST.shift);
    }
  }

  private enableProblem(): string {
    if (getField(this.cc, CC.CSS) !== 0) return 'CC.CSS is not the NVM command set';
    if (getField(this.cc, CC.MPS) !== 0) return 'CC.MPS is outside CAP.MPSMIN..MPSMAX (4 KiB only)';
    if (getField(this.cc, CC.IOSQES) !== 6 || getField(this.cc, CC.IOCQES) !== 4) return 'CC.IOSQES/IOCQES are not 6/4 (64-byte SQEs, 16-byte CQEs)';
    if (this.asq === 0 || this.acq === 0 || this.asq % PAGE !== 0 || this.acq % PAGE !== 0) return 'ASQ/ACQ are zero or not 4 KiB aligned';
    if (getField(this.aqa, AQA.ASQS) === 0 || getField(this.aqa, AQA.ACQS) === 0) return 'AQA sizes below 2 entries';
    if ((this.csts & (1 << CSTS.CFS.shift)) !== 0) return 'controller fatal status is set';
    return '';
  }

  /** CC.EN 1 -> 0 (§7.3.2): delete every queue, abandon held commands, CSTS.RDY = 0. */
  private controllerReset(): void {
    this.sqs.fill(undefined);
    this.cqs.fill(undefined);
    this.held.clear();
    this.swallowNext = 0;
    this.grantedQueues = 0;
    this.ioQueuesCreated = false;
    this.csts &= ~(1 | (3 << CSTS.SHST.shift) | (1 << CSTS.CFS.shift));
  }

  /** Doorbell write (§3.1.24, §3.1.25). */
  private doorbell(off: number, value: number): void {
    const rel = (off - REG.DOORBELL_BASE) / this.doorbellStride;
    if (!Number.isInteger(rel)) return;
    const qid = rel >>> 1;
    if ((rel & 1) === 0) {
      const sq = this.sqs[qid];
      if (sq === undefined || value >= sq.size) {
        this.stats.badDoorbells++;
        return;
      }
      sq.tail = value;
    } else {
      const cq = this.cqs[qid];
      if (cq === undefined || value >= cq.size) {
        this.stats.badDoorbells++;
        return;
      }
      cq.head = value;
    }
    this.workItem.kick();
  }

  private get ready(): boolean {
    return (this.csts & 1) === 1 && (this.csts & (1 << CSTS.CFS.shift)) === 0 && getField(this.csts, CSTS.SHST) === 0;
  }

  // ---- command processing -------------------------------------------------------------------

  /** Fetch and execute every submitted command whose CQ has room, then signal interrupts. */
  private process(): void {
    if (!this.ready) return;
    let progress = true;
    while (progress && this.ready) {
      progress = false;
      for (let q = 0; q < this.sqs.length; q++) {
        const sq = this.sqs[q];
        if (sq === undefined) continue;
        while (sq.head !== sq.tail && this.ready) {
          // Fetch as many entries as are submitted, contiguous (up to the wrap), and fit in the CQ.
          const cq = sq.cq;
          const submitted = sq.tail >= sq.head ? sq.tail - sq.head : sq.size - sq.head;
          const cqRoom = (cq.head - cq.tail - 1 + cq.size) % cq.size;
          const n = Math.min(submitted, cqRoom, 64);
          if (n === 0) break; // CQ full: wait for its head doorbell
          if (!this.fn.dma.read(sq.base + sq.head * 64, this.fetch, 0, n * 64)) {
            this.fatal(`SQ ${sq.id} entries ${sq.head}..${sq.head + n - 1} could not be fetched (IOMMU refused the read)`);
            return;
          }
          progress = true;
          const e = this.sqe32;
          const f = this.fetch32;
          this.stageCq = cq;
          this.stageStart = cq.tail;
          this.staged = 0;
          for (let i = 0; i < n && this.ready; i++) {
            const b = i << 4;
            for (let k = 0; k < 16; k++) e[k] = f[b + k]!;
            if (++sq.head === sq.size) sq.head = 0;
            this.execute(sq);
          }
          if (!this.flushStage()) return;
        }
      }
    }
    this.signal();
  }

  private execute(sq: Sq): void {
    const d = this.sqe32;
    const opc = d[0]! & 0xff;
    const cid = d[0]! >>> 16;
    this.stats.commands++;
    if (((d[0]! >>> 8) & 3) !== 0 || ((d[0]! >>> 14) & 3) !== 0) {
      // Fused operations and SGLs (PSDT != 0) are not supported.
      return this.complete(sq, cid, statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true), 0);
    }
    if (sq.id === 0) {
      this.stats.adminCommands++;
      const r = this.admin(opc);
      this.complete(sq, cid, r, this.dw0);
      return;
    }
    if (this.swallowNext > 0) {
      this.swallowNext--;
      this.held.add((sq.id << 16) | cid);
      return;
    }
    const status = this.nvm.execute(d);
    this.complete(sq, cid, status, 0);
  }

  /** Post a completion (§4.6): DW0, DW1, SQHD|SQID, then CID|status with the phase tag last. */
  private complete(sq: Sq, cid: number, status: number, dw0: number): void {
    const cq = sq.cq;
    if ((cq.tail + 1) % cq.size === cq.head) {
      // Only an Abort's second completion or an injected one can meet a full CQ (fetching stops
      // when the CQ has no room): drop it and count it rather than overwrite an unread entry.
      this.stats.cqOverflows++;
      return;
    }
    if (cq === this.stageCq) {
      const i = this.staged++ << 2;
      const st = this.stage32;
      st[i] = dw0 >>> 0;
      st[i + 1] = 0;
      st[i + 2] = ((sq.id << 16) | sq.head) >>> 0;
      st[i + 3] = ((((status << 1) | cq.phase) << 16) | cid) >>> 0;
      if (++cq.tail === cq.size) {
        cq.tail = 0;
        cq.phase ^= 1;
      }
      cq.posted++;
      return;
    }
    const at = cq.base + cq.tail * 16;
    const dma = this.fn.dma;
    const ok = dma.writeU64(at, dw0, 0) && dma.writeU64(at + 8, ((sq.id << 16) | sq.head) >>> 0, ((((status << 1) | cq.phase) << 16) | cid) >>> 0);
    if (!ok) {
      this.fatal(`CQ ${cq.id} entry ${cq.tail} could not be written (IOMMU refused the write)`);
      return;
    }
    if (++cq.tail === cq.size) {
      cq.tail = 0;
      cq.phase ^= 1;
    }
    cq.posted++;
  }

  /** Write the batch's staged completions (§4.6) to their CQ: one DMA write, two at a wrap. */
  private flushStage(): boolean {
    const cq = this.stageCq;
    const n = this.staged;
    this.stageCq = undefined;
    this.staged = 0;
    if (cq === undefined || n === 0) return true;
    const first = Math.min(n, cq.size - this.stageStart);
    const dma = this.fn.dma;
    const ok = dma.write(cq.base + this.stageStart * 16, this.stage, 0, first * 16) && (first === n || dma.write(cq.base, this.stage, first * 16, (n - first) * 16));
    if (!ok) {
      this.fatal(`CQ ${cq.id} entries from ${this.stageStart} could not be written (IOMMU refused the write)`);
      return false;
    }
    return true;
  }

  /** One interrupt per CQ that got entries (coalesced per processing run). */
  private signal(): void {
    for (let q = 0; q < this.cqs.length; q++) {
      const cq = this.cqs[q];
      if (cq === undefined || cq.posted === 0) continue;
      cq.posted = 0;
      if (cq.ien && this.fn.msix?.enabled) {
        this.stats.interrupts++;
        this.fn.interrupt(cq.iv);
      }
    }
  }

  // ---- admin commands (§5) ------------------------------------------------------------------

  private dw0 = 0;

  private admin(opc: number): number {
    const d = this.sqe32;
    this.dw0 = 0;
    const prp1 = d[6]! + d[7]! * TWO32;
    const prp2 = d[8]! + d[9]! * TWO32;
    const cdw10 = d[10]!;
    const cdw11 = d[11]!;
    switch (opc) {
      case AdminOpcode.IDENTIFY:
        return this.identify(d[1]!, cdw10 & 0xff, prp1, prp2);
      case AdminOpcode.SET_FEATURES:
        return this.setFeatures(cdw10 & 0xff, cdw11);
      case AdminOpcode.GET_FEATURES:
        return this.getFeatures(cdw10 & 0xff);
      case AdminOpcode.CREATE_IO_CQ:
        return this.createCq(cdw10 & 0xffff, (cdw10 >>> 16) + 1, prp1, cdw11);
      case AdminOpcode.CREATE_IO_SQ:
        return this.createSq(cdw10 & 0xffff, (cdw10 >>> 16) + 1, prp1, cdw11);
      case AdminOpcode.DELETE_IO_SQ:
        return this.deleteSq(cdw10 & 0xffff);
      case AdminOpcode.DELETE_IO_CQ:
        return this.deleteCq(cdw10 & 0xffff);
      case AdminOpcode.ABORT:
        return this.abort(cdw10 & 0xffff, cdw10 >>> 16);
      default:
        return statusOf(Sct.GENERIC, GenericSc.INVALID_COMMAND_OPCODE, true);
    }
  }

  private identify(nsid: number, cns: number, prp1: number, prp2: number): number {
    const b = this.idBuf;
    if (cns === Cns.CONTROLLER) {
      encodeIdentifyController(
        {
          vid: this.ids.vendor,
          ssvid: this.ids.vendor,
          serial: this.o.serial,
          model: this.o.model,
          firmware: this.o.firmware,
          mdts: this.o.mdts,
          cntlid: 0,
          version: VS_1_4_0,
          abortLimit: 4,
          sqes: 0x66,
          cqes: 0x44,
          nn: this.namespaces.length,
          oncs: ONCS_DSM | ONCS_WRITE_ZEROES,
          vwc: 1,
        },
        b,
      );
    } else if (cns === Cns.NAMESPACE) {
      const ns = this.namespaces[nsid - 1];
      if (nsid === 0 || nsid === 0xffffffff || ns === undefined) return statusOf(Sct.GENERIC, GenericSc.INVALID_NAMESPACE_OR_FORMAT, true);
      const blocks = BigInt(ns.blocks);
      encodeIdentifyNamespace({ nsze: blocks, ncap: blocks, nuse: blocks, nlbaf: 0, flbas: 0, lbaf: [{ ms: 0, lbads: ns.blockShift, rp: 0 }] }, b);
    } else if (cns === Cns.ACTIVE_NAMESPACE_LIST) {
      if (nsid >= 0xfffffffe) return statusOf(Sct.GENERIC, GenericSc.INVALID_NAMESPACE_OR_FORMAT, true);
      b.fill(0);
      const v = new DataView(b.buffer);
      let i = 0;
      for (const ns of this.namespaces) if (ns.nsid > nsid && i < 1024) v.setUint32(4 * i++, ns.nsid, true);
    } else {
      return statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true);
    }
    const r = this.prp.walk(prp1, prp2, IDENTIFY_SIZE);
    if (r === PrpResult.BAD_OFFSET) return statusOf(Sct.GENERIC, GenericSc.INVALID_PRP_OFFSET, true);
    if (r !== PrpResult.OK || !this.prp.toHost(b, 0)) {
      this.stats.dataTransferErrors++;
      return statusOf(Sct.GENERIC, GenericSc.DATA_TRANSFER_ERROR);
    }
    return 0;
  }

  private setFeatures(fid: number, cdw11: number): number {
    if (fid === FeatureId.NUMBER_OF_QUEUES) {
      const nsqr = cdw11 & 0xffff;
      const ncqr = cdw11 >>> 16;
      if (nsqr === 0xffff || ncqr === 0xffff) return statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true);
      // §5.21.1.7: only before any I/O queue is created (Command Sequence Error, 0Ch, otherwise).
      if (this.ioQueuesCreated) return statusOf(Sct.GENERIC, 0x0c, true);
      this.grantedQueues = Math.min(Math.max(nsqr, ncqr) + 1, this.o.maxIoQueues);
      this.dw0 = (((this.grantedQueues - 1) << 16) | (this.grantedQueues - 1)) >>> 0;
      return 0;
    }
    if (fid === FeatureId.VOLATILE_WRITE_CACHE) {
      this.volatileWriteCache = cdw11 & 1;
      return 0;
    }
    return statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true);
  }

  private getFeatures(fid: number): number {
    if (fid === FeatureId.NUMBER_OF_QUEUES) {
      const n = Math.max(1, this.grantedQueues || this.o.maxIoQueues);
      this.dw0 = (((n - 1) << 16) | (n - 1)) >>> 0;
      return 0;
    }
    if (fid === FeatureId.VOLATILE_WRITE_CACHE) {
      this.dw0 = this.volatileWriteCache;
      return 0;
    }
    return statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true);
  }

  private queueIdProblem(qid: number): number {
    const limit = this.grantedQueues || this.o.maxIoQueues;
    if (qid === 0 || qid > limit) return statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER, true);
    return 0;
  }

  private createCq(qid: number, size: number, base: number, cdw11: number): number {
    const bad = this.queueIdProblem(qid);
    if (bad !== 0 || this.cqs[qid] !== undefined) return bad || statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER, true);
    if (size < 2 || size > this.o.maxQueueEntries) return statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_SIZE, true);
    if ((cdw11 & CREATE_CQ_PC) === 0) return statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true); // CAP.CQR = 1
    if (base % PAGE !== 0) return statusOf(Sct.GENERIC, GenericSc.INVALID_PRP_OFFSET, true);
    const ien = (cdw11 & CREATE_CQ_IEN) !== 0;
    const iv = cdw11 >>> 16;
    if (ien && iv >= this.o.msixVectors) return statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_INTERRUPT_VECTOR, true);
    this.cqs[qid] = { id: qid, base, size, head: 0, tail: 0, phase: 1, ien, iv, posted: 0, sqs: 0 };
    this.ioQueuesCreated = true;
    return 0;
  }

  private createSq(qid: number, size: number, base: number, cdw11: number): number {
    const bad = this.queueIdProblem(qid);
    if (bad !== 0 || this.sqs[qid] !== undefined) return bad || statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER, true);
    if (size < 2 || size > this.o.maxQueueEntries) return statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_SIZE, true);
    if ((cdw11 & CREATE_SQ_PC) === 0) return statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true);
    if (base % PAGE !== 0) return statusOf(Sct.GENERIC, GenericSc.INVALID_PRP_OFFSET, true);
    const cq = this.cqs[cdw11 >>> 16];
    if (cq === undefined || cq.id === 0) return statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.COMPLETION_QUEUE_INVALID, true);
    cq.sqs++;
    this.sqs[qid] = { id: qid, base, size, head: 0, tail: 0, cq };
    this.ioQueuesCreated = true;
    return 0;
  }

  private deleteSq(qid: number): number {
    const sq = qid === 0 ? undefined : this.sqs[qid];
    if (sq === undefined) return statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER, true);
    // Held (swallowed) commands of this SQ are dropped; a real device would complete them as aborted.
    for (const k of [...this.held]) if (k >>> 16 === qid) this.held.delete(k);
    sq.cq.sqs--;
    this.sqs[qid] = undefined;
    return 0;
  }

  private deleteCq(qid: number): number {
    const cq = qid === 0 ? undefined : this.cqs[qid];
    if (cq === undefined) return statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_IDENTIFIER, true);
    if (cq.sqs > 0) return statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.INVALID_QUEUE_DELETION, true);
    this.cqs[qid] = undefined;
    return 0;
  }

  /** Abort (§5.1): a held command completes with Command Abort Requested; DW0 bit 0 = 1 if none matched. */
  private abort(sqid: number, cid: number): number {
    const key = (sqid << 16) | cid;
    const sq = this.sqs[sqid];
    if (sq !== undefined && !this.unabortable && this.held.delete(key)) {
      this.complete(sq, cid, statusOf(Sct.GENERIC, GenericSc.ABORTED_BY_REQUEST), 0);
      this.dw0 = 0;
    } else {
      this.dw0 = 1;
    }
    return 0;
  }
}
