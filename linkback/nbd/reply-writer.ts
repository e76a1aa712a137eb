/**
 * Replies without data (write, flush, trim acknowledgements as simple replies; errors as simple
 * replies or, with structured replies, 26-byte error chunks; empty reads' NBD_REPLY_TYPE_NONE) are
 * small and of fixed size. Instead of one Buffer and one write(2) per reply, they are packed into reusable batch
 * buffers and sent once per event-loop turn: at queue depth 16 that is one system call for up to 16
 * replies, and nothing allocated per reply. A batch buffer goes back to the free list when the
 * socket reports it written (writes complete in order, so a FIFO knows which one).
 *
 * Read replies carry their data and are handed over as one Buffer (header in front), so each
 * message stays contiguous on the wire; replies may interleave in any order (§Transmission). A small
 * one (up to COPY_MAX bytes, a 4 KiB read and more) is copied into the batch and its buffer is free
 * again at once: one socket write per turn for all replies instead of one stream write (and its
 * bookkeeping objects) per read; the copy costs less than that (bench/RESULTS.md, issue 16). A
 * larger one is written as it is, corked with the batch, and its buffer reused once written.
 *
 * Coalescing (as a NIC's interrupt moderation or NVMe's aggregation threshold): when a turn ends
 * with fewer replies queued than requests still unanswered, the batch waits for the next turn, up
 * to COALESCE_TURNS turns, so that completions arriving a few at a time (a sandboxed driver's ring,
 * a polled queue) leave in one write instead of one write, and one client wake-up, each. A client
 * waiting for everything it asked (queue depth 1, or its last requests) is answered at the end of
 * the turn as before: nothing unanswered, nothing to wait for.
 */
import type { Socket } from 'node:net';
import {
  ERROR_CHUNK_SIZE,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_NONE,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  SIMPLE_REPLY_SIZE,
  STRUCTURED_REPLY_SIZE,
} from './protocol.js';
import { BufferPool } from './buffer-pool.js';

/** A batch holds the replies of one turn at queue depth 16 with 4 KiB reads and some room. */
const BATCH_BYTES = 128 << 10;
/** Read replies up to this size (header included) are copied into the batch. */
const COPY_MAX = 16 << 10;
/** Turns a batch may wait for more replies while requests are still unanswered (see Coalescing). */
export const COALESCE_TURNS = 8;
/** Read-reply buffers kept for reuse: up to this many bytes per connection, of at most MAX_POOLED each. */
const POOL_BYTES = 1 << 20;
const MAX_POOLED = SIMPLE_REPLY_SIZE + (128 << 10);

export class ReplyWriter {
  private cur: Buffer;
  private len = 0;
  private scheduled = false;
  private corked = false;
  private readonly free: Buffer[] = [];
  private readonly sent: Buffer[] = [];
  /** Replies queued since the last flush, and turns the batch has waited. */
  private queued = 0;
  private waited = 0;
  private readonly flushBound = (): void => {
    this.scheduled = false;
    const unanswered = this.unanswered();
    if (this.len > 0 && unanswered > this.queued && this.waited < COALESCE_TURNS && !this.corked) {
      this.waited++;
      this.scheduled = true;
      setImmediate(this.flushBound);
      return;
    }
    this.flush();
  };
  private readonly writtenBound = (): void => {
    const b = this.sent.shift();
    if (b && this.free.length < 4) this.free.push(b);
  };
  /** Read replies handed to the socket, in order; each goes back to `pool` once written. */
  private readonly dataSent: Buffer[] = [];
  private readonly pool = new BufferPool(POOL_BYTES, MAX_POOLED);
  private readonly dataWrittenBound = (err?: Error | null): void => {
    const b = this.dataSent.shift();
    if (b && !err) this.pool.give(b);
  };

  /**
   * `unanswered`: how many requests the client still waits for (after the replies queued here);
   * none by default, so every turn's replies leave at its end.
   */
  constructor(
    private socket: Socket,
    private readonly unanswered: () => number = () => 0,
  ) {
    this.cur = Buffer.allocUnsafe(BATCH_BYTES);
  }

  /** Write to another socket from now on (the TLS socket after STARTTLS; nothing is queued then). */
  rebind(socket: Socket): void {
    this.flush();
    this.socket = socket;
  }

  /** Room for `n` bytes in the batch; returns where they go in `this.cur`. */
  private reserve(n: number): number {
    if (this.len + n > BATCH_BYTES) this.flush();
    const at = this.len;
    this.len = at + n;
    this.queued++;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
    return at;
  }

  /** Queue a simple reply with no data: error 0 for success. The handle is echoed as two 32-bit halves. */
  simple(error: number, handleHi: number, handleLo: number): void {
    const at = this.reserve(SIMPLE_REPLY_SIZE);
    const b = this.cur;
    b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, at);
    b.writeUInt32BE(error, at + 4);
    b.writeUInt32BE(handleHi, at + 8);
    b.writeUInt32BE(handleLo, at + 12);
  }

  /** Queue the final chunk of a structured reply that failed: NBD_REPLY_TYPE_ERROR, no message. */
  structuredError(error: number, handleHi: number, handleLo: number): void {
    const at = this.reserve(ERROR_CHUNK_SIZE);
    const b = this.cur;
    writeChunkHeader(b, at, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, handleHi, handleLo, 6);
    b.writeUInt32BE(error, at + STRUCTURED_REPLY_SIZE);
    b.writeUInt16BE(0, at + STRUCTURED_REPLY_SIZE + 4);
  }

  /** Queue NBD_REPLY_TYPE_NONE with NBD_REPLY_FLAG_DONE: a structured success without content. */
  structuredDone(handleHi: number, handleLo: number): void {
    const at = this.reserve(STRUCTURED_REPLY_SIZE); // may flush and change this.cur: first
    writeChunkHeader(this.cur, at, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, handleHi, handleLo, 0);
  }

  /**
   * A buffer for a reply of `length` data bytes with a `header`-byte header in front (16 for a
   * simple read reply, 28 for an OFFSET_DATA chunk): a reused one when a reply of that size was
   * written before, so a steady stream of reads allocates nothing. It is the caller's until passed
   * to `data()`, which takes it back once the socket has written it.
   */
  replyBuffer(length: number, header: number = SIMPLE_REPLY_SIZE): Buffer {
    return this.pool.take(header + length);
  }

  /**
   * Send a complete message that carries data (a read reply from `replyBuffer`). Small ones are
   * copied into the batch (their buffer is reusable at once). Larger ones go to the socket, which is
   * corked until the end of this event-loop turn, so the data replies and the batch of one turn
   * leave in a single writev(2). Writes complete in order, so a FIFO knows which buffer a
   * completion is for; such a buffer is reused only after the socket says it was written.
   */
  data(message: Buffer): void {
    const s = this.socket;
    if (s.destroyed || !s.writable) return;
    if (message.length <= COPY_MAX) {
      const at = this.reserve(message.length); // may flush and change this.cur: first
      message.copy(this.cur, at);
      this.pool.give(message);
      return;
    }
    if (!this.corked) {
      this.corked = true;
      s.cork();
    }
    this.dataSent.push(message);
    s.write(message, this.dataWrittenBound);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /**
   * Send bytes that are not to be reused (the pieces of a reply split around holes: chunk headers
   * and views of a read's data). Corked like `data()`; pieces leave in the order given.
   */
  raw(bytes: Buffer): void {
    const s = this.socket;
    if (s.destroyed || !s.writable) return;
    if (!this.corked) {
      this.corked = true;
      s.cork();
    }
    s.write(bytes);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** Write the queued replies now (before closing the connection, or when the batch is full). */
  flush(): void {
    const s = this.socket;
    if (this.len === 0 || s.destroyed || !s.writable) {
      this.len = this.queued = this.waited = 0;
      this.uncork();
      return;
    }
    const full = this.cur;
    const n = this.len;
    this.queued = this.waited = 0;
    this.sent.push(full);
    this.cur = this.free.pop() ?? Buffer.allocUnsafe(BATCH_BYTES);
    this.len = 0;
    s.write(full.subarray(0, n), this.writtenBound);
    this.uncork();
  }

  private uncork(): void {
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
  }
}

/** Fill the 16-byte simple reply header in front of a read reply's data. */
export function writeSimpleReplyHeader(b: Buffer, error: number, handleHi: number, handleLo: number): void {
  b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  b.writeUInt32BE(handleHi, 8);
  b.writeUInt32BE(handleLo, 12);
}

/** Fill a 20-byte structured reply chunk header at `at` (§Structured reply chunk message). */
export function writeChunkHeader(b: Buffer, at: number, flags: number, type: number, handleHi: number, handleLo: number, length: number): void {
  b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, at);
  b.writeUInt16BE(flags, at + 4);
  b.writeUInt16BE(type, at + 6);
  b.writeUInt32BE(handleHi, at + 8);
  b.writeUInt32BE(handleLo, at + 12);
  b.writeUInt32BE(length, at + 16);
}
