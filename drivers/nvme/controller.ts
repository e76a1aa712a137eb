/**
 * The NVMe controller driver: initialisation (NVMe 1.4 §7.6.1), admin commands, I/O queue
 * creation, the completion engine (polling or MSI-X), timeout escalation, reset and shutdown.
 * It sees the device only through drivers/platform.ts, so it cannot tell the simulator from VFIO.
 *
 * Every wait on the device is bounded: enable/disable by CAP.TO (500 ms units, §3.1.1), shutdown
 * by `shutdownTimeoutMs`, commands by `adminTimeoutMs` / `ioTimeoutMs` with escalation
 * (poll again, Abort §5.1, controller reset, then fail with ERR_NVME_TIMEOUT).
 */
import type { DmaWindow, IrqVector, Platform, RegisterSpace } from '../contract/platform.js';
import { DEVICE_WRITES } from '../contract/platform.js';
import { AdminOpcode, Cns, CREATE_CQ_IEN, CREATE_CQ_PC, CREATE_SQ_PC, FeatureId } from '../../spec/nvme/commands.js';
import {
  IDENTIFY_SIZE,
  parseIdentifyController,
  parseIdentifyNamespace,
  parseNamespaceList,
  type IdentifyController,
  type IdentifyNamespace,
} from '../../spec/nvme/identify.js';
import { IoQueue, MEM_PAGE } from './ioqueue.js';
import { QueuePair, STATUS_ABANDONED } from './queue.js';
import {
  AQA,
  CAP_CSS_NVM,
  CC,
  CSTS,
  decodeCap,
  encodeCc,
  getField,
  REG,
  setField,
  SHN_NORMAL,
  SHST_COMPLETE,
  type Cap,
} from '../../spec/nvme/registers.js';
import { NvmeControllerError, NvmeStatusError, NvmeTimeoutError } from './status.js';
import { Namespace } from './namespace.js';

export interface NvmeOptions {
  /** I/O queue pairs wanted (granted: min of this, the controller's grant, and MSI-X vectors - 1). Default 1. */
  queues?: number;
  /** Entries per I/O queue (capped by CAP.MQES + 1). Default 64. */
  queueEntries?: number;
  /** Entries in the admin queues (2..4096). Default 32. */
  adminEntries?: number;
  /** Data buffer per slot and direction, bytes; transfers larger than this (or than MDTS) are split. Default 64 KiB. */
  bufferBytes?: number;
  /** 'poll' (default): the driver polls the CQs; 'msix': one vector per CQ, the admin CQ on vector 0. */
  interrupts?: 'poll' | 'msix';
  /** Time after which an admin command is escalated. Default 2000 ms. */
  adminTimeoutMs?: number;
  /** Time after which an I/O command is escalated. Default 5000 ms. */
  ioTimeoutMs?: number;
  /** Bound on CC.SHN normal shutdown (CSTS.SHST = complete). Default 5000 ms (RTD3E is not read). */
  shutdownTimeoutMs?: number;
  /** Where protocol errors (unknown CIDs, late completions) and escalations are reported. Default: console.warn. */
  log?: (message: string) => void;
}

interface Waiter {
  what: string;
  resolve: (r: { status: number; dw0: number }) => void;
  reject: (e: Error) => void;
}

export class NvmeController {
  readonly platform: Platform;
  readonly regs: RegisterSpace;
  readonly cap: Cap;
  identify!: IdentifyController;
  readonly namespaces: Namespace[] = [];
  readonly ioQueues: IoQueue[] = [];
  /** Largest transfer per command in bytes (MDTS and bufferBytes honoured). */
  maxTransferBytes = 0;
  /** Largest transfer per command the controller allows (MDTS, §5.15.2.2; capped at 2 MiB, one PRP list page). */
  mdtsBytes = 0;
  /** Completions with an unknown CID, over all queues (each was logged and ignored). */
  get unknownCids(): number {
    return this.admin.unknownCids + this.ioQueues.reduce((n, q) => n + q.qp.unknownCids, 0);
  }
  /** Controller resets done after timeouts. */
  resets = 0;
  /** Abort commands sent after timeouts. */
  aborts = 0;

  private admin!: QueuePair;
  private readonly adminWaiters: (Waiter | null)[] = [];
  /** Why commands are being abandoned right now (timeout/reset or close), for their errors. */
  private abandonReason = '';
  private readonly opts: Required<NvmeOptions>;
  private identifyBuf!: DmaWindow;
  private vectors: IrqVector[] = [];
  private engineScheduled = false;
  private engineTimer: ReturnType<typeof setTimeout> | undefined;
  private lastTimeoutScan = 0;
  private state: 'init' | 'ready' | 'resetting' | 'failed' | 'closed' = 'init';
  private ringScheduled = false;
  private readonly ringAll = (): void => {
    this.ringScheduled = false;
    for (const q of this.ioQueues) q.ring();
  };
  private readonly engineTick = (): void => this.engine();

  private constructor(platform: Platform, opts: NvmeOptions) {
    this.platform = platform;
    this.opts = {
      queues: opts.queues ?? 1,
      queueEntries: opts.queueEntries ?? 64,
      adminEntries: opts.adminEntries ?? 32,
      bufferBytes: opts.bufferBytes ?? 64 * 1024,
      interrupts: opts.interrupts ?? 'poll',
      adminTimeoutMs: opts.adminTimeoutMs ?? 2000,
      ioTimeoutMs: opts.ioTimeoutMs ?? 5000,
      shutdownTimeoutMs: opts.shutdownTimeoutMs ?? 5000,
      log: opts.log ?? ((m) => console.warn(`nvme ${platform.name}: ${m}`)),
    };
    this.regs = platform.bar(0);
    this.cap = decodeCap(this.regs.read64(REG.CAP));
  }

  /** Bring the controller up, discover namespaces and create the I/O queues. */
  static async open(platform: Platform, opts: NvmeOptions = {}): Promise<NvmeController> {
    const c = new NvmeController(platform, opts);
    try {
      await c.init();
    } catch (e) {
      c.teardown();
      throw e;
    }
    return c;
  }

  get interruptMode(): 'poll' | 'msix' {
    return this.opts.interrupts;
  }

  /** Bound for CSTS.RDY transitions: CAP.TO in 500 ms units (§3.1.1); at least 500 ms. */
  get readyTimeoutMs(): number {
    return Math.max(1, this.cap.TO) * 500;
  }

  private async init(): Promise<void> {
    const cap = this.cap;
    if ((cap.CSS & CAP_CSS_NVM) === 0) {
      throw new NvmeControllerError('ERR_NVME_UNSUPPORTED', `${this.platform.name}: CAP.CSS 0x${cap.CSS.toString(16)} lacks the NVM command set`);
    }
    if (cap.MPSMIN > 0) {
      throw new NvmeControllerError(
        'ERR_NVME_UNSUPPORTED',
        `${this.platform.name}: CAP.MPSMIN ${cap.MPSMIN} (${4096 << cap.MPSMIN} bytes) is above the driver's 4 KiB memory page`,
      );
    }
    // PCI command register (PCI Local Bus 3.0 §6.2.2): memory space (bit 1) and bus master (bit 2).
    const cmd = this.platform.config.read16(0x04);
    this.platform.config.write16(0x04, cmd | 0x0006);

    this.identifyBuf = this.platform.dma.alloc(IDENTIFY_SIZE, DEVICE_WRITES, { align: MEM_PAGE, label: 'nvme identify' });
    const adminEntries = Math.min(this.opts.adminEntries, cap.MQES + 1, 4096);
    this.admin = new QueuePair({
      qid: 0,
      entries: adminEntries,
      dstrd: cap.DSTRD,
      regs: this.regs,
      dma: this.platform.dma,
      label: 'nvme admin',
      onComplete: (slot, status, dw0) => this.adminComplete(slot, status, dw0),
      onProtocolError: (m) => this.opts.log(m),
    });
    this.admin.now = () => this.platform.clock.now();
    for (let i = 0; i < this.admin.slots; i++) this.adminWaiters.push(null);

    if (this.opts.interrupts === 'msix') {
      const have = this.platform.irq.count('msix');
      if (have < 1) {
        throw new NvmeControllerError('ERR_NVME_UNSUPPORTED', `${this.platform.name} offers no MSI-X vectors`, "open with { interrupts: 'poll' }");
      }
      this.vectors = this.platform.irq.enable('msix', Math.min(have, 1 + Math.max(1, this.opts.queues)));
      this.vectors[0]!.onFire(() => this.onAdminVector());
    }

    await this.enableController();
    const id = await this.adminIdentify(Cns.CONTROLLER, 0);
    this.identify = parseIdentifyController(id);
    this.mdtsBytes = Math.min(this.identify.mdts === 0 ? Infinity : MEM_PAGE * 2 ** this.identify.mdts, 2 * 1024 * 1024);
    this.maxTransferBytes = Math.min(this.mdtsBytes, this.opts.bufferBytes);

    // Number of Queues (§5.21.1.7): ask, then use what is granted (0's based both ways).
    const wanted = Math.max(1, Math.min(this.opts.queues, 0xfffe, this.vectors.length ? this.vectors.length - 1 : 0xfffe));
    const nq = await this.adminCommand('Set Features (Number of Queues)', AdminOpcode.SET_FEATURES, 0, 0n, 0n, FeatureId.NUMBER_OF_QUEUES, ((wanted - 1) << 16) | (wanted - 1));
    const granted = Math.min((nq.dw0 & 0xffff) + 1, (nq.dw0 >>> 16) + 1);
    const count = Math.min(wanted, granted);

    await this.discoverNamespaces();
    const entries = Math.min(this.opts.queueEntries, this.cap.MQES + 1, 4096);
    for (let q = 1; q <= count; q++) {
      const ioq = new IoQueue({
        qid: q,
        entries,
        bufferBytes: this.opts.bufferBytes,
        dstrd: cap.DSTRD,
        regs: this.regs,
        dma: this.platform.dma,
        label: 'nvme',
        onProtocolError: (m) => this.opts.log(m),
      });
      ioq.qp.now = () => this.platform.clock.now();
      this.ioQueues.push(ioq);
      await this.createIoQueue(ioq);
      if (this.vectors.length) {
        const v = this.vectors[this.vectorOf(q)]!;
        v.onFire(() => this.onIoVector(ioq));
      }
    }
    this.state = 'ready';
  }

  /** §7.6.1 steps 1-7: disable, wait RDY=0, program AQA/ASQ/ACQ and CC, enable, wait RDY=1. */
  private async enableController(): Promise<void> {
    const cc = this.regs.read32(REG.CC);
    if (getField(cc, CC.EN) === 1) this.regs.write32(REG.CC, setField(cc, CC.EN, 0));
    await this.waitCsts(CSTS.RDY, 0, 'CSTS.RDY to clear after CC.EN=0', true);
    const a = this.admin;
    this.regs.write32(REG.AQA, setField(setField(0, AQA.ASQS, a.entries - 1), AQA.ACQS, a.entries - 1));
    this.regs.write64(REG.ASQ, a.sq.iova);
    this.regs.write64(REG.ACQ, a.cq.iova);
    // NVM command set, 4 KiB pages, round robin, 64-byte SQEs (2^6), 16-byte CQEs (2^4) (§3.1.5).
    this.regs.write32(REG.CC, encodeCc({ EN: 0, CSS: 0, MPS: 0, AMS: 0, IOSQES: 6, IOCQES: 4 }));
    this.regs.write32(REG.CC, encodeCc({ EN: 1, CSS: 0, MPS: 0, AMS: 0, IOSQES: 6, IOCQES: 4 }));
    await this.waitCsts(CSTS.RDY, 1, 'CSTS.RDY to set after CC.EN=1', false);
  }

  /** Poll CSTS until `field` equals `value`, bounded by CAP.TO; CSTS.CFS aborts the wait unless tolerated. */
  private async waitCsts(field: { shift: number; bits: number }, value: number, what: string, tolerateCfs: boolean): Promise<void> {
    const clock = this.platform.clock;
    const deadline = clock.now() + this.readyTimeoutMs;
    let delay = 0;
    for (;;) {
      const csts = this.regs.read32(REG.CSTS);
      if (csts === 0xffffffff) {
        throw new NvmeControllerError('ERR_NVME_FATAL', `${this.platform.name}: CSTS reads all ones: the device is gone (surprise removal or a dead link)`);
      }
      if (getField(csts, field) === value) return;
      if (!tolerateCfs && getField(csts, CSTS.CFS) === 1) {
        throw new NvmeControllerError('ERR_NVME_FATAL', `${this.platform.name}: controller fatal status (CSTS.CFS) while waiting for ${what}`, 'reset the device (FLR) and open it again');
      }
      if (clock.now() >= deadline) {
        throw new NvmeTimeoutError(
          `${this.platform.name}: no ${what} within CAP.TO = ${this.cap.TO} x 500 ms (CSTS 0x${csts.toString(16)})`,
          'the controller is not responding: check the device, then reset it',
        );
      }
      await clock.sleep(delay);
      delay = Math.min(delay === 0 ? 1 : delay * 2, 50);
    }
  }

  private async discoverNamespaces(): Promise<void> {
    let ids: number[];
    try {
      ids = parseNamespaceList(await this.adminIdentify(Cns.ACTIVE_NAMESPACE_LIST, 0));
    } catch (e) {
      // NVMe 1.0 controllers do not know CNS 02h: fall back to 1..NN.
      if (!(e instanceof NvmeStatusError)) throw e;
      ids = Array.from({ length: Math.min(this.identify.nn, 1024) }, (_, i) => i + 1);
    }
    for (const nsid of ids) {
      const ns: IdentifyNamespace = parseIdentifyNamespace(await this.adminIdentify(Cns.NAMESPACE, nsid));
      if (ns.ncap === 0n || ns.blockSize === 0) continue;
      this.namespaces.push(new Namespace(this, nsid, ns));
    }
  }

  /** The MSI-X vector of I/O queue `qid`: its own when there are enough, else the admin queue's (0). */
  private vectorOf(qid: number): number {
    return qid < this.vectors.length ? qid : 0;
  }

  private async createIoQueue(q: IoQueue): Promise<void> {
    const qp = q.qp;
    const iv = this.vectorOf(q.qid);
    const ien = this.vectors.length ? CREATE_CQ_IEN : 0;
    // Create I/O CQ (§5.3), then the SQ bound to it (§5.4): physically contiguous (PC=1).
    await this.adminCommand(`Create I/O CQ ${q.qid}`, AdminOpcode.CREATE_IO_CQ, 0, qp.cq.iova, 0n, ((qp.entries - 1) << 16) | q.qid, (iv << 16) | ien | CREATE_CQ_PC);
    await this.adminCommand(`Create I/O SQ ${q.qid}`, AdminOpcode.CREATE_IO_SQ, 0, qp.sq.iova, 0n, ((qp.entries - 1) << 16) | q.qid, (q.qid << 16) | CREATE_SQ_PC);
  }

  private async adminIdentify(cns: number, nsid: number): Promise<Uint8Array> {
    this.identifyBuf.bytes.fill(0);
    await this.adminCommand(`Identify (CNS ${cns}, NSID ${nsid})`, AdminOpcode.IDENTIFY, nsid, this.identifyBuf.iova, 0n, cns, 0);
    return this.identifyBuf.bytes.slice(0, IDENTIFY_SIZE);
  }

  /**
   * Issue an admin command and wait for its completion (bounded by adminTimeoutMs with
   * escalation). Rejects with NvmeStatusError on a non-zero status.
   */
  async adminCommand(what: string, opcode: number, nsid: number, prp1: bigint, prp2: bigint, cdw10: number, cdw11: number, cdw12 = 0): Promise<{ dw0: number }> {
    const r = await this.adminRaw(what, opcode, nsid, prp1, prp2, cdw10, cdw11, cdw12);
    if (r.status !== 0) throw new NvmeStatusError(what, r.status);
    return { dw0: r.dw0 };
  }

  /** As `adminCommand`, but resolves with the status instead of throwing on it. */
  adminRaw(what: string, opcode: number, nsid: number, prp1: bigint, prp2: bigint, cdw10: number, cdw11: number, cdw12 = 0): Promise<{ status: number; dw0: number }> {
    if (this.state === 'failed' || this.state === 'closed') {
      return Promise.reject(new NvmeControllerError(this.state === 'closed' ? 'ERR_NVME_CLOSED' : 'ERR_NVME_FATAL', `${what}: the controller is ${this.state}`));
    }
    const slot = this.admin.acquire();
    if (slot < 0) return Promise.reject(new NvmeControllerError('ERR_NVME_PROTOCOL', `${what}: the admin queue is full (${this.admin.slots} commands in flight)`));
    return new Promise((resolve, reject) => {
      this.adminWaiters[slot] = { what, resolve, reject };
      this.admin.submit(
        slot,
        opcode,
        nsid,
        Number(prp1 & 0xffff_ffffn),
        Number(prp1 >> 32n),
        Number(prp2 & 0xffff_ffffn),
        Number(prp2 >> 32n),
        cdw10 >>> 0,
        cdw11 >>> 0,
        cdw12 >>> 0,
        0,
      );
      this.admin.ring();
      this.kick();
    });
  }

  private adminComplete(slot: number, status: number, dw0: number): void {
    const w = this.adminWaiters[slot];
    this.adminWaiters[slot] = null;
    if (!w) return;
    if (status === STATUS_ABANDONED) w.reject(this.abandonError(w.what));
    else w.resolve({ status, dw0 });
  }

  /** The error for an I/O that completed only because the driver aborted it after a timeout. */
  abortedError(what: string): Error {
    return new NvmeTimeoutError(`${what}: no completion within ${this.opts.ioTimeoutMs} ms; aborted (Abort, §5.1) and failed`, 'retry the I/O; the controller is still usable');
  }

  /** The error for a command abandoned by a reset after a timeout, or by close. */
  abandonError(what: string): Error {
    if (this.state === 'closed') return new NvmeControllerError('ERR_NVME_CLOSED', `${what}: the controller was closed with the command in flight`);
    return new NvmeTimeoutError(`${what}: ${this.abandonReason}; the controller was reset and the command failed`, 'retry the I/O; if it keeps timing out, the device is not answering');
  }

  // ---- I/O plumbing used by Namespace -------------------------------------------------------

  /** The I/O queue with the most free slots, or undefined when all are full or a reset is under way. */
  pickQueue(): IoQueue | undefined {
    if (this.state !== 'ready') return undefined;
    let best: IoQueue | undefined;
    let free = 0;
    for (const q of this.ioQueues) {
      const f = q.qp.available;
      if (f > free) {
        free = f;
        best = q;
      }
    }
    return best;
  }

  /** Check the controller can take I/O; throws the reason otherwise. */
  assertUsable(what: string): void {
    if (this.state === 'ready' || this.state === 'resetting') return;
    throw new NvmeControllerError(this.state === 'closed' ? 'ERR_NVME_CLOSED' : 'ERR_NVME_FATAL', `${what}: the controller is ${this.state}`);
  }

  /** After a submit: schedule the doorbells (one ring per queue per microtask batch) and the engine. */
  track(): void {
    if (!this.ringScheduled) {
      this.ringScheduled = true;
      queueMicrotask(this.ringAll);
    }
    this.kick();
  }

  /** Callbacks waiting for a free slot. */
  private readonly slotWaiters: (() => void)[] = [];
  waitForSlot(): Promise<void> {
    return new Promise((r) => {
      this.slotWaiters.push(r);
      this.kick();
    });
  }
  /** Wake queued I/Os after completions freed slots. */
  wakeSlotWaiters(): void {
    while (this.slotWaiters.length && this.pickQueue()) this.slotWaiters.shift()!();
  }

  // ---- the completion engine ----------------------------------------------------------------

  /** Make sure completions are reaped and timeouts checked while anything is in flight. */
  private kick(): void {
    if (this.opts.interrupts === 'poll') {
      if (!this.engineScheduled) {
        this.engineScheduled = true;
        setImmediate(this.engineTick);
      }
    } else if (this.engineTimer === undefined) {
      const every = Math.max(5, Math.min(this.opts.adminTimeoutMs, this.opts.ioTimeoutMs) / 4);
      this.engineTimer = setTimeout(() => {
        this.engineTimer = undefined;
        this.checkTimeouts();
        if (this.busy()) this.kick();
      }, every);
    }
  }

  private busy(): boolean {
    if (this.admin.inFlight > 0) return true;
    for (const q of this.ioQueues) if (q.qp.inFlight > 0) return true;
    return false;
  }

  /** Polling mode: reap every queue, check timeouts now and then, and go again while busy. */
  private engine(): void {
    this.engineScheduled = false;
    if (this.state === 'closed') return;
    let reaped = this.admin.poll(0x7fffffff);
    for (const q of this.ioQueues) reaped += q.poll();
    // Nothing yet: give the CPU to whoever completes our commands, if it waits for one (Clock.idle).
    if (reaped === 0) this.platform.clock.idle?.();
    this.wakeSlotWaiters();
    const now = this.platform.clock.now();
    if (now - this.lastTimeoutScan >= 5) {
      this.lastTimeoutScan = now;
      this.checkTimeouts();
    }
    if (this.busy() || this.slotWaiters.length) this.kick();
  }

  private onAdminVector(): void {
    this.admin.poll(0x7fffffff);
    // Vector 0 is shared with I/O queues whose qid is a multiple of the vector count.
    for (const q of this.ioQueues) if (this.vectorOf(q.qid) === 0) q.poll();
    this.wakeSlotWaiters();
  }

  private onIoVector(q: IoQueue): void {
    q.poll();
    this.wakeSlotWaiters();
  }

  /**
   * Timeout escalation for each command past its deadline (checked by the engine):
   * I/O: reap the queue again (a lost interrupt), then Abort (§5.1) and wait once more, then a
   * controller reset, which fails the command with ERR_NVME_TIMEOUT.
   * Admin: reap again, then reset (an admin queue that does not answer cannot carry an Abort).
   * During a reset, an admin command that times out fails at once and the controller is marked failed.
   */
  checkTimeouts(): void {
    if (this.state !== 'ready' && this.state !== 'resetting' && this.state !== 'init') return;
    const now = this.platform.clock.now();
    const a = this.admin;
    for (let s = 0; s < a.slots; s++) {
      if (!a.isBusy(s) || now - a.startedAt[s]! < this.opts.adminTimeoutMs) continue;
      a.poll(0x7fffffff);
      if (!a.isBusy(s)) continue;
      const what = this.adminWaiters[s]?.what ?? `admin slot ${s}`;
      if (this.state !== 'ready') {
        this.abandonReason = `no completion within ${this.opts.adminTimeoutMs} ms during controller ${this.state === 'init' ? 'initialisation' : 'reset'}`;
        a.abandon(s);
        continue;
      }
      this.opts.log(`${what}: no completion after ${this.opts.adminTimeoutMs} ms; resetting the controller`);
      void this.recover(`${what} got no completion within ${this.opts.adminTimeoutMs} ms`);
      return;
    }
    if (this.state !== 'ready') return;
    for (const q of this.ioQueues) {
      const qp = q.qp;
      for (let s = 0; s < qp.slots; s++) {
        if (!qp.isBusy(s) || now - qp.startedAt[s]! < this.opts.ioTimeoutMs) continue;
        q.poll();
        if (!qp.isBusy(s)) continue;
        if (qp.stage[s] === 0) {
          qp.stage[s] = 1;
          qp.startedAt[s] = now;
          this.aborts++;
          const cid = qp.cidOf(s);
          this.opts.log(`I/O queue ${q.qid} CID ${cid}: no completion after ${this.opts.ioTimeoutMs} ms; sending Abort`);
          this.adminRaw(`Abort (SQ ${q.qid}, CID ${cid})`, AdminOpcode.ABORT, 0, 0n, 0n, ((cid << 16) | q.qid) >>> 0, 0).catch(() => undefined);
        } else {
          this.opts.log(`I/O queue ${q.qid} CID ${qp.cidOf(s)}: still no completion ${this.opts.ioTimeoutMs} ms after Abort; resetting the controller`);
          void this.recover(`an I/O on queue ${q.qid} got no completion within ${this.opts.ioTimeoutMs} ms, nor after an Abort`);
          return;
        }
      }
    }
  }

  /**
   * Controller reset after a timeout (§7.3.2): fail everything in flight with ERR_NVME_TIMEOUT,
   * disable the controller (which deletes every queue), enable it again and recreate the I/O
   * queues. If it does not come back within its bounds it is marked failed, and every later call
   * fails fast with ERR_NVME_FATAL.
   */
  private async recover(reason: string): Promise<void> {
    if (this.state !== 'ready') return;
    this.state = 'resetting';
    this.resets++;
    this.abandonReason = reason;
    this.abandonAll();
    try {
      this.regs.write32(REG.CC, setField(this.regs.read32(REG.CC), CC.EN, 0));
      await this.waitCsts(CSTS.RDY, 0, 'CSTS.RDY to clear (reset)', true);
      this.admin.resetRing();
      for (const q of this.ioQueues) q.qp.resetRing();
      await this.enableController();
      const n = this.ioQueues.length;
      await this.adminCommand('Set Features (Number of Queues)', AdminOpcode.SET_FEATURES, 0, 0n, 0n, FeatureId.NUMBER_OF_QUEUES, ((n - 1) << 16) | (n - 1));
      for (const q of this.ioQueues) await this.createIoQueue(q);
      this.state = 'ready';
      this.opts.log(`controller reset done (${reason})`);
    } catch (e) {
      this.state = 'failed';
      this.abandonAll();
      this.opts.log(`controller reset failed: ${(e as Error).message}; the controller is marked failed`);
    }
    // Wake I/Os that waited during the reset: they proceed, or see the failed state.
    for (const w of this.slotWaiters.splice(0)) w();
  }

  /** Abandon every command in flight; each handler sees STATUS_ABANDONED and rejects. */
  private abandonAll(): void {
    for (let s = 0; s < this.admin.slots; s++) this.admin.abandon(s);
    for (const q of this.ioQueues) for (let s = 0; s < q.slots; s++) q.abandon(s);
  }

  /** Diagnostics: the state, counters and queue positions. */
  status(): { state: string; resets: number; aborts: number; unknownCids: number; inFlight: number[] } {
    return { state: this.state, resets: this.resets, aborts: this.aborts, unknownCids: this.unknownCids, inFlight: [this.admin.inFlight, ...this.ioQueues.map((q) => q.inFlight)] };
  }

  // ---- shutdown -----------------------------------------------------------------------------

  /**
   * Orderly shutdown: delete the I/O queues, CC.SHN = normal, wait for CSTS.SHST = complete
   * (bounded), disable interrupts, release every window. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasReady = this.state === 'ready';
    if (wasReady) {
      for (const q of [...this.ioQueues].reverse()) {
        try {
          await this.adminCommand(`Delete I/O SQ ${q.qid}`, AdminOpcode.DELETE_IO_SQ, 0, 0n, 0n, q.qid, 0);
          await this.adminCommand(`Delete I/O CQ ${q.qid}`, AdminOpcode.DELETE_IO_CQ, 0, 0n, 0n, q.qid, 0);
        } catch (e) {
          this.opts.log(`close: ${(e as Error).message}`);
          break;
        }
      }
      // Shutdown notification (§7.6.2): CC.SHN = 01b, then CSTS.SHST = 10b.
      this.regs.write32(REG.CC, setField(this.regs.read32(REG.CC), CC.SHN, SHN_NORMAL));
      const deadline = this.platform.clock.now() + this.opts.shutdownTimeoutMs;
      let done = false;
      while (this.platform.clock.now() < deadline) {
        if (getField(this.regs.read32(REG.CSTS), CSTS.SHST) === SHST_COMPLETE) {
          done = true;
          break;
        }
        await this.platform.clock.sleep(2);
      }
      if (!done) this.opts.log(`close: CSTS.SHST did not report shutdown complete within ${this.opts.shutdownTimeoutMs} ms; disabling anyway`);
    }
    this.state = 'closed';
    this.abandonAll();
    this.teardown();
  }

  /** Disable the controller so it stops using queue memory, then release everything. */
  private teardown(): void {
    this.state = 'closed';
    for (const w of this.slotWaiters.splice(0)) w();
    if (this.engineTimer !== undefined) clearTimeout(this.engineTimer);
    try {
      const cc = this.regs.read32(REG.CC);
      if (getField(cc, CC.EN) === 1) this.regs.write32(REG.CC, setField(cc, CC.EN, 0));
    } catch {
      /* the device may be gone; release memory anyway */
    }
    if (this.vectors.length) this.platform.irq.disable();
    for (const q of this.ioQueues) q.close();
    this.admin?.close();
    if (this.identifyBuf) this.platform.dma.free(this.identifyBuf);
  }

  /** A readable summary for logs. */
  describe(): string {
    const id = this.identify;
    return `${this.platform.name}: ${id.model} (serial ${id.serial}, firmware ${id.firmware}), ${this.namespaces.length} namespace(s), ${this.ioQueues.length} I/O queue(s), ${this.opts.interrupts}, max transfer ${this.maxTransferBytes} bytes`;
  }
}
