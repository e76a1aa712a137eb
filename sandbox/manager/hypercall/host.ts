/**
 * The manager's end of a container's hypercall channel. Every frame is hostile until checked:
 * sequence ids, type and direction, the token bucket of its type, the state (HELLO first), the
 * exact layout and every field. Violations go to `onViolation` with a decision; on 'kill' the
 * endpoint has stopped and the manager must kill the container. Every wait is bounded: HELLO must
 * come within `helloTimeoutMs`, heartbeats at least every `heartbeatMs * missedHeartbeats`, replies
 * to SHUTDOWN and QUIESCE within their deadline plus `replyGraceMs`; all on the `timers` seam.
 */
import type { Duplex } from 'node:stream';
import { Channel, type ChannelOptions } from '../../abi/hypercall/channel.js';
import type { FrameHeader } from '../../abi/hypercall/codec.js';
import { HypercallError, HypercallUsageError } from '../../abi/hypercall/errors.js';
import type { Timer } from '../../../common/timers.js';
import {
  paramValueBytes,
  readFault,
  readGetParam,
  readHeartbeat,
  readHello,
  readIrqSetup,
  readLog,
  readMapWindow,
  readQuiesceResult,
  readReady,
  writeClockResult,
  writeParamValue,
  writeHelloResult,
  writeIrqGrant,
  writeQuiesce,
  writeShutdown,
  writeWindowMapping,
  type FaultReport,
  type Heartbeat,
  type Hello,
  type IrqGrant,
  type IrqRequest,
  type LogRecord,
  type QuiesceResult,
  type Ready,
  type WindowMapping,
} from '../../abi/hypercall/messages.js';
import {
  GUEST_NOTIFICATIONS,
  GUEST_REQUESTS,
  HC_MAX_PAYLOAD,
  HC_MIN_VERSION,
  HC_VERSION,
  HcStatus,
  HcType,
  QUIESCE,
  SHUTDOWN,
  ShutdownReason,
  typeName,
} from '../../abi/hypercall/protocol.js';
import { INVALID_BUCKET, TokenBuckets, type RateLimit } from './rate.js';

type Answer<T> = T | HcStatus | Promise<T | HcStatus>;

/** What the manager does with each call; results may be returned or promised. */
export interface HostHandler {
  /** Map window `windowId` (0-based, below the policy's window count, checked already). */
  mapWindow(windowId: number): Answer<WindowMapping>;
  irqSetup(request: IrqRequest): Answer<IrqGrant>;
  /** The value of boot parameter `key` (sandbox/abi/boot.ts), or undefined: answered NOT_FOUND. Absent: UNSUPPORTED. */
  getParam?(key: string): string | undefined;
  hello?(hello: Hello): void;
  log?(record: LogRecord): void;
  heartbeat?(heartbeat: Heartbeat): void;
  fault?(fault: FaultReport): void;
  ready?(ready: Ready): void;
}

export interface HostOptions extends ChannelOptions {
  handler: HostHandler;
  /** How many windows the policy grants (ids 0..windowCount-1). */
  windowCount: number;
  /** The heartbeat period the container is told to keep (default 1000 ms). */
  heartbeatMs?: number;
  /** Heartbeat periods that may pass without one before the container is declared dead (default 3). */
  missedHeartbeats?: number;
  /** How long the container has to say HELLO (default 5000 ms). */
  helloTimeoutMs?: number;
  /** Added to a SHUTDOWN or QUIESCE deadline to bound the wait for its reply (default 1000 ms). */
  replyGraceMs?: number;
  /** Token buckets per call type; merged over DEFAULT_RATES. */
  rates?: Partial<Record<HcType, RateLimit>>;
  /** The bucket for frames of a type the host does not accept (default 4/s, burst 8): charged, then dropped. */
  invalidRate?: RateLimit;
  /**
   * Dropped frames tolerated within a second, whatever made each a drop (over its rate, an unknown
   * type, a request with a ref, a bad field): one more is a kill (ERR_HC_FLOOD). Default 256.
   */
  floodLimit?: number;
  /**
   * Dropped frames per second passed to `onViolation` one by one (default 16); the rest of that
   * second's are counted and summarised in one ERR_HC_DROPPED, so a flood costs the manager no
   * memory per frame.
   */
  reportLimit?: number;
  /** A handler threw or rejected: the call was answered INTERNAL. Not the container's fault. */
  onHandlerError?: (error: unknown, call: HcType) => void;
}

export const DEFAULT_RATES: Readonly<Partial<Record<HcType, RateLimit>>> = {
  [HcType.HELLO]: { perSecond: 1, burst: 2 },
  [HcType.MAP_WINDOW]: { perSecond: 64, burst: 64 },
  [HcType.IRQ_SETUP]: { perSecond: 4, burst: 8 },
  [HcType.CLOCK]: { perSecond: 1000, burst: 1000 },
  [HcType.GETPARAM]: { perSecond: 64, burst: 128 },
  [HcType.LOG]: { perSecond: 100, burst: 200 },
  [HcType.HEARTBEAT]: { perSecond: 20, burst: 20 },
  [HcType.FAULT]: { perSecond: 50, burst: 100 },
  [HcType.READY]: { perSecond: 1, burst: 2 },
  [HcType.REPLY]: { perSecond: 16, burst: 16 },
};

export type HostState = 'hello' | 'running' | 'ready' | 'stopped';

const ACCEPTS = new Set<number>([...GUEST_REQUESTS, ...GUEST_NOTIFICATIONS, HcType.REPLY]);

export class HostEndpoint extends Channel {
  private readonly options: HostOptions;
  private readonly buckets: TokenBuckets;
  private readonly heartbeatMs: number;
  private stateValue: HostState = 'hello';
  private helloTimer: Timer | undefined;
  private watchdog: Timer | undefined;
  private watchdogMs = 0;
  /**
   * A timer runs before the event loop reads pending input: after a stall of the manager's own
   * loop, heartbeats may be waiting unread in the socket. So the watchdog judges one turn later,
   * once they have been read, and kills only if none came meanwhile.
   */
  private readonly onWatchdog = (): void => {
    const seen = this.heartbeats;
    this.timers
      .setTimeout(() => {
        if (this.heartbeats !== seen || this.stateValue === 'stopped') return;
        const p = this.peer!;
        this.violation(new HypercallError('ERR_HC_HEARTBEAT', 'kill', `no heartbeat from '${p.name}' (pid ${p.pid}) for ${this.watchdogMs} ms`));
      }, 1)
      .unref();
  };
  /** Drop accounting over the current one-second window (flood limit, bounded reporting). */
  private dropWindowStart = -Infinity;
  private dropsInWindow = 0;
  /** Drops of this window not reported one by one, by code (a closed set of codes: bounded). */
  private readonly unreported = new Map<string, number>();
  private unreportedTimer: Timer | undefined;
  /** Heartbeats taken (the watchdog's second look compares it). */
  private heartbeats = 0;
  /** The last heartbeat's counters (they may never go down). */
  lastHeartbeat: Heartbeat | undefined;
  /** Who said HELLO. */
  peer: Hello | undefined;

  constructor(stream: Duplex, options: HostOptions) {
    super(stream, ACCEPTS, options);
    if (!Number.isInteger(options.windowCount) || options.windowCount < 0 || options.windowCount > 64)
      throw new HypercallUsageError('ERR_HC_ARG', `windowCount ${options.windowCount}: expected an integer from 0 to 64`);
    this.options = options;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.buckets = new TokenBuckets(
      { ...DEFAULT_RATES, ...options.rates, [INVALID_BUCKET]: options.invalidRate ?? { perSecond: 4, burst: 8 } },
      this.timers.now(),
    );
    this.helloTimer = this.timers.setTimeout(() => {
      this.violation(new HypercallError('ERR_HC_TIMEOUT', 'kill', `no HELLO within ${options.helloTimeoutMs ?? 5000} ms of start`));
    }, options.helloTimeoutMs ?? 5000);
    this.helloTimer.unref(); // a bound, not a reason to keep the process alive
  }

  get state(): HostState {
    return this.stateValue;
  }

  /** Ask the container to stop within `deadlineMs`; resolves when it acknowledged. */
  shutdown(deadlineMs: number, reason: ShutdownReason = ShutdownReason.STOP): Promise<void> {
    checkDeadline(deadlineMs);
    return this.request(
      HcType.SHUTDOWN,
      SHUTDOWN.size,
      (v) => writeShutdown(v, { deadlineMs, reason }),
      deadlineMs + (this.options.replyGraceMs ?? 1000),
      'kill',
      () => undefined,
    );
  }

  /** Ask the container to finish in-flight I/O and start none; resolves with what is still in flight. */
  quiesce(deadlineMs: number): Promise<QuiesceResult> {
    checkDeadline(deadlineMs);
    return this.request(
      HcType.QUIESCE,
      QUIESCE.size,
      (v) => writeQuiesce(v, { deadlineMs }),
      deadlineMs + (this.options.replyGraceMs ?? 1000),
      'kill',
      readQuiesceResult,
    );
  }

  protected override onStop(): void {
    this.stateValue = 'stopped';
    this.timers.clearTimeout(this.helloTimer);
    this.timers.clearTimeout(this.watchdog);
    this.timers.clearTimeout(this.unreportedTimer);
    this.unreported.clear();
  }

  protected override admit(h: FrameHeader, accepted: boolean): boolean {
    const t = h.type as HcType;
    if (!this.buckets.take(accepted ? t : INVALID_BUCKET, this.timers.now())) {
      this.rateDrop(t, h.seq);
      return false;
    }
    if (this.stateValue === 'hello' && t !== HcType.HELLO) {
      throw new HypercallError('ERR_HC_STATE', 'kill', `${typeName(t)} seq ${h.seq} before HELLO: the first frame must be HELLO`);
    }
    return true;
  }

  protected handle(h: FrameHeader, v: DataView): void {
    const t = h.type as HcType;
    try {
      this.dispatch(t, h, v);
    } catch (e) {
      // A malformed request still gets an answer, so a buggy (not hostile) container does not hang.
      if (e instanceof HypercallError && GUEST_REQUESTS.includes(t) && this.lastReplyRef !== h.seq) this.sendReply(t, h.seq, HcStatus.BAD_REQUEST);
      throw e;
    }
  }

  private dispatch(t: HcType, h: FrameHeader, v: DataView): void {
    const handler = this.options.handler;
    switch (t) {
      case HcType.HELLO:
        return this.hello(h, v);
      case HcType.MAP_WINDOW: {
        const id = readMapWindow(v, h.length);
        if (id >= this.options.windowCount) {
          this.sendReply(t, h.seq, HcStatus.DENIED);
          throw new HypercallError(
            'ERR_HC_BAD_FIELD',
            'drop',
            `MAP_WINDOW seq ${h.seq} asks for window ${id}; the policy grants ${this.options.windowCount} (ids 0..${this.options.windowCount - 1}); denied`,
          );
        }
        return this.answer(t, h.seq, () => handler.mapWindow(id), writeWindowMapping);
      }
      case HcType.IRQ_SETUP: {
        const req = readIrqSetup(v, h.length);
        return this.answer(t, h.seq, () => handler.irqSetup(req), writeIrqGrant);
      }
      case HcType.CLOCK: {
        if (h.length !== 0) throw new HypercallError('ERR_HC_BAD_LENGTH', 'drop', `CLOCK payload is ${h.length} bytes; its layout is 0; dropped`);
        const c = { monotonicNs: process.hrtime.bigint(), realtimeNs: BigInt(Date.now()) * 1_000_000n };
        return this.sendReply(t, h.seq, HcStatus.OK, (w, o) => writeClockResult(w, o, c));
      }
      case HcType.GETPARAM: {
        const key = readGetParam(v, h.length);
        return this.param(h.seq, key);
      }
      case HcType.LOG: {
        const r = readLog(v, h.length);
        return this.notify(t, () => handler.log?.(r));
      }
      case HcType.HEARTBEAT: {
        const hb = readHeartbeat(v, h.length);
        const last = this.lastHeartbeat;
        if (last && (hb.completed < last.completed || hb.errors < last.errors || hb.bytes < last.bytes)) {
          throw new HypercallError(
            'ERR_HC_BAD_FIELD',
            'drop',
            `HEARTBEAT seq ${h.seq}: counters went down (completed ${last.completed} -> ${hb.completed}, errors ${last.errors} -> ${hb.errors}, bytes ${last.bytes} -> ${hb.bytes}); dropped`,
          );
        }
        this.lastHeartbeat = hb;
        this.heartbeats++;
        this.armWatchdog();
        return this.notify(t, () => handler.heartbeat?.(hb));
      }
      case HcType.FAULT: {
        const f = readFault(v, h.length);
        return this.notify(t, () => handler.fault?.(f));
      }
      case HcType.READY: {
        const r = readReady(v, h.length);
        if (this.stateValue !== 'running') throw new HypercallError('ERR_HC_STATE', 'drop', `READY seq ${h.seq} in state '${this.stateValue}'; dropped`);
        this.stateValue = 'ready';
        return this.notify(t, () => handler.ready?.(r));
      }
      default:
        throw new HypercallError('ERR_HC_BAD_TYPE', 'drop', `${typeName(t)} is not handled by the host; dropped`);
    }
  }

  private hello(h: FrameHeader, v: DataView): void {
    const hello = readHello(v, h.length);
    if (this.stateValue !== 'hello') {
      this.sendReply(HcType.HELLO, h.seq, HcStatus.STATE);
      throw new HypercallError('ERR_HC_STATE', 'drop', `a second HELLO (seq ${h.seq}); dropped`);
    }
    const version = Math.min(HC_VERSION, hello.maxVersion);
    if (version < Math.max(HC_MIN_VERSION, hello.minVersion)) {
      this.sendReply(HcType.HELLO, h.seq, HcStatus.UNSUPPORTED);
      throw new HypercallError(
        'ERR_HC_VERSION_MISMATCH',
        'kill',
        `container '${hello.name}' speaks versions ${hello.minVersion}..${hello.maxVersion}; this manager ${HC_MIN_VERSION}..${HC_VERSION}`,
        {
          fix: 'rebuild the driver container image against this version of dmabox',
        },
      );
    }
    this.version = version;
    this.decoder.version = version;
    this.peer = hello;
    this.stateValue = 'running';
    this.timers.clearTimeout(this.helloTimer);
    this.watchdogMs = this.heartbeatMs * (this.options.missedHeartbeats ?? 3);
    this.armWatchdog();
    const result = { version, windowCount: this.options.windowCount, maxPayload: this.options.maxPayload ?? HC_MAX_PAYLOAD, heartbeatMs: this.heartbeatMs };
    this.sendReply(HcType.HELLO, h.seq, HcStatus.OK, (w, o) => writeHelloResult(w, o, result));
    this.notify(HcType.HELLO, () => this.options.handler.hello?.(hello));
  }

  /**
   * GETPARAM: an unknown key is an answer (NOT_FOUND), not a violation; a value the handler cannot
   * send (longer than HC_MAX_PARAM_VALUE bytes) is the manager's bug: INTERNAL, and reported.
   */
  private param(ref: number, key: string): void {
    const get = this.options.handler.getParam;
    if (!get) return this.sendReply(HcType.GETPARAM, ref, HcStatus.UNSUPPORTED);
    let value: string | undefined;
    try {
      value = get(key);
    } catch (e) {
      this.sendReply(HcType.GETPARAM, ref, HcStatus.INTERNAL);
      this.options.onHandlerError?.(e, HcType.GETPARAM);
      return;
    }
    if (value === undefined) return this.sendReply(HcType.GETPARAM, ref, HcStatus.NOT_FOUND);
    const bytes = paramValueBytes(value);
    if (bytes === null) {
      this.sendReply(HcType.GETPARAM, ref, HcStatus.INTERNAL);
      this.options.onHandlerError?.(
        new HypercallError('ERR_HC_BAD_FIELD', 'drop', `the value of parameter ${key} is longer than a GETPARAM reply holds`),
        HcType.GETPARAM,
      );
      return;
    }
    this.sendReply(HcType.GETPARAM, ref, HcStatus.OK, (w, o) => writeParamValue(w, o, bytes));
  }

  /** (Re)start the heartbeat watchdog: `watchdogMs` from now without a heartbeat is a kill. */
  private armWatchdog(): void {
    this.timers.clearTimeout(this.watchdog);
    this.watchdog = this.timers.setTimeout(this.onWatchdog, this.watchdogMs);
    this.watchdog.unref();
  }

  /** Run a request handler, sync or async, and reply with its result or status. */
  private answer<T>(call: HcType, ref: number, run: () => Answer<T>, write: (v: DataView, o: number, value: T) => void): void {
    const reply = (r: T | HcStatus) => {
      if (typeof r === 'number') this.sendReply(call, ref, r === HcStatus.OK ? HcStatus.INTERNAL : r);
      else this.sendReply(call, ref, HcStatus.OK, (v, o) => write(v, o, r));
    };
    const failed = (e: unknown) => {
      this.sendReply(call, ref, HcStatus.INTERNAL);
      this.options.onHandlerError?.(e, call);
    };
    try {
      const r = run();
      if (r instanceof Promise) r.then(reply, failed);
      else reply(r);
    } catch (e) {
      failed(e);
    }
  }

  private notify(call: HcType, run: () => void): void {
    try {
      run();
    } catch (e) {
      this.options.onHandlerError?.(e, call);
    }
  }

  private rateDrop(t: HcType, seq: number): void {
    this.violation(new HypercallError('ERR_HC_RATE', 'drop', `${typeName(t)} seq ${seq} is over its rate limit; dropped`));
  }

  /**
   * Every dropped frame passes here, whatever dropped it: counted against the flood limit first
   * (one too many is a kill), then reported one by one up to `reportLimit` a second, and only
   * counted beyond that (one ERR_HC_DROPPED summary per second says how many, by code).
   */
  protected override violation(error: HypercallError): void {
    if (error.decision !== 'drop' || this.stopped) return super.violation(error);
    const now = this.timers.now();
    if (now - this.dropWindowStart >= 1000) {
      this.reportUnreported();
      this.dropWindowStart = now;
      this.dropsInWindow = 0;
    }
    const limit = this.options.floodLimit ?? 256;
    if (++this.dropsInWindow > limit) {
      this.counters.dropped++;
      const more = this.unreportedText();
      this.unreported.clear();
      super.violation(
        new HypercallError(
          'ERR_HC_FLOOD',
          'kill',
          `${this.dropsInWindow} dropped frames within a second, over the limit of ${limit}${more}; the last: ${error.message}`,
        ),
      );
      return;
    }
    if (this.dropsInWindow <= (this.options.reportLimit ?? 16)) return super.violation(error);
    this.counters.dropped++;
    this.unreported.set(error.code, (this.unreported.get(error.code) ?? 0) + 1);
    if (!this.unreportedTimer) {
      this.unreportedTimer = this.timers.setTimeout(() => this.reportUnreported(), Math.max(1, this.dropWindowStart + 1000 - now));
      this.unreportedTimer.unref();
    }
  }

  /** One summary of the drops not reported one by one, if any. */
  private reportUnreported(): void {
    this.timers.clearTimeout(this.unreportedTimer);
    this.unreportedTimer = undefined;
    if (this.unreported.size === 0 || this.stopped) return;
    const text = this.unreportedText();
    this.unreported.clear();
    try {
      this.channelOptions.onViolation?.(new HypercallError('ERR_HC_DROPPED', 'drop', `dropped frames not reported one by one${text}`));
    } catch {
      // onViolation must not throw; a summary is not worth stopping for
    }
  }

  private unreportedText(): string {
    if (this.unreported.size === 0) return '';
    let n = 0;
    const parts: string[] = [];
    for (const [code, k] of this.unreported) {
      n += k;
      parts.push(`${code} ${k}`);
    }
    return ` (${n} not reported one by one: ${parts.join(', ')})`;
  }
}

function checkDeadline(ms: number): void {
  if (!Number.isInteger(ms) || ms < 1 || ms > 600_000)
    throw new HypercallUsageError('ERR_HC_ARG', `deadline ${ms} ms: expected a whole number of milliseconds from 1 to 600000`);
}
