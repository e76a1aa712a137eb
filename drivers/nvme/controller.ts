/**
 * The NVMe controller driver: what code outside drivers/nvme opens and closes. It sees the device
 * only through drivers/contract/platform.ts, so it cannot tell the simulator from VFIO.
 *
 * `open` runs the initialisation (NVMe 1.4 §7.6.1): check CAP, enable bus mastering, create the
 * admin queue, enable the controller (bringup.ts), Identify Controller, negotiate the number of
 * I/O queues (§5.21.1.7), discover the namespaces, create the I/O queues. From then on the pieces
 * run on their own: I/O dispatch (dispatch.ts, all a Namespace sees), the completion engine
 * (engine.ts), timeout escalation and reset (recovery.ts). `close` shuts down in order (§7.6.2).
 *
 * Every wait on the device is bounded: enable/disable by CAP.TO, shutdown by `shutdownTimeoutMs`,
 * commands by `adminTimeoutMs` / `ioTimeoutMs` with escalation (poll again, Abort, controller
 * reset, then fail with ERR_NVME_TIMEOUT).
 */
import type { IrqVector, Platform, RegisterSpace } from '../contract/platform.js';
import { Cns, NUMBER_OF_QUEUES } from '../../spec/nvme/commands.js';
import {
  NS_LIST_MAX,
  parseIdentifyController,
  parseIdentifyNamespace,
  parseNamespaceList,
  type IdentifyController,
  type IdentifyNamespace,
} from '../../spec/nvme/identify.js';
import type { Cap } from '../../spec/nvme/registers.js';
import { AdminQueue, type AdminResult } from './admin.js';
import { ControllerRegisters } from './bringup.js';
import { IoDispatcher } from './dispatch.js';
import { CompletionEngine, vectorOf } from './engine.js';
import { NvmeControllerError, NvmeStatusError } from './errors.js';
import { IoQueue, MEM_PAGE } from './ioqueue.js';
import { Namespace } from './namespace.js';
import { resolveOptions, type NvmeOptions, type ResolvedOptions } from './options.js';
import { Recovery } from './recovery.js';
import { ControllerState } from './state.js';

export type { NvmeOptions } from './options.js';

/** The largest transfer per command the driver uses: 2 MiB, what one PRP list page describes. */
const MAX_TRANSFER_CAP = 2 * 1024 * 1024;
/** The driver's bound on queue entries (CAP.MQES allows up to 65536). */
const MAX_QUEUE_ENTRIES = 4096;
/** The most I/O queue pairs Number of Queues can ask for: its 0's based fields stop below FFFFh (§5.21.1.7). */
const MAX_IO_QUEUES = NUMBER_OF_QUEUES.NSQ.max - 1;

export class NvmeController {
  readonly platform: Platform;
  readonly regs: RegisterSpace;
  readonly cap: Cap;
  identify!: IdentifyController;
  readonly namespaces: Namespace[] = [];
  /** The I/O queues: the low-level, allocation-free API (ioqueue.ts). */
  readonly ioQueues: IoQueue[] = [];

  private readonly opts: ResolvedOptions;
  private readonly state: ControllerState;
  private readonly hw: ControllerRegisters;
  private readonly io: IoDispatcher;
  private admin: AdminQueue | undefined;
  private recovery: Recovery | undefined;
  private engine: CompletionEngine | undefined;
  private vectors: IrqVector[] = [];

  private constructor(platform: Platform, opts: NvmeOptions) {
    this.platform = platform;
    this.opts = resolveOptions(platform.name, opts);
    this.state = new ControllerState(this.opts.ioTimeoutMs);
    this.hw = new ControllerRegisters(platform);
    this.regs = this.hw.regs;
    this.cap = this.hw.cap;
    this.io = new IoDispatcher(this.state, this.ioQueues, () => this.engine?.kick());
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
    return this.hw.readyTimeoutMs;
  }

  /** Largest transfer per command in bytes through the block API's slot buffers (MDTS and bufferBytes honoured). */
  get maxTransferBytes(): number {
    return this.io.maxTransferBytes;
  }

  /** Largest transfer per command the controller allows (MDTS, §5.15.2.2; capped at 2 MiB, one PRP list page). */
  get mdtsBytes(): number {
    return this.io.mdtsBytes;
  }

  /** Completions with an unknown CID, over all queues (each was logged and ignored). */
  get unknownCids(): number {
    return (this.admin?.qp.unknownCids ?? 0) + this.ioQueues.reduce((n, q) => n + q.qp.unknownCids, 0);
  }

  /** Controller resets done after timeouts. */
  get resets(): number {
    return this.recovery?.resets ?? 0;
  }

  /** Abort commands sent after timeouts. */
  get aborts(): number {
    return this.recovery?.aborts ?? 0;
  }

  private async init(): Promise<void> {
    const hw = this.hw;
    const cap = this.cap;
    hw.checkCapabilities();
    ControllerRegisters.enableBusMastering(this.platform);

    const admin = new AdminQueue({
      entries: Math.min(this.opts.adminEntries, cap.MQES + 1, MAX_QUEUE_ENTRIES),
      dstrd: cap.DSTRD,
      regs: this.regs,
      dma: this.platform.dma,
      clock: this.platform.clock,
      state: this.state,
      kick: () => this.engine?.kick(),
      log: this.opts.log,
    });
    this.admin = admin;
    if (this.opts.interrupts === 'msix') {
      const have = this.platform.irq.count('msix');
      if (have < 1) {
        throw new NvmeControllerError('ERR_NVME_UNSUPPORTED', `${this.platform.name} offers no MSI-X vectors`, "open with { interrupts: 'poll' }");
      }
      this.vectors = this.platform.irq.enable('msix', Math.min(have, 1 + Math.max(1, this.opts.queues)));
    }
    this.recovery = new Recovery({
      state: this.state,
      admin,
      queues: this.ioQueues,
      hw,
      clock: this.platform.clock,
      adminTimeoutMs: this.opts.adminTimeoutMs,
      ioTimeoutMs: this.opts.ioTimeoutMs,
      log: this.opts.log,
      restart: () => this.restart(),
      resumed: () => this.io.wakeAll(),
    });
    const engine = new CompletionEngine({
      interrupts: this.opts.interrupts,
      vectors: this.vectors.length,
      clock: this.platform.clock,
      state: this.state,
      admin,
      queues: this.ioQueues,
      dispatch: this.io,
      recovery: this.recovery,
      adminTimeoutMs: this.opts.adminTimeoutMs,
      ioTimeoutMs: this.opts.ioTimeoutMs,
    });
    this.engine = engine;
    if (this.vectors.length) this.vectors[0]!.onFire(() => engine.onAdminVector());

    await hw.enable(admin.qp);
    this.identify = parseIdentifyController(await admin.identifyController());
    const mdts = this.identify.mdts === 0 ? Infinity : MEM_PAGE * 2 ** this.identify.mdts;
    this.io.mdtsBytes = Math.min(mdts, MAX_TRANSFER_CAP);
    this.io.maxTransferBytes = Math.min(this.io.mdtsBytes, this.opts.bufferBytes);

    // Number of Queues: ask, then use what is granted (and no more than the vectors carry).
    const vectorCap = this.vectors.length ? this.vectors.length - 1 : MAX_IO_QUEUES;
    const wanted = Math.max(1, Math.min(this.opts.queues, MAX_IO_QUEUES, vectorCap));
    const granted = Math.min(wanted, await admin.setNumberOfQueues(wanted));
    // Only queues whose doorbells lie inside BAR0 (CAP.DSTRD may space them past its end).
    const count = Math.min(granted, hw.doorbellQueues());
    if (count < 1)
      throw new NvmeControllerError(
        'ERR_NVME_UNSUPPORTED',
        `${this.platform.name}: CAP.DSTRD ${cap.DSTRD} leaves no room in BAR0 (${this.regs.size} bytes) for an I/O queue's doorbells`,
        'the device reports a doorbell stride its BAR cannot hold: check the device or pass through another controller',
      );
    if (count < granted) this.opts.log(`${granted - count} I/O queue(s) left out: their doorbells would lie outside BAR0 (CAP.DSTRD ${cap.DSTRD})`);

    await this.discoverNamespaces(admin);
    const entries = Math.min(this.opts.queueEntries, cap.MQES + 1, MAX_QUEUE_ENTRIES);
    for (let qid = 1; qid <= count; qid++) {
      const q = new IoQueue({
        qid,
        entries,
        bufferBytes: this.opts.bufferBytes,
        dstrd: cap.DSTRD,
        regs: this.regs,
        dma: this.platform.dma,
        label: 'nvme',
        onProtocolError: this.opts.log,
      });
      q.qp.now = () => this.platform.clock.now();
      this.ioQueues.push(q);
      if (this.vectors.length) {
        const v = this.vectors[vectorOf(qid, this.vectors.length)]!;
        v.onFire(() => engine.onIoVector(q));
      }
    }
    await this.createIoQueues(admin);
    this.state.phase = 'ready';
  }

  /** Active namespaces with a usable LBA format (§5.15.2.1); NVMe 1.0 controllers without CNS 02h: 1..NN. */
  private async discoverNamespaces(admin: AdminQueue): Promise<void> {
    let ids: number[];
    try {
      ids = parseNamespaceList(await admin.identify(Cns.ACTIVE_NAMESPACE_LIST, 0));
    } catch (e) {
      if (!(e instanceof NvmeStatusError)) throw e;
      ids = Array.from({ length: Math.min(this.identify.nn, NS_LIST_MAX) }, (_, i) => i + 1);
    }
    for (const nsid of ids) {
      const ns = parseIdentifyNamespace(await admin.identify(Cns.NAMESPACE, nsid));
      if (ns.ncap === 0n || ns.blockSize === 0) continue;
      // Identify data is device input: a namespace it describes impossibly is left out, not trusted
      // (and not allowed to fail the controller's other namespaces).
      const why = implausibleNamespace(ns, this.io.maxTransferBytes);
      if (why !== '') {
        this.opts.log(`namespace ${nsid} left out: its Identify Namespace data is implausible (${why})`);
        continue;
      }
      this.namespaces.push(new Namespace(this.io, nsid, ns));
    }
  }

  private async createIoQueues(admin: AdminQueue): Promise<void> {
    const n = this.vectors.length;
    for (const q of this.ioQueues) await admin.createIoQueuePair(q.qp, vectorOf(q.qid, n), n > 0);
  }

  /** After a reset: enable again, the same number of queues, the same I/O queues. */
  private async restart(): Promise<void> {
    const admin = this.admin!;
    await this.hw.enable(admin.qp);
    await admin.setNumberOfQueues(this.ioQueues.length);
    await this.createIoQueues(admin);
  }

  /**
   * Issue an admin command and wait for its completion (bounded by adminTimeoutMs with
   * escalation). Rejects with NvmeStatusError on a non-zero status.
   */
  adminCommand(what: string, opcode: number, nsid: number, prp1: bigint, prp2: bigint, cdw10: number, cdw11: number, cdw12 = 0): Promise<{ dw0: number }> {
    if (!this.admin) return Promise.reject(this.state.unusable(what));
    return this.admin.command(what, opcode, nsid, prp1, prp2, cdw10, cdw11, cdw12);
  }

  /** As `adminCommand`, but resolves with the status instead of throwing on it. */
  adminRaw(what: string, opcode: number, nsid: number, prp1: bigint, prp2: bigint, cdw10: number, cdw11: number, cdw12 = 0): Promise<AdminResult> {
    if (!this.admin) return Promise.reject(this.state.unusable(what));
    return this.admin.raw(what, opcode, nsid, prp1, prp2, cdw10, cdw11, cdw12);
  }

  // ---- the low-level I/O API (ioQueues): for benchmarks and tests that submit commands themselves

  /** The I/O queue with the most free slots, or undefined when all are full or a reset is under way. */
  pickQueue(): IoQueue | undefined {
    return this.io.pickQueue();
  }

  /** After a low-level submit: ring the doorbells with the batch and make sure the completion is reaped. */
  track(): void {
    this.io.track();
  }

  /** Diagnostics: the state, counters and queue positions. */
  status(): { state: string; resets: number; aborts: number; unknownCids: number; inFlight: number[] } {
    return {
      state: this.state.phase,
      resets: this.resets,
      aborts: this.aborts,
      unknownCids: this.unknownCids,
      inFlight: [this.admin?.qp.inFlight ?? 0, ...this.ioQueues.map((q) => q.inFlight)],
    };
  }

  /**
   * Orderly shutdown: delete the I/O queues, CC.SHN = normal, wait for CSTS.SHST = complete
   * (bounded), disable interrupts, release every window. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.state.phase === 'closed') return;
    if (this.state.phase === 'ready' && this.admin) {
      for (const q of [...this.ioQueues].reverse()) {
        try {
          await this.admin.deleteIoQueuePair(q.qid);
        } catch (e) {
          this.opts.log(`close: ${(e as Error).message}`);
          break;
        }
      }
      if (!(await this.hw.shutdown(this.opts.shutdownTimeoutMs))) {
        this.opts.log(`close: CSTS.SHST did not report shutdown complete within ${this.opts.shutdownTimeoutMs} ms; disabling anyway`);
      }
    }
    this.state.phase = 'closed';
    this.recovery?.abandonAll();
    this.teardown();
  }

  /** Disable the controller so it stops using queue memory, then release everything. */
  private teardown(): void {
    this.state.phase = 'closed';
    this.io.wakeAll();
    this.engine?.stop();
    this.hw.stop();
    if (this.vectors.length) this.platform.irq.disable();
    if (this.state.disableIgnored) {
      // Freed memory would be handed out again while the controller may still write into it.
      this.opts.log(
        'close: the controller ignored CC.EN = 0 during a reset, so its queues and data buffers are kept, not freed: reset the function (FLR) before this memory is used again',
      );
      return;
    }
    for (const q of this.ioQueues) q.close();
    this.admin?.close();
  }

  /** A readable summary for logs. */
  describe(): string {
    const id = this.identify;
    return `${this.platform.name}: ${id.model} (serial ${id.serial}, firmware ${id.firmware}), ${this.namespaces.length} namespace(s), ${this.ioQueues.length} I/O queue(s), ${this.opts.interrupts}, max transfer ${this.maxTransferBytes} bytes`;
  }
}

/**
 * Why Identify Namespace data (§5.15.2.1) cannot describe a namespace the driver can use, or ''.
 * NSZE beyond 2^53 blocks (LBAs are numbers here), NCAP or NUSE above NSZE, and a logical block
 * larger than one command may move (no block could ever be read) are device garbage.
 */
export function implausibleNamespace(ns: IdentifyNamespace, maxTransferBytes: number): string {
  if (ns.nsze > BigInt(Number.MAX_SAFE_INTEGER)) return `NSZE ${ns.nsze} blocks is beyond 2^53`;
  if (ns.ncap > ns.nsze || ns.nuse > ns.ncap) return `NCAP ${ns.ncap} / NUSE ${ns.nuse} exceed NSZE ${ns.nsze}`;
  if (ns.blockSize > maxTransferBytes) return `a ${ns.blockSize}-byte logical block is larger than one command may move (${maxTransferBytes} bytes)`;
  return '';
}
