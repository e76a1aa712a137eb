/**
 * A small NBD client, the campaign's workload in container mode: it reaches the sandbox through
 * the real NBD linkback, as a user's client would. Fixed newstyle handshake with NBD_OPT_GO and
 * simple replies only (doc/proto.md of github.com/NetworkBlockDevice/nbd, §Fixed newstyle
 * negotiation, §Transmission; the numbers are linkback/nbd/protocol.ts's). Requests are pipelined
 * and matched by cookie; every wait is bounded (`timeoutMs` per request and for the handshake): a
 * request not answered in time fails with ERR_CAMPAIGN_NBD and the connection is closed.
 */
import { connect, type Socket } from 'node:net';
import {
  IHAVEOPT_HI,
  IHAVEOPT_LO,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBDMAGIC_HI,
  NBDMAGIC_LO,
  OPT_REPLY_MAGIC_HI,
  OPT_REPLY_MAGIC_LO,
  REQUEST_SIZE,
  SIMPLE_REPLY_SIZE,
} from '../../linkback/nbd/protocol.js';
import { CampaignError } from '../errors.js';

/** §Option types, §Option reply types, §Request types, §Info types used here. */
const NBD_OPT_GO = 7;
const NBD_REP_ACK = 1;
const NBD_REP_INFO = 3;
const NBD_INFO_EXPORT = 0;
const NBD_CMD_READ = 0;
const NBD_CMD_WRITE = 1;
const NBD_CMD_DISC = 2;
const NBD_CMD_FLUSH = 3;
/** The largest option reply this client reads (an export name and a description are far smaller). */
const MAX_OPTION_REPLY = 4096;

interface Pending {
  readonly type: number;
  readonly length: number;
  readonly resolve: (data: Uint8Array | undefined) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

function nbdError(message: string): CampaignError {
  return new CampaignError('ERR_CAMPAIGN_NBD', message, { fix: 'the export stopped answering: read the sandbox events of this trial' });
}

/** Reads exact byte counts from a socket's stream. */
class Reader {
  private chunks: Buffer[] = [];
  private have = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void } | undefined;
  private failed: Error | undefined;
  private onFail: ((e: Error) => void) | undefined;

  push(b: Buffer): void {
    this.chunks.push(b);
    this.have += b.length;
    this.pump();
  }

  fail(e: Error): void {
    this.failed ??= e;
    this.onFail?.(e);
  }

  /** Resolves with exactly `n` bytes. */
  take(n: number): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve };
      this.onFail = reject;
      this.pump();
    });
  }

  private pump(): void {
    const w = this.waiter;
    if (!w || this.have < w.n) return;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, w.n);
    const rest = all.subarray(w.n);
    this.chunks = rest.length ? [rest] : [];
    this.have = rest.length;
    this.waiter = undefined;
    this.onFail = undefined;
    w.resolve(out);
  }
}

export class NbdClient {
  /** The export's size in bytes (NBD_INFO_EXPORT). */
  size = 0;
  private readonly reader = new Reader();
  private readonly pending = new Map<number, Pending>();
  private cookie = 1;
  private closed: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', (b: Buffer) => this.reader.push(b));
    const end = (why: string) => this.failAll(nbdError(`NBD connection closed: ${why}`));
    socket.on('error', (e) => end(e.message));
    socket.on('close', () => end('the server closed it'));
  }

  /** Connect to the unix socket `path`, negotiate `exportName` with NBD_OPT_GO, bounded by `timeoutMs`. */
  static async connect(path: string, exportName: string, timeoutMs: number): Promise<NbdClient> {
    const socket = connect(path);
    const c = new NbdClient(socket, timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        c.handshake(exportName),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(nbdError(`NBD handshake with ${path} took over ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (e) {
      socket.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    void c.replies();
    return c;
  }

  private async handshake(exportName: string): Promise<void> {
    const hello = await this.reader.take(18);
    if (
      hello.readUInt32BE(0) !== NBDMAGIC_HI ||
      hello.readUInt32BE(4) !== NBDMAGIC_LO ||
      hello.readUInt32BE(8) !== IHAVEOPT_HI ||
      hello.readUInt32BE(12) !== IHAVEOPT_LO
    )
      throw nbdError('not an NBD newstyle server (bad greeting)');
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    const name = Buffer.from(exportName, 'utf8');
    const opt = Buffer.alloc(16 + 4 + name.length + 2);
    opt.writeUInt32BE(IHAVEOPT_HI, 0);
    opt.writeUInt32BE(IHAVEOPT_LO, 4);
    opt.writeUInt32BE(NBD_OPT_GO, 8);
    opt.writeUInt32BE(4 + name.length + 2, 12);
    opt.writeUInt32BE(name.length, 16);
    name.copy(opt, 20);
    opt.writeUInt16BE(0, 20 + name.length); // no information requests: the server sends NBD_INFO_EXPORT anyway
    this.socket.write(Buffer.concat([flags, opt]));
    for (;;) {
      const h = await this.reader.take(20);
      if (h.readUInt32BE(0) !== OPT_REPLY_MAGIC_HI || h.readUInt32BE(4) !== OPT_REPLY_MAGIC_LO) throw nbdError('bad option reply magic');
      const type = h.readUInt32BE(12);
      const len = h.readUInt32BE(16);
      if (len > MAX_OPTION_REPLY) throw nbdError(`option reply of ${len} bytes (at most ${MAX_OPTION_REPLY})`);
      const data = len ? await this.reader.take(len) : Buffer.alloc(0);
      if (type === NBD_REP_ACK) break;
      if (type & 0x8000_0000) throw nbdError(`NBD_OPT_GO for export '${exportName}' refused (reply type 0x${type.toString(16)}): ${data.toString('utf8')}`);
      if (type === NBD_REP_INFO && len >= 12 && data.readUInt16BE(0) === NBD_INFO_EXPORT) this.size = Number(data.readBigUInt64BE(2));
    }
    if (this.size === 0) throw nbdError(`export '${exportName}' announced no size`);
  }

  private async replies(): Promise<void> {
    try {
      for (;;) {
        const h = await this.reader.take(SIMPLE_REPLY_SIZE);
        if (h.readUInt32BE(0) !== NBD_SIMPLE_REPLY_MAGIC) throw nbdError(`bad reply magic 0x${h.readUInt32BE(0).toString(16)}`);
        const error = h.readUInt32BE(4);
        const cookie = Number(h.readBigUInt64BE(8));
        const p = this.pending.get(cookie);
        if (!p) throw nbdError(`a reply for cookie ${cookie}, which no request has`);
        const data = p.type === NBD_CMD_READ && error === 0 ? Uint8Array.from(await this.reader.take(p.length)) : undefined;
        this.pending.delete(cookie);
        clearTimeout(p.timer);
        if (error) p.reject(new CampaignError('ERR_CAMPAIGN_NBD', `NBD request failed with errno ${error}`, { fix: 'the client saw an error' }));
        else p.resolve(data);
      }
    } catch (e) {
      this.failAll(e as Error);
    }
  }

  private failAll(e: Error): void {
    this.closed ??= e;
    this.reader.fail(e);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
    this.socket.destroy();
  }

  private request(type: number, offset: number, length: number, data?: Uint8Array): Promise<Uint8Array | undefined> {
    if (this.closed) return Promise.reject(this.closed);
    const cookie = this.cookie++;
    const h = Buffer.alloc(REQUEST_SIZE);
    h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(0, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(BigInt(cookie), 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.failAll(nbdError(`NBD request ${cookie} (type ${type}, ${length} bytes at ${offset}) not answered within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(cookie, { type, length, resolve, reject, timer });
      this.socket.write(data ? Buffer.concat([h, data]) : h);
    });
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    return (await this.request(NBD_CMD_READ, offset, length))!;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    await this.request(NBD_CMD_WRITE, offset, data.length, data);
  }

  async flush(): Promise<void> {
    await this.request(NBD_CMD_FLUSH, 0, 0);
  }

  /** NBD_CMD_DISC (no reply), then the socket closed; resolves once it is (at most `timeoutMs`). */
  close(): Promise<void> {
    const done = new Promise<void>((resolve) => {
      if (this.socket.closed) return resolve();
      const t = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, this.timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(t);
        resolve();
      });
    });
    if (!this.closed) {
      const h = Buffer.alloc(REQUEST_SIZE);
      h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
      h.writeUInt16BE(NBD_CMD_DISC, 6);
      this.closed = nbdError('closed by the client');
      this.socket.end(h);
    }
    return done;
  }
}
