/**
 * One NBD client connection: a streaming parser over reusable buffers for the handshake and the
 * transmission phase, pipelined requests served out of order, and simple or structured replies
 * (reads split around known zeroes, block status, error chunks).
 *
 * Input arrives in chunks of any size. The parser has one target at a time (`want` bytes into `dst`
 * at `dstPos`, or discarded when `dst` is null) and a state saying what the target is. Headers and
 * option data go into buffers owned by the connection; a write's payload and a read's reply get a
 * pooled Buffer of their own ("the data", buffer-pool.ts); socket input itself is read into one
 * reused buffer (reused-read.ts), so nothing may keep a view of it past the read. Request state
 * lives in pooled slots whose completion callbacks are bound once, so a request allocates no closure.
 *
 * Limits, each answering a hostile or broken client without hurting others: a handshake deadline,
 * a cap on options per handshake and on option size, a cap on requests and bytes in flight (input is
 * paused, not buffered, beyond it), a pause while the client does not read its replies, and a hard
 * disconnect on anything that desynchronises the stream (bad magic, unknown client flags, a write
 * payload beyond what a server must accept).
 */
import type { Socket } from 'node:net';
import type { TrackedRange } from '../allocation-map.js';
import { blockErrorKind, EXTENT_ZERO, ExtentList, type BlockCompletion, type BlockDevice, type BlockErrorKind } from '../block-device.js';
import { MAX_EXTENTS, type ExportDirectory, type NbdExport } from './export.js';
import { handleOption, optionTooBig, transmissionFlags, type HandshakeContext } from './handshake.js';
import { ALLOCATION_CONTEXT_ID } from './meta-context.js';
import {
  BLOCK_DESCRIPTOR_SIZE,
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_CACHE,
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_ENOTSUP,
  NBD_FLAG_SEND_FAST_ZERO,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REPLY_TYPE_OFFSET_HOLE,
  OFFSET_DATA_HEADER_SIZE,
  OFFSET_HOLE_CHUNK_SIZE,
  STRUCTURED_REPLY_SIZE,
  CLIENT_FLAGS_SIZE,
  HANDSHAKE_GREETING_SIZE,
  IHAVEOPT_HI,
  IHAVEOPT_LO,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOMEM,
  NBD_ENOSPC,
  NBD_EOVERFLOW,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_OPT_EXPORT_NAME,
  NBD_PORTABLE_MAX_PAYLOAD,
  NBD_REQUEST_MAGIC,
  NBDMAGIC_HI,
  NBDMAGIC_LO,
  OPTION_HEADER_SIZE,
  REQUEST_SIZE,
  SIMPLE_REPLY_SIZE,
  commandName,
  errorName,
} from './protocol.js';
import { ReplyWriter, writeChunkHeader, writeSimpleReplyHeader } from './reply-writer.js';
import { BufferPool } from './buffer-pool.js';
import { READ_BUFFER_BYTES, readIntoReusedBuffer } from './reused-read.js';
import { pskIdentity, tlsFailure, type NbdTls, type NbdTlsMode } from './tls.js';

/** What a connection needs from its server. */
export interface ConnectionHost extends ExportDirectory {
  readonly limits: ConnectionLimits;
  /** TLS keys when the server offers STARTTLS (undefined: NOTLS). */
  readonly tls: NbdTls | undefined;
  event(e: NbdEvent): void;
  /** The connection reached transmission with `exp` (false: the server is shutting down, drop it). */
  attached(conn: NbdConnection, exp: NbdExport): boolean;
  closed(conn: NbdConnection): void;
}

export interface ConnectionLimits {
  /** A client must reach transmission within this many milliseconds. */
  handshakeTimeoutMs: number;
  /** Options per handshake before the client is deemed a denial of service. */
  maxOptions: number;
  /** Longest option data read; longer options are skipped and answered NBD_REP_ERR_TOO_BIG. */
  maxOptionLength: number;
  /** Requests in flight per connection before input is paused. */
  maxInFlight: number;
  /** Payload bytes held for in-flight requests before input is paused. */
  maxInFlightBytes: number;
  /** Reply bytes queued on the socket before input is paused. */
  maxQueuedReplyBytes: number;
}

/** Logging hook events. Device errors and protocol violations carry what happened for an operator. */
export type NbdEvent =
  | { type: 'connect'; conn: number; peer: string }
  | { type: 'refused'; peer: string; reason: string }
  | { type: 'transmission'; conn: number; export: string; via: 'go' | 'export-name' }
  | { type: 'protocol-error'; conn: number; export?: string; message: string }
  | { type: 'handshake-timeout'; conn: number; peer: string }
  | { type: 'tls'; conn: number; protocol: string; cipher: string; identity?: string }
  | { type: 'tls-error'; conn: number; peer: string; message: string }
  | { type: 'device-error'; conn: number; export: string; command: string; offset: number; length: number; kind: BlockErrorKind; error: unknown }
  | { type: 'close'; conn: number; export?: string; reason: string };

/** §Error values: how each device failure kind goes on the wire. */
function nbdError(kind: BlockErrorKind): number {
  switch (kind) {
    case 'EPERM':
      return NBD_EPERM;
    case 'ENOMEM':
      return NBD_ENOMEM;
    case 'EINVAL':
    case 'ENOTSUP':
      return NBD_EINVAL;
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return NBD_ENOSPC;
    case 'EOVERFLOW':
      return NBD_EOVERFLOW;
    case 'ESHUTDOWN':
      return NBD_ESHUTDOWN;
    default:
      return NBD_EIO;
  }
}

// Parser states.
const S_CLIENT_FLAGS = 0;
const S_OPT_HEADER = 1;
const S_OPT_DATA = 2;
const S_OPT_SKIP = 3;
const S_REQ_HEADER = 4;
const S_REQ_PAYLOAD = 5;
const S_REQ_SKIP = 6;
const S_DONE = 7; // no more input is read (DISC, ABORT, closed)

const TWO32 = 0x100000000;
/** Write payload buffers kept for reuse per connection, and the largest one kept. */
const POOLED_PAYLOAD_BYTES = 1 << 20;
const MAX_POOLED_PAYLOAD = 128 << 10;
const RESOLVED: Promise<void> = Promise.resolve();

// What a slot's request is to the export's allocation tracker.
const UNTRACKED = 0;
const TRACKED_WRITE = 1;
const TRACKED_ZERO = 2;

/** One request from header to reply. Pooled; `onDone`/`onFail` are bound once. */
class Slot implements TrackedRange, BlockCompletion {
  type = 0;
  flags = 0;
  handleHi = 0;
  handleLo = 0;
  offset = 0;
  length = 0;
  /** Write payload, or read reply (16-byte header then the data). */
  data: Buffer | null = null;
  /** Reply error decided before the device was asked (for a skipped write payload). */
  early = 0;
  /** A FUA write on a device without FUA: flush before replying. */
  flushAfter = false;
  /** The device the request went to (the export's device may be replaced meanwhile). */
  device: BlockDevice | null = null;
  /** Followed by the export's allocation tracker: UNTRACKED, TRACKED_WRITE or TRACKED_ZERO. */
  tracked = UNTRACKED;
  /** What a successful trim or write-zeroes leaves (EXTENT_HOLE | EXTENT_ZERO). */
  zeroFlags = 0;
  tainted = false;
  prevTracked: TrackedRange | null = null;
  nextTracked: TrackedRange | null = null;
  readonly onDone: () => void;
  readonly onFail: (err: unknown) => void;
  constructor(private readonly conn: NbdConnection) {
    this.onDone = () => conn.completed(this);
    this.onFail = (err: unknown) => conn.failed(this, err);
  }
  /** BlockCompletion: a device's `readTo`/`writeFrom` ended. */
  complete(): void {
    this.conn.completed(this);
  }
  fail(err: unknown): void {
    this.conn.failed(this, err);
  }
}

export class NbdConnection implements HandshakeContext {
  readonly id: number;
  readonly peer: string;
  /** The server's exports, for the handshake. */
  readonly exports: ExportDirectory;
  /** The client's socket; after STARTTLS the TLS socket over it. */
  private socket: Socket;
  private tlsOn = false;
  /** The TLS handshake finished (its failures before that are reported as such). */
  private tlsReady = false;
  private readonly onDataBound = (chunk: Buffer): void => this.onData(chunk);
  private readonly unblockBound = (): void => this.unblock();
  private readonly onErrorBound = (err: Error): void => {
    this.closeReason = `socket error: ${err.message}`;
  };
  private readonly onCloseBound = (): void => this.onClose();
  private readonly host: ConnectionHost;
  private readonly limits: ConnectionLimits;
  private readonly replies: ReplyWriter;

  private state = S_CLIENT_FLAGS;
  private want = CLIENT_FLAGS_SIZE;
  private dst: Buffer | null;
  private dstPos = 0;
  /** Input not yet consumed while paused. */
  private pending: Buffer | null = null;
  private pendingPos = 0;
  /** Input comes through `onread` into a reused buffer (reused-read.ts), not 'data' events. */
  private reusedInput = false;
  /** Write payload buffers, back once their write completed. */
  private readonly payloads = new BufferPool(POOLED_PAYLOAD_BYTES, MAX_POOLED_PAYLOAD);
  private readonly head = Buffer.allocUnsafe(REQUEST_SIZE);
  private optBuf: Buffer | null;

  noZeroes = false;
  structured = false;
  metaExport: NbdExport | null = null;
  /** Transmission flags this client was told (the export's, plus SEND_DF with structured replies). */
  private tflags = 0;
  /** `base:allocation` was selected for the export in use: NBD_CMD_BLOCK_STATUS is served. */
  private blockStatusOk = false;
  /** Extents of one block status reply or sparse read (allocated once structured replies are in use). */
  private extents: ExtentList | null = null;
  private fixedNewstyle = false;
  private options = 0;
  private option = 0;
  private exp: NbdExport | null = null;
  private handshakeTimer: NodeJS.Timeout | null;
  private current: Slot | null = null;
  private readonly freeSlots: Slot[] = [];
  private inFlight = 0;
  private inFlightBytes = 0;
  private paused = false;
  /** Inside consume(): replies sent from there must not re-enter it. */
  private consuming = false;
  private closing = false;
  private dead = false;
  private closeReason = 'client closed the connection';

  constructor(id: number, socket: Socket, host: ConnectionHost) {
    this.id = id;
    // Input into one buffer reused for every read (reused-read.ts); a socket without a handle to
    // move (a test's) is read through its 'data' events instead.
    const moved = readIntoReusedBuffer(socket, Buffer.allocUnsafe(READ_BUFFER_BYTES), this.onDataBound);
    this.reusedInput = moved !== null;
    this.socket = moved ?? socket;
    this.host = host;
    this.exports = host;
    this.limits = host.limits;
    this.peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    this.dst = this.head;
    this.optBuf = Buffer.allocUnsafe(this.limits.maxOptionLength);
    this.replies = new ReplyWriter(this.socket, () => this.inFlight);
    this.socket.setNoDelay?.(true);
    this.listen(this.socket);
    // Accepted paused; flowing from here (a socket reading through `onread` must flow too, or its
    // end of input is never seen).
    this.socket.resume();
    this.handshakeTimer = setTimeout(() => {
      this.handshakeTimer = null;
      host.event({ type: 'handshake-timeout', conn: id, peer: this.peer });
      this.hangUp(`handshake not finished within ${this.limits.handshakeTimeoutMs} ms`);
    }, this.limits.handshakeTimeoutMs);
    this.handshakeTimer.unref?.();
    // §Newstyle negotiation: NBDMAGIC, IHAVEOPT, handshake flags.
    const g = Buffer.allocUnsafe(HANDSHAKE_GREETING_SIZE);
    g.writeUInt32BE(NBDMAGIC_HI, 0);
    g.writeUInt32BE(NBDMAGIC_LO, 4);
    g.writeUInt32BE(IHAVEOPT_HI, 8);
    g.writeUInt32BE(IHAVEOPT_LO, 12);
    g.writeUInt16BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, 16);
    this.socket.write(g);
  }

  /** The export in use, once in transmission. */
  get export(): NbdExport | null {
    return this.exp;
  }

  get tlsMode(): NbdTlsMode {
    return this.host.tls?.mode ?? 'off';
  }

  get secure(): boolean {
    return this.tlsOn;
  }

  private listen(socket: Socket): void {
    if (!this.reusedInput) socket.on('data', this.onDataBound);
    socket.on('drain', this.unblockBound);
    socket.on('error', this.onErrorBound);
    socket.on('close', this.onCloseBound);
  }

  /**
   * STARTTLS was acknowledged on the plain socket: from here every byte is TLS (§TLS support). State
   * negotiated before it is forgotten (structured replies, meta contexts), as the protocol requires.
   */
  private startTls(): void {
    if (this.pending !== null) {
      // §TLS support: the client MUST wait for the reply before its TLS handshake.
      return this.violation('data after NBD_OPT_STARTTLS before the server acknowledged it');
    }
    const raw = this.socket;
    raw.off('data', this.onDataBound);
    raw.off('drain', this.unblockBound);
    raw.off('error', this.onErrorBound);
    raw.off('close', this.onCloseBound);
    const secure = this.host.tls!.upgrade(raw);
    this.reusedInput = false; // TLS records are read by the TLS socket, into its own buffers
    this.socket = secure;
    this.replies.rebind(secure);
    this.tlsOn = true;
    this.structured = false;
    this.metaExport = null;
    this.listen(secure);
    // A handshake that fails (a wrong key, a plain-text client) ends in 'error', then 'close'.
    secure.on('error', (err: Error) => {
      const why = tlsFailure(err);
      this.closeReason = this.tlsReady ? `TLS: ${why}` : `TLS handshake failed: ${why}`;
      if (!this.tlsReady) this.host.event({ type: 'tls-error', conn: this.id, peer: this.peer, message: why });
    });
    raw.on('error', () => {
      /* reported through the TLS socket */
    });
    secure.once('secure', () => {
      this.tlsReady = true;
      const c = secure.getCipher();
      const identity = pskIdentity(secure);
      this.host.event({ type: 'tls', conn: this.id, protocol: secure.getProtocol() ?? '?', cipher: c?.name ?? '?', ...(identity ? { identity } : {}) });
    });
    this.expect(S_OPT_HEADER, OPTION_HEADER_SIZE, this.head);
  }

  send(bytes: Buffer): void {
    if (!this.dead) this.socket.write(bytes);
  }

  /** Stop reading; finish requests in flight, send their replies, then close (server shutdown). */
  drainAndClose(reason: string): void {
    if (!this.exp) {
      this.hangUp(reason);
      return;
    }
    this.closeReason = reason;
    this.beginClosing();
  }

  /** Hard disconnect (§Terminating the transmission phase). In-flight device work completes unseen. */
  hangUp(reason: string): void {
    if (this.dead) return;
    this.closeReason = reason;
    this.state = S_DONE;
    this.pending = null;
    this.socket.destroy();
  }

  // ---- input ------------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.state === S_DONE) return;
    if (this.pending !== null) {
      // A chunk that was already on its way when the socket was paused: keep it behind the rest.
      this.pending = Buffer.concat([this.pending.subarray(this.pendingPos), chunk]);
    } else {
      this.pending = chunk;
    }
    this.pendingPos = 0;
    this.consume();
    if (this.pending !== null && !this.paused && this.state !== S_DONE) {
      // Input held back stays where it was read: a socket reading into a reused buffer stops reading
      // here (readStop), and is resumed only once nothing is held (unblock), so the bytes are intact.
      this.paused = true;
      this.socket.pause();
    }
  }

  /** Input may no longer be read before the next request header: too much in flight or unread replies. */
  private blocked(): boolean {
    return (
      this.inFlight >= this.limits.maxInFlight ||
      this.inFlightBytes >= this.limits.maxInFlightBytes ||
      this.socket.writableLength >= this.limits.maxQueuedReplyBytes
    );
  }

  private consume(): void {
    this.consuming = true;
    try {
      this.consumeLoop();
    } finally {
      this.consuming = false;
    }
  }

  private consumeLoop(): void {
    while (this.pending !== null && this.state !== S_DONE) {
      if (this.state === S_REQ_HEADER && this.dstPos === 0 && this.blocked()) return;
      const chunk = this.pending;
      const take = Math.min(chunk.length - this.pendingPos, this.want);
      if (this.dst !== null) chunk.copy(this.dst, this.dstPos, this.pendingPos, this.pendingPos + take);
      this.dstPos += take;
      this.pendingPos += take;
      this.want -= take;
      if (this.pendingPos === chunk.length) this.pending = null;
      if (this.want === 0) this.filled();
    }
  }

  private unblock(): void {
    if (!this.paused || this.dead || this.state === S_DONE) return;
    this.consume();
    if (this.pending === null && this.state !== S_DONE) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private expect(state: number, n: number, dst: Buffer | null): void {
    this.state = state;
    this.want = n;
    this.dst = dst;
    this.dstPos = 0;
    if (n === 0) this.filled();
  }

  /** The current target is complete. */
  private filled(): void {
    switch (this.state) {
      case S_CLIENT_FLAGS:
        return this.clientFlags();
      case S_OPT_HEADER:
        return this.optionHeader();
      case S_OPT_DATA:
        return this.optionDone(this.optBuf!.subarray(0, this.dstPos));
      case S_OPT_SKIP:
        return this.after(optionTooBig(this, this.option, this.dstPos, this.limits.maxOptionLength));
      case S_REQ_HEADER:
        return this.request();
      case S_REQ_PAYLOAD:
        return this.payloadDone();
      case S_REQ_SKIP:
        return this.skipDone();
    }
  }

  // ---- handshake --------------------------------------------------------------------------------

  private clientFlags(): void {
    const f = this.head.readUInt32BE(0);
    // §Client flags: the server MUST drop the connection on an unknown flag.
    if ((f & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) !== 0) {
      return this.violation(`unknown client flags 0x${f.toString(16)}`);
    }
    this.fixedNewstyle = (f & NBD_FLAG_C_FIXED_NEWSTYLE) !== 0;
    this.noZeroes = (f & NBD_FLAG_C_NO_ZEROES) !== 0;
    this.expect(S_OPT_HEADER, OPTION_HEADER_SIZE, this.head);
  }

  private optionHeader(): void {
    const h = this.head;
    if (h.readUInt32BE(0) !== IHAVEOPT_HI || h.readUInt32BE(4) !== IHAVEOPT_LO) {
      return this.violation('option without the IHAVEOPT magic');
    }
    if (++this.options > this.limits.maxOptions) {
      return this.violation(`more than ${this.limits.maxOptions} options in one handshake`);
    }
    this.option = h.readUInt32BE(8);
    const len = h.readUInt32BE(12);
    if (!this.fixedNewstyle && this.option !== NBD_OPT_EXPORT_NAME) {
      return this.violation(`option ${this.option} from a client that did not set NBD_FLAG_C_FIXED_NEWSTYLE`);
    }
    if (len > this.limits.maxOptionLength) {
      if (this.option === NBD_OPT_EXPORT_NAME) return this.violation(`NBD_OPT_EXPORT_NAME of ${len} bytes`);
      return this.expect(S_OPT_SKIP, len, null);
    }
    this.expect(S_OPT_DATA, len, this.optBuf);
  }

  private optionDone(data: Buffer): void {
    this.after(handleOption(this, this.option, data));
  }

  private after(outcome: ReturnType<typeof handleOption>): void {
    switch (outcome.next) {
      case 'continue':
        return this.expect(S_OPT_HEADER, OPTION_HEADER_SIZE, this.head);
      case 'starttls':
        return this.startTls();
      case 'abort':
        this.state = S_DONE;
        this.closeReason = 'client sent NBD_OPT_ABORT';
        this.socket.end();
        return;
      case 'disconnect':
        return this.violation(outcome.reason);
      case 'transmission': {
        const exp = outcome.export;
        if (!this.host.attached(this, exp)) {
          this.hangUp('server is shutting down');
          return;
        }
        if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
        this.handshakeTimer = null;
        this.exp = exp;
        this.optBuf = null;
        this.tflags = transmissionFlags(exp, this.structured);
        this.blockStatusOk = this.structured && this.metaExport === exp;
        if (this.structured) this.extents = new ExtentList(MAX_EXTENTS);
        this.host.event({ type: 'transmission', conn: this.id, export: exp.name, via: this.option === NBD_OPT_EXPORT_NAME ? 'export-name' : 'go' });
        return this.expect(S_REQ_HEADER, REQUEST_SIZE, this.head);
      }
    }
  }

  // ---- transmission -----------------------------------------------------------------------------

  private slot(): Slot {
    return this.freeSlots.pop() ?? new Slot(this);
  }

  private release(s: Slot): void {
    // A write's payload: the device is done with it (the reply is being sent), the next write of its size takes it.
    if (s.data !== null && s.type === NBD_CMD_WRITE) this.payloads.give(s.data);
    s.data = null;
    s.device = null;
    s.early = 0;
    s.tracked = UNTRACKED;
    s.flushAfter = false;
    if (this.freeSlots.length < this.limits.maxInFlight) this.freeSlots.push(s);
  }

  /** A 28-byte request header is in `head` (§Request message). */
  private request(): void {
    const h = this.head;
    const exp = this.exp!;
    if (h.readUInt32BE(0) !== NBD_REQUEST_MAGIC) return this.violation('request without NBD_REQUEST_MAGIC');
    const flags = h.readUInt16BE(4);
    const type = h.readUInt16BE(6);
    const offHi = h.readUInt32BE(16);
    // An offset of 2^53 or more is past any export; keep it exact enough to fail the range check.
    const offset = offHi >= 0x200000 ? Number.MAX_SAFE_INTEGER : offHi * TWO32 + h.readUInt32BE(20);
    const length = h.readUInt32BE(24);
    const s = this.slot();
    s.type = type;
    s.flags = flags;
    s.handleHi = h.readUInt32BE(8);
    s.handleLo = h.readUInt32BE(12);
    s.offset = offset;
    s.length = length;
    const st = exp.stats;
    const fuaOk = (this.tflags & NBD_FLAG_SEND_FUA) !== 0 ? NBD_CMD_FLAG_FUA : 0;
    const inRange = offset + length <= exp.size;
    const aligned = offset % exp.minBlockSize === 0 && length % exp.minBlockSize === 0;
    switch (type) {
      case NBD_CMD_READ: {
        st.reads++;
        const dfOk = this.structured ? NBD_CMD_FLAG_DF : 0;
        const err = (flags & ~(fuaOk | dfOk)) !== 0 || length > exp.maxPayload || !inRange || !aligned ? NBD_EINVAL : 0;
        if (err) return this.early(s, err);
        const header = this.structured ? OFFSET_DATA_HEADER_SIZE : SIMPLE_REPLY_SIZE;
        const b = this.replies.replyBuffer(length, header);
        s.data = b;
        const dev = exp.device;
        if (dev.readTo !== undefined) {
          // No Promise, no view: the device fills the reply buffer after its header and ends through the slot.
          this.started(s);
          dev.readTo(offset, b, header, length, s);
        } else this.submit(s, dev.read(offset, b.subarray(header)));
        return this.next();
      }
      case NBD_CMD_WRITE: {
        st.writes++;
        if (length > exp.maxPayload) {
          // §Size constraints: a payload over 2^25 may be deemed a denial of service; below that
          // the payload is skipped to stay in step and the request refused.
          if (length > NBD_PORTABLE_MAX_PAYLOAD) {
            this.release(s);
            return this.violation(`write of ${length} bytes, over the ${exp.maxPayload}-byte maximum payload`);
          }
          s.early = NBD_EINVAL;
        } else if (exp.readOnly) s.early = NBD_EPERM;
        else if ((flags & ~fuaOk) !== 0 || !aligned) s.early = NBD_EINVAL;
        else if (!inRange) s.early = NBD_ENOSPC;
        if (s.early !== 0) {
          this.current = s;
          return this.expect(S_REQ_SKIP, length, null);
        }
        // The payload goes into a pooled buffer of the connection's: the device may hold it until the
        // write completes, and the bytes it came in are overwritten by the next socket read.
        const data = this.payloads.take(length);
        s.data = data;
        const chunk = this.pending;
        if (chunk !== null && chunk.length - this.pendingPos >= length) {
          // The whole payload is in the chunk at hand: one copy, no parser turn.
          chunk.copy(data, 0, this.pendingPos, this.pendingPos + length);
          this.pendingPos += length;
          if (this.pendingPos === chunk.length) this.pending = null;
          this.current = s;
          return this.payloadDone();
        }
        this.current = s;
        return this.expect(S_REQ_PAYLOAD, length, s.data);
      }
      case NBD_CMD_DISC:
        this.release(s);
        this.closeReason = 'client sent NBD_CMD_DISC';
        return this.beginClosing();
      case NBD_CMD_FLUSH: {
        st.flushes++;
        const err = (exp.flags & NBD_FLAG_SEND_FLUSH) === 0 || (flags & ~fuaOk) !== 0 || offset !== 0 || length !== 0 ? NBD_EINVAL : 0;
        if (err) return this.early(s, err);
        this.submit(s, exp.device.flush());
        return this.next();
      }
      case NBD_CMD_TRIM: {
        st.trims++;
        const err = exp.readOnly ? NBD_EPERM : (exp.flags & NBD_FLAG_SEND_TRIM) === 0 || (flags & ~fuaOk) !== 0 || !inRange || !aligned ? NBD_EINVAL : 0;
        if (err) return this.early(s, err);
        const fua = (flags & NBD_CMD_FLAG_FUA) !== 0;
        s.flushAfter = fua && exp.fuaViaFlush;
        this.trackZero(s, exp.trimFlags);
        this.submit(s, exp.device.trim(offset, length, fua && !exp.fuaViaFlush));
        return this.next();
      }
      case NBD_CMD_WRITE_ZEROES: {
        st.writeZeroes++;
        // §NBD_CMD_WRITE_ZEROES, fast zero: the device zeroes without a data transfer (that is
        // when the export advertises it), so the request proceeds as it would without the flag.
        const fastZeroOk = (exp.flags & NBD_FLAG_SEND_FAST_ZERO) !== 0 ? NBD_CMD_FLAG_FAST_ZERO : 0;
        const err = exp.readOnly
          ? NBD_EPERM
          : (exp.flags & NBD_FLAG_SEND_WRITE_ZEROES) === 0 || (flags & ~(fuaOk | NBD_CMD_FLAG_NO_HOLE | fastZeroOk)) !== 0 || !aligned
            ? NBD_EINVAL
            : !inRange
              ? NBD_ENOSPC
              : 0;
        if (err) return this.early(s, err);
        const fua = (flags & NBD_CMD_FLAG_FUA) !== 0;
        s.flushAfter = fua && exp.fuaViaFlush;
        const noHole = (flags & NBD_CMD_FLAG_NO_HOLE) !== 0;
        this.trackZero(s, noHole ? EXTENT_ZERO : exp.trimFlags | EXTENT_ZERO);
        this.submit(s, exp.device.writeZeroes(offset, length, fua && !exp.fuaViaFlush, noHole));
        return this.next();
      }
      case NBD_CMD_CACHE: {
        // §NBD_CMD_CACHE: a hint. The devices here have nothing to prefetch into, so a valid request
        // succeeds at once; flags other than FUA are refused since the command is advertised.
        st.caches++;
        return this.early(s, (flags & ~fuaOk) !== 0 || !inRange || !aligned ? NBD_EINVAL : 0);
      }
      case NBD_CMD_BLOCK_STATUS: {
        st.blockStatus++;
        // §NBD_CMD_BLOCK_STATUS: only after a metadata context was selected for this export; a
        // length of 0 is refused (the client SHOULD NOT send it; EINVAL keeps the connection).
        const err = !this.blockStatusOk || (flags & ~(fuaOk | NBD_CMD_FLAG_REQ_ONE)) !== 0 || length === 0 || !inRange || !aligned ? NBD_EINVAL : 0;
        if (err) return this.early(s, err);
        s.data = this.blockStatusReply(s);
        this.submit(s, RESOLVED);
        return this.next();
      }
      default:
        // §Error values: an unknown command SHOULD get EINVAL.
        st.otherRequests++;
        return this.early(s, NBD_EINVAL);
    }
  }

  private next(): void {
    this.expect(S_REQ_HEADER, REQUEST_SIZE, this.head);
  }

  /** Refuse a request without asking the device; the next header follows. */
  private early(s: Slot, err: number): void {
    this.inFlight++;
    this.reply(s, err);
    this.next();
  }

  private payloadDone(): void {
    const s = this.current!;
    this.current = null;
    const exp = this.exp!;
    const fua = (s.flags & NBD_CMD_FLAG_FUA) !== 0;
    s.flushAfter = fua && exp.fuaViaFlush;
    s.tracked = TRACKED_WRITE;
    exp.allocation.writeStarted(s);
    const dev = exp.device;
    if (dev.writeFrom !== undefined) {
      this.started(s);
      dev.writeFrom(s.offset, s.data!, 0, s.length, fua && !exp.fuaViaFlush, s);
    } else this.submit(s, dev.write(s.offset, s.data!, fua && !exp.fuaViaFlush));
    this.next();
  }

  /** A trim or write-zeroes is about to reach the device; on success its range will have `flags`. */
  private trackZero(s: Slot, flags: number): void {
    s.tracked = TRACKED_ZERO;
    s.zeroFlags = flags;
    this.exp!.allocation.zeroStarted(s);
  }

  /** The device is done with a tracked request (first completion: a flush may still follow). */
  private untrack(s: Slot, ok: boolean): void {
    if (s.tracked === TRACKED_WRITE) this.exp!.allocation.writeEnded(s);
    else if (s.tracked === TRACKED_ZERO) this.exp!.allocation.zeroEnded(s, ok, s.zeroFlags);
    s.tracked = UNTRACKED;
  }

  /**
   * The whole NBD_REPLY_TYPE_BLOCK_STATUS reply for a checked request: one chunk for the one
   * context, at most MAX_EXTENTS descriptors (one with REQ_ONE), never past the request's end.
   */
  private blockStatusReply(s: Slot): Buffer {
    const ext = this.extents!;
    this.exp!.describe(s.offset, s.length, ext);
    let n = ext.count;
    if (n === 0) {
      // Nothing known: the whole range as data (status 0 is always a correct answer).
      ext.lengths[0] = s.length;
      ext.flags[0] = 0;
      n = 1;
    }
    if ((s.flags & NBD_CMD_FLAG_REQ_ONE) !== 0) n = 1;
    const payload = 4 + n * BLOCK_DESCRIPTOR_SIZE;
    const b = this.replies.replyBuffer(payload, STRUCTURED_REPLY_SIZE);
    writeChunkHeader(b, 0, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, s.handleHi, s.handleLo, payload);
    b.writeUInt32BE(ALLOCATION_CONTEXT_ID, STRUCTURED_REPLY_SIZE);
    let at = STRUCTURED_REPLY_SIZE + 4;
    for (let i = 0; i < n; i++, at += BLOCK_DESCRIPTOR_SIZE) {
      b.writeUInt32BE(ext.lengths[i]!, at);
      b.writeUInt32BE(ext.flags[i]!, at + 4);
    }
    return b;
  }

  /**
   * A structured read reply once the data is in `s.data` (28 bytes of chunk header room in front).
   * Where the export knows ranges that read as zeroes and the client did not ask for one chunk
   * (NBD_CMD_FLAG_DF), they go as NBD_REPLY_TYPE_OFFSET_HOLE chunks and the data around them as
   * NBD_REPLY_TYPE_OFFSET_DATA chunks; otherwise one OFFSET_DATA chunk, in place, with DONE.
   */
  private structuredRead(s: Slot): void {
    const data = s.data!;
    if (s.length === 0) return this.replies.structuredDone(s.handleHi, s.handleLo);
    const ext = this.extents!;
    let holes = false;
    if ((s.flags & NBD_CMD_FLAG_DF) === 0) {
      this.exp!.describe(s.offset, s.length, ext);
      for (let i = 0; i < ext.count && !holes; i++) holes = (ext.flags[i]! & EXTENT_ZERO) !== 0;
    }
    if (!holes) {
      writeChunkHeader(data, 0, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, s.handleHi, s.handleLo, 8 + s.length);
      writeU64(data, STRUCTURED_REPLY_SIZE, s.offset);
      this.replies.data(data);
      return;
    }
    // Runs of zeroes and of anything else (extents past what was described are data).
    let runs = 0;
    let prevZero = -1;
    for (let i = 0; i < ext.count; i++) {
      const z = ext.flags[i]! & EXTENT_ZERO;
      if (z !== prevZero) runs++;
      prevZero = z;
    }
    const covered = ext.covered();
    if (covered < s.length && prevZero !== 0) runs++;
    const heads = Buffer.allocUnsafe(runs * OFFSET_HOLE_CHUNK_SIZE);
    let run = 0;
    let pos = 0; // bytes of the request sent so far
    let i = 0;
    while (pos < s.length) {
      let zero = false;
      let len = s.length - pos;
      if (i < ext.count) {
        zero = (ext.flags[i]! & EXTENT_ZERO) !== 0;
        len = 0;
        while (i < ext.count && ((ext.flags[i]! & EXTENT_ZERO) !== 0) === zero) len += ext.lengths[i++]!;
        if (!zero && i === ext.count) len = s.length - pos; // data up to the end
      }
      const flags = ++run === runs ? NBD_REPLY_FLAG_DONE : 0;
      const at = (run - 1) * OFFSET_HOLE_CHUNK_SIZE;
      if (zero) {
        writeChunkHeader(heads, at, flags, NBD_REPLY_TYPE_OFFSET_HOLE, s.handleHi, s.handleLo, 12);
        writeU64(heads, at + STRUCTURED_REPLY_SIZE, s.offset + pos);
        heads.writeUInt32BE(len, at + STRUCTURED_REPLY_SIZE + 8);
        this.replies.raw(heads.subarray(at, at + OFFSET_HOLE_CHUNK_SIZE));
      } else {
        writeChunkHeader(heads, at, flags, NBD_REPLY_TYPE_OFFSET_DATA, s.handleHi, s.handleLo, 8 + len);
        writeU64(heads, at + STRUCTURED_REPLY_SIZE, s.offset + pos);
        this.replies.raw(heads.subarray(at, at + OFFSET_DATA_HEADER_SIZE));
        this.replies.raw(data.subarray(OFFSET_DATA_HEADER_SIZE + pos, OFFSET_DATA_HEADER_SIZE + pos + len));
      }
      pos += len;
    }
  }

  private skipDone(): void {
    const s = this.current!;
    this.current = null;
    this.early(s, s.early);
  }

  private submit(s: Slot, p: Promise<void>): void {
    this.started(s);
    p.then(s.onDone, s.onFail);
  }

  /** A request goes to the device: counted in flight until its reply (which may come before this returns). */
  private started(s: Slot): void {
    s.device = this.exp!.device;
    this.inFlight++;
    if (s.data) this.inFlightBytes += s.data.length;
  }

  /** The device finished a request. */
  completed(s: Slot): void {
    if (s.tracked !== UNTRACKED) this.untrack(s, true);
    if (s.flushAfter) {
      s.flushAfter = false;
      s.device!.flush().then(s.onDone, s.onFail);
      return;
    }
    const st = this.exp!.stats;
    if (s.type === NBD_CMD_READ) st.bytesRead += s.length;
    else if (s.type === NBD_CMD_WRITE) st.bytesWritten += s.length;
    this.reply(s, 0);
  }

  /** The device failed a request. */
  failed(s: Slot, err: unknown): void {
    const exp = this.exp!;
    if (s.tracked !== UNTRACKED) this.untrack(s, false);
    const kind = blockErrorKind(err);
    exp.stats.deviceErrors++;
    this.host.event({
      type: 'device-error',
      conn: this.id,
      export: exp.name,
      command: commandName(s.type),
      offset: s.offset,
      length: s.length,
      kind,
      error: err,
    });
    // §NBD_CMD_FLAG_FAST_ZERO: a device that cannot zero fast says ENOTSUP, and the client is told so.
    const fastZero = s.type === NBD_CMD_WRITE_ZEROES && (s.flags & NBD_CMD_FLAG_FAST_ZERO) !== 0;
    this.reply(s, fastZero && kind === 'ENOTSUP' ? NBD_ENOTSUP : nbdError(kind));
  }

  /** Send the reply for a slot, release it, and let input flow again if it was held back. */
  private reply(s: Slot, err: number): void {
    if (s.data) this.inFlightBytes -= s.data.length;
    this.inFlight--;
    if (err !== 0) {
      const errs = this.exp!.stats.errors;
      const name = errorName(err);
      errs[name] = (errs[name] ?? 0) + 1;
    }
    if (!this.dead) {
      if (err !== 0) {
        // §Structured reply chunk message: with structured replies a read's error MUST be a chunk,
        // and errors of every command go as chunks (the server SHOULD prefer them). A simple error
        // reply to a read carries no data.
        if (this.structured) this.replies.structuredError(err, s.handleHi, s.handleLo);
        else this.replies.simple(err, s.handleHi, s.handleLo);
      } else if (s.type === NBD_CMD_READ) {
        if (this.structured) this.structuredRead(s);
        else {
          writeSimpleReplyHeader(s.data!, 0, s.handleHi, s.handleLo);
          this.replies.data(s.data!);
        }
      } else if (s.type === NBD_CMD_BLOCK_STATUS) {
        this.replies.data(s.data!);
      } else {
        this.replies.simple(0, s.handleHi, s.handleLo);
      }
    }
    this.release(s);
    if (this.closing) this.maybeFinishClosing();
    else if (this.paused && !this.consuming) this.unblock();
  }

  // ---- ending -----------------------------------------------------------------------------------

  private beginClosing(): void {
    // §NBD_CMD_DISC: handle all outstanding requests, then close.
    this.state = S_DONE;
    this.pending = null;
    this.closing = true;
    // Input from here is dropped (S_DONE). A socket reading through `onread` keeps reading, or it
    // would never see the client's end of input after ours.
    if (!this.reusedInput) this.socket.pause();
    this.maybeFinishClosing();
  }

  private maybeFinishClosing(): void {
    if (this.inFlight !== 0 || this.dead) return;
    this.replies.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  private violation(message: string): void {
    if (this.exp) this.exp.stats.protocolErrors++;
    this.host.event({ type: 'protocol-error', conn: this.id, ...(this.exp ? { export: this.exp.name } : {}), message });
    this.hangUp(`protocol error: ${message}`);
  }

  private onClose(): void {
    if (this.dead) return;
    this.dead = true;
    this.state = S_DONE;
    this.pending = null;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.host.event({ type: 'close', conn: this.id, ...(this.exp ? { export: this.exp.name } : {}), reason: this.closeReason });
    this.host.closed(this);
  }
}

function writeU64(b: Buffer, at: number, v: number): void {
  const hi = Math.floor(v / TWO32);
  b.writeUInt32BE(hi, at);
  b.writeUInt32BE(v - hi * TWO32, at + 4);
}
