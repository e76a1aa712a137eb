/**
 * The driver container's end of the hypercall channel: the calls a driver makes to the manager,
 * and the manager's requests (SHUTDOWN, QUIESCE) it must answer. It checks the host's frames with
 * the same rigour (a confused manager must not corrupt a driver), and bounds every wait.
 */
import type { Duplex } from 'node:stream';
import { Channel, type ChannelOptions } from '../../abi/hypercall/channel.js';
import type { FrameHeader } from '../../abi/hypercall/codec.js';
import { HypercallError, HypercallUsageError } from '../../abi/hypercall/errors.js';
import { HypercallRefused } from '../../abi/hypercall/channel.js';
import {
  logBytes,
  paramKeyBytes,
  readClockResult,
  readParamValue,
  writeGetParam,
  readHelloResult,
  readIrqGrant,
  readQuiesce,
  readShutdown,
  readWindowMapping,
  writeFault,
  writeHeartbeat,
  writeHello,
  writeIrqSetup,
  writeLog,
  writeMapWindow,
  writeQuiesceResult,
  writeReady,
  type ClockResult,
  type FaultReport,
  type Heartbeat,
  type HelloResult,
  type IrqGrant,
  type IrqKindName,
  type QuiesceRequest,
  type ShutdownRequest,
  type WindowMapping,
} from '../../abi/hypercall/messages.js';
import {
  CLOCK,
  FAULT,
  GETPARAM,
  HC_MIN_VERSION,
  HC_VERSION,
  HELLO,
  HEARTBEAT,
  HOST_REQUESTS,
  HcStatus,
  HcType,
  IRQ_SETUP,
  LOG,
  LogLevel,
  MAP_WINDOW,
  READY,
} from '../../abi/hypercall/protocol.js';

export interface GuestHandler {
  /** Stop within the deadline: quiesce, release the device, exit. Resolve when it is safe to be killed. */
  shutdown(request: ShutdownRequest): void | Promise<void>;
  /** Finish in-flight I/O and start none; return how many are still in flight at the deadline. */
  quiesce(request: QuiesceRequest): number | Promise<number>;
}

export interface GuestOptions extends ChannelOptions {
  handler: GuestHandler;
  /** Driver name for HELLO (printable ASCII, at most 16 characters). */
  name: string;
  /** Default: process.pid. */
  pid?: number;
  /** Bound on every wait for a reply from the manager (default 5000 ms), on the `timers` seam. */
  timeoutMs?: number;
}

const ACCEPTS = new Set<number>([...HOST_REQUESTS, HcType.REPLY]);

export class GuestEndpoint extends Channel {
  private readonly options: GuestOptions;
  /** What HELLO negotiated, once it has. */
  session: HelloResult | undefined;

  constructor(stream: Duplex, options: GuestOptions) {
    super(stream, ACCEPTS, options);
    if (!/^[ -~]{1,16}$/.test(options.name))
      throw new HypercallUsageError('ERR_HC_ARG', `driver name '${options.name}': expected 1 to 16 printable ASCII characters`);
    this.options = options;
  }

  private get timeout(): number {
    return this.options.timeoutMs ?? 5000;
  }

  /** The manager kills a container whose first frame is not HELLO: refuse here, with a clear error, instead. */
  private started(call: string): void {
    if (!this.session)
      throw new HypercallUsageError('ERR_HC_NOT_STARTED', `${call} before hello(): the first call on the channel must be hello()`, {
        fix: 'await guest.hello() first',
      });
  }

  private startedAsync(call: string): Promise<never> | undefined {
    try {
      this.started(call);
      return undefined;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Negotiate the version and learn the session limits. Must be the first call. */
  async hello(): Promise<HelloResult> {
    const hello = { minVersion: HC_MIN_VERSION, maxVersion: HC_VERSION, pid: this.options.pid ?? process.pid, name: this.options.name };
    const r = await this.request(HcType.HELLO, HELLO.size, (v, b) => writeHello(v, b, hello), this.timeout, 'kill', readHelloResult);
    if (r.version < HC_MIN_VERSION || r.version > HC_VERSION) {
      const e = new HypercallError(
        'ERR_HC_VERSION_MISMATCH',
        'kill',
        `the manager chose version ${r.version}; this driver speaks ${HC_MIN_VERSION}..${HC_VERSION}`,
      );
      this.violation(e);
      throw e;
    }
    this.version = r.version;
    this.decoder.version = r.version;
    this.session = r;
    return r;
  }

  /** Map window `windowId` of the policy's grant (never an address: the manager chooses the IOVA). */
  mapWindow(windowId: number): Promise<WindowMapping> {
    if (!Number.isInteger(windowId) || windowId < 0 || windowId > 0xffffffff)
      return Promise.reject(new HypercallUsageError('ERR_HC_ARG', `window id ${windowId}: expected a whole number from 0 to 2^32 - 1`));
    const early = this.startedAsync('mapWindow');
    if (early) return early;
    return this.request(HcType.MAP_WINDOW, MAP_WINDOW.size, (v) => writeMapWindow(v, windowId), this.timeout, 'kill', readWindowMapping);
  }

  /** Ask for `vectors` interrupt vectors of a kind; the grant may be smaller. */
  irqSetup(kind: IrqKindName, vectors: number): Promise<IrqGrant> {
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > 2048)
      return Promise.reject(new HypercallUsageError('ERR_HC_ARG', `vectors ${vectors}: expected 1 to 2048 (the MSI-X table limit)`));
    const early = this.startedAsync('irqSetup');
    if (early) return early;
    return this.request(HcType.IRQ_SETUP, IRQ_SETUP.size, (v) => writeIrqSetup(v, { kind, vectors }), this.timeout, 'kill', readIrqGrant);
  }

  clock(): Promise<ClockResult> {
    const early = this.startedAsync('clock');
    if (early) return early;
    return this.request(HcType.CLOCK, CLOCK.size, undefined, this.timeout, 'kill', readClockResult);
  }

  /**
   * The value of boot parameter `key` (sandbox/abi/boot.ts): a string, or undefined when the
   * manager has none of that key (NOT_FOUND). Any other refusal rejects (HypercallRefused).
   */
  async getParam(key: string): Promise<string | undefined> {
    const bytes = paramKeyBytes(key);
    if (bytes === null)
      throw new HypercallUsageError(
        'ERR_HC_ARG',
        `parameter key ${JSON.stringify(key.slice(0, 80))}: expected 1 to 64 printable ASCII characters without spaces`,
      );
    const early = this.startedAsync('getParam');
    if (early) return early as Promise<never>;
    try {
      return await this.request(
        HcType.GETPARAM,
        GETPARAM.headerSize + bytes.length,
        (v, b) => writeGetParam(v, b, bytes),
        this.timeout,
        'kill',
        readParamValue,
      );
    } catch (e) {
      if (e instanceof HypercallRefused && e.status === HcStatus.NOT_FOUND) return undefined;
      throw e;
    }
  }

  /** A log line; text beyond 512 bytes of UTF-8 is cut. */
  log(level: LogLevel, text: string): void {
    this.started('log');
    const bytes = logBytes(text);
    this.send(HcType.LOG, 0, LOG.headerSize + bytes.length, (v, b) => writeLog(v, b, level, bytes));
  }

  /** Progress counters: they must never go down. Send one at least every session.heartbeatMs. */
  heartbeat(h: Heartbeat): void {
    this.started('heartbeat');
    this.send(HcType.HEARTBEAT, 0, HEARTBEAT.size, (v) => writeHeartbeat(v, h));
  }

  fault(f: FaultReport): void {
    this.started('fault');
    this.send(HcType.FAULT, 0, FAULT.size, (v) => writeFault(v, f));
  }

  /** The driver brought the device up with `queues` queues and serves I/O. */
  ready(queues: number): void {
    this.started('ready');
    this.send(HcType.READY, 0, READY.size, (v) => writeReady(v, { queues }));
  }

  /**
   * Send a heartbeat every half period the manager asked for (so one late timer does not miss the
   * deadline), reading the counters from `read`. Returns the function that stops it.
   */
  startHeartbeats(read: () => Heartbeat): () => void {
    this.started('startHeartbeats');
    const timers = this.timers;
    const timer = timers.setInterval(
      () => {
        if (this.stopped) timers.clearInterval(timer);
        else this.heartbeat(read());
      },
      Math.max(5, Math.floor(this.session!.heartbeatMs / 2)),
    );
    timer.unref();
    return () => timers.clearInterval(timer);
  }

  protected handle(h: FrameHeader, v: DataView): void {
    const handler = this.options.handler;
    if (h.type === HcType.SHUTDOWN) {
      const req = readShutdown(v, h.length);
      this.run(
        HcType.SHUTDOWN,
        h.seq,
        () => handler.shutdown(req),
        () => this.sendReply(HcType.SHUTDOWN, h.seq, HcStatus.OK),
      );
    } else if (h.type === HcType.QUIESCE) {
      const req = readQuiesce(v, h.length);
      this.run(
        HcType.QUIESCE,
        h.seq,
        () => handler.quiesce(req),
        (inflight) => {
          this.sendReply(HcType.QUIESCE, h.seq, HcStatus.OK, (w, o) => writeQuiesceResult(w, o, { inflight: (inflight as number) >>> 0 }));
        },
      );
    }
  }

  private run(call: HcType, ref: number, work: () => unknown, done: (value: unknown) => void): void {
    const failed = () => this.sendReply(call, ref, HcStatus.INTERNAL);
    try {
      const r = work();
      if (r instanceof Promise) r.then(done, failed);
      else done(r);
    } catch {
      failed();
    }
  }
}
