/**
 * What both ends share: framing over a Duplex stream, sequence ids, requests with a timeout each,
 * and the rule that nothing a peer sends makes the endpoint throw. Problems become HypercallErrors
 * passed to `onViolation`; a 'kill' problem stops the endpoint, fails every pending request and
 * destroys the stream.
 */
import type { Duplex } from 'node:stream';
import { DmaboxError } from '../../../common/errors.js';
import { FrameDecoder, encodeFrame, type FrameHeader, type FrameSink } from './codec.js';
import { HypercallError, HypercallUsageError, type HcDecision } from './errors.js';
import { readReply } from './messages.js';
import { HC_MAX_PAYLOAD, HC_VERSION, HEADER_SIZE, HcStatus, HcType, REPLY, RESULT_SIZE, typeName } from './protocol.js';
import { realTimers, type Timer, type Timers } from '../../../common/timers.js';

/** A call the peer answered with a status other than OK: not a protocol violation, a refusal. */
export class HypercallRefused extends DmaboxError<'ERR_HC_REFUSED'> {
  readonly status: HcStatus;
  readonly call: HcType;
  constructor(call: HcType, status: HcStatus) {
    super('ERR_HC_REFUSED', `${typeName(call)} refused by the peer: ${HcStatus[status] ?? status}`);
    this.call = call;
    this.status = status;
  }
}

/**
 * Frames handled per event-loop turn, at most (default of `framesPerTurn`): one event loop may
 * serve many channels (the manager's, one per sandbox), so a peer that keeps its socket full gets
 * this share of a turn and the rest of its input waits, the stream paused, for the next.
 */
export const FRAMES_PER_TURN = 64;

export interface ChannelOptions {
  /** Largest payload accepted (default HC_MAX_PAYLOAD). */
  maxPayload?: number;
  /** Frames handled per event-loop turn (default FRAMES_PER_TURN). */
  framesPerTurn?: number;
  /** Every violation, with its decision; on 'kill' the endpoint stops right after. Called from the stream's data handler: must not throw. */
  onViolation?: (error: HypercallError) => void;
  /** Time and timers for every deadline (default: Node's); tests pass fake time. */
  timers?: Timers;
}

interface Pending {
  call: HcType;
  read: (v: DataView, offset: number) => unknown;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: Timer;
}

export abstract class Channel implements FrameSink {
  protected readonly decoder: FrameDecoder;
  protected readonly timers: Timers;
  protected version = HC_VERSION;
  private nextSeq = 1;
  private peerSeq = 0;
  private readonly pending = new Map<number, Pending>();
  private terminated: HypercallError | undefined;
  /** The request seq most recently answered (so an error path does not answer twice). */
  protected lastReplyRef = 0;
  /** Frames received (valid or not) and violations reported: for the manager's status page. */
  readonly counters = { frames: 0, dropped: 0 };
  /** The per-turn budget: frames left this turn, input held back for the next, and its reset. */
  private readonly framesPerTurn: number;
  private turnLeft: number;
  private turnReset = false;
  private held: Buffer | undefined;
  private heldAt = 0;
  private readonly nextTurn = (): void => {
    this.turnReset = false;
    this.turnLeft = this.framesPerTurn;
    const chunk = this.held;
    if (chunk === undefined) return;
    this.held = undefined;
    this.input(chunk, this.heldAt);
    if (this.held === undefined && !this.stream.destroyed) this.stream.resume();
  };

  protected constructor(
    protected readonly stream: Duplex,
    private readonly accepts: ReadonlySet<number>,
    protected readonly channelOptions: ChannelOptions,
  ) {
    this.timers = channelOptions.timers ?? realTimers;
    this.decoder = new FrameDecoder(this, { maxPayload: channelOptions.maxPayload ?? HC_MAX_PAYLOAD, version: this.version });
    this.framesPerTurn = channelOptions.framesPerTurn ?? FRAMES_PER_TURN;
    if (!Number.isInteger(this.framesPerTurn) || this.framesPerTurn < 1)
      throw new HypercallUsageError('ERR_HC_ARG', `framesPerTurn ${channelOptions.framesPerTurn}: expected a whole number of frames, 1 or more`);
    this.turnLeft = this.framesPerTurn;
    stream.on('data', (chunk: Buffer) => this.input(chunk, 0));
    stream.on('end', () => this.peerGone('the peer closed the channel'));
    stream.on('close', () => this.peerGone('the channel closed'));
    stream.on('error', (e: Error) => this.peerGone(`the channel failed: ${e.message}`, e));
  }

  /**
   * Decode `chunk` from `from` within this turn's frame budget; what is left is held, the stream
   * paused, until the next turn.
   */
  private input(chunk: Buffer, from: number): void {
    if (this.held !== undefined) {
      // Data the stream had already read when it was paused: after what is held, in order.
      this.held = Buffer.concat([this.held.subarray(this.heldAt), chunk.subarray(from)]);
      this.heldAt = 0;
      return;
    }
    const frames = this.counters.frames;
    // The replies and frames this chunk's frames make leave in one write (writev), not one each.
    const at = this.batch(() => this.decoder.push(chunk, from, this.turnLeft));
    this.turnLeft -= this.counters.frames - frames;
    if (!this.turnReset) {
      this.turnReset = true;
      setImmediate(this.nextTurn);
    }
    if (at < chunk.length && !this.decoder.stopped) {
      this.held = chunk;
      this.heldAt = at;
      this.stream.pause();
    }
  }

  /** Why the endpoint stopped, once it has. */
  get stopped(): HypercallError | undefined {
    return this.terminated;
  }

  /** Handle a frame of an accepted type other than REPLY. May throw a HypercallError ('drop' or 'kill'). */
  protected abstract handle(header: FrameHeader, payload: DataView): void;

  /**
   * A hook for subclasses, run for every frame in sequence (REPLY, and types this side does not
   * accept, included: `accepted` says which) before anything else is checked or read: rate limits
   * and state. False drops the frame (the subclass reported why); a throw is a violation.
   */
  protected admit(_header: FrameHeader, _accepted: boolean): boolean {
    return true;
  }

  /** A hook for subclasses: the endpoint stopped. */
  protected onStop(_error: HypercallError): void {}

  frame(h: FrameHeader, v: DataView): void {
    this.counters.frames++;
    if (h.seq !== this.peerSeq + 1) {
      const what = h.seq <= this.peerSeq ? 'a repeated or replayed' : 'a skipped';
      this.violation(new HypercallError('ERR_HC_SEQUENCE', 'kill', `${typeName(h.type)} with seq ${h.seq} after seq ${this.peerSeq}: ${what} sequence id`));
      return;
    }
    this.peerSeq = h.seq;
    try {
      // Charged first: a frame dropped below (an unknown type, a request with a ref) costs its
      // sender a token like any other, so a flood of them meets the same limits.
      if (!this.admit(h, this.accepts.has(h.type))) return;
      if (!this.accepts.has(h.type)) {
        throw new HypercallError('ERR_HC_BAD_TYPE', 'drop', `frame type ${h.type} (${typeName(h.type)}) seq ${h.seq} is not one this side accepts; dropped`);
      }
      if (h.ref !== 0 && h.type !== HcType.REPLY)
        throw new HypercallError('ERR_HC_BAD_FIELD', 'drop', `${typeName(h.type)} seq ${h.seq} has ref ${h.ref}; only REPLY frames carry a ref; dropped`);
      if (h.type === HcType.REPLY) this.reply(h, v);
      else this.handle(h, v);
    } catch (e) {
      this.violation(
        e instanceof HypercallError
          ? e
          : new HypercallError('ERR_HC_BAD_FIELD', 'drop', `${typeName(h.type)} seq ${h.seq}: ${(e as Error).message}`, { cause: e }),
      );
    }
  }

  problem(error: HypercallError): void {
    this.violation(error);
  }

  protected violation(error: HypercallError): void {
    if (this.terminated) return;
    if (error.decision === 'drop') this.counters.dropped++;
    try {
      this.channelOptions.onViolation?.(error);
    } finally {
      if (error.decision === 'kill') this.stop(error);
    }
  }

  /** Stop for good: no more input, every pending request fails, the stream is destroyed. */
  protected stop(error: HypercallError): void {
    if (this.terminated) return;
    this.terminated = error;
    this.decoder.stop();
    for (const [seq, p] of this.pending) {
      this.timers.clearTimeout(p.timer);
      this.pending.delete(seq);
      p.reject(error);
    }
    this.onStop(error);
    // Flush what was written (a last REPLY saying why), then drop the stream; bounded either way.
    const destroy = () => this.stream.destroy();
    this.stream.once('finish', destroy);
    this.timers.setTimeout(destroy, 100).unref();
    this.stream.end();
  }

  private peerGone(message: string, cause?: Error): void {
    if (this.terminated) return;
    this.decoder.end(); // reports a truncated frame first, if any
    this.violation(new HypercallError('ERR_HC_CLOSED', 'kill', message, cause ? { cause } : {}));
  }

  /**
   * Run `fn`, its frames sent together in one write when it returns (requests made one after the
   * other without waiting, such as the boot parameters): one system call and one wake-up of the
   * peer instead of one each. Returns what `fn` returns.
   */
  batch<T>(fn: () => T): T {
    this.stream.cork();
    try {
      return fn();
    } finally {
      this.stream.uncork();
    }
  }

  /** Send a frame; `fill` writes the payload. Nothing is sent once the endpoint stopped. Returns the seq used. */
  protected send(type: HcType, ref: number, length: number, fill?: (v: DataView, b: Buffer) => void): number {
    if (this.terminated || this.stream.destroyed) return 0;
    const seq = this.nextSeq++;
    this.stream.write(encodeFrame(this.version, type, seq, ref, length, fill));
    return seq;
  }

  /** Answer request `ref` of type `call`; `fill` writes the result (only when status is OK). */
  protected sendReply(call: HcType, ref: number, status: HcStatus, fill?: (v: DataView, offset: number) => void): void {
    const size = RESULT_SIZE[call]!;
    this.lastReplyRef = ref;
    this.send(HcType.REPLY, ref, REPLY.headerSize + size, (v) => {
      v.setUint8(HEADER_SIZE + REPLY.call, call);
      v.setUint16(HEADER_SIZE + REPLY.status, status, true);
      if (status === HcStatus.OK) fill?.(v, HEADER_SIZE + REPLY.result);
    });
  }

  /** Send a request and wait, at most `timeoutMs`, for its REPLY; `read` decodes the result. */
  protected request<T>(
    call: HcType,
    length: number,
    fill: ((v: DataView, b: Buffer) => void) | undefined,
    timeoutMs: number,
    timeoutDecision: HcDecision,
    read: (v: DataView, offset: number) => T,
  ): Promise<T> {
    if (this.terminated) return Promise.reject(this.terminated);
    return new Promise<T>((resolve, reject) => {
      // Registered before the write: over an in-process stream the reply can arrive inside it.
      const seq = this.nextSeq;
      const timer = this.timers.setTimeout(() => {
        this.pending.delete(seq);
        const e = new HypercallError('ERR_HC_TIMEOUT', timeoutDecision, `no reply to ${typeName(call)} seq ${seq} within ${timeoutMs} ms`);
        reject(e);
        if (timeoutDecision === 'kill') this.violation(e);
      }, timeoutMs);
      this.pending.set(seq, { call, read, resolve: resolve as (v: unknown) => void, reject, timer });
      this.send(call, 0, length, fill);
    });
  }

  private reply(h: FrameHeader, v: DataView): void {
    const p = this.pending.get(h.ref);
    if (!p)
      throw new HypercallError('ERR_HC_UNEXPECTED_REPLY', 'drop', `REPLY seq ${h.seq} answers seq ${h.ref}, which is not an outstanding request; dropped`);
    const r = readReply(v, h.length);
    if (r.call !== p.call)
      throw new HypercallError(
        'ERR_HC_BAD_FIELD',
        'drop',
        `REPLY seq ${h.seq} to seq ${h.ref} is for ${typeName(r.call)}, but that request was ${typeName(p.call)}; dropped`,
      );
    let result: unknown;
    if (r.status === HcStatus.OK) {
      try {
        result = p.read(v, HEADER_SIZE + REPLY.result);
      } catch (e) {
        this.settle(h.ref, p);
        p.reject(e as Error);
        throw e;
      }
    }
    this.settle(h.ref, p);
    if (r.status === HcStatus.OK) p.resolve(result);
    else p.reject(new HypercallRefused(r.call, r.status));
  }

  private settle(seq: number, p: Pending): void {
    this.timers.clearTimeout(p.timer);
    this.pending.delete(seq);
  }

  /** Close the channel from this side (pending requests fail with ERR_HC_CLOSED). */
  close(): void {
    this.stop(new HypercallError('ERR_HC_CLOSED', 'kill', 'the channel was closed by this side'));
  }
}
