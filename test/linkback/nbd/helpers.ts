/**
 * Test helpers for the NBD server: a raw protocol client over a real socket (so tests can be both
 * a well-behaved client and a hostile one), and block devices that complete when a test says so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'uvu';
import type { BlockCapabilities, BlockDevice } from '../../../linkback/block-device.js';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import * as P from '../../../linkback/nbd/protocol.js';
import { NbdServer, type NbdServerOptions } from '../../../linkback/nbd/server.js';

export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-nbd-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The server a suite's tests talk to, on a unix socket in a folder of its own. */
export interface SuiteServer {
  /** The suite's folder (removed after its last test), and the socket in it. */
  readonly dir: string;
  readonly sock: string;
  /** Made before the suite's first test. */
  readonly server: NbdServer;
}

/**
 * Serve `options()` to a whole suite: the server listens before its first test (then `ready` runs),
 * and after its last one `closing` runs, then the server closes and the folder is removed.
 */
export function suiteServer(
  t: Test,
  options: () => NbdServerOptions,
  hooks: { ready?: (server: NbdServer) => Promise<void>; closing?: () => Promise<void> } = {},
): SuiteServer {
  const tmp = tempDir();
  let server: NbdServer | undefined;
  const fixture: SuiteServer = {
    dir: tmp.dir,
    sock: join(tmp.dir, 'nbd.sock'),
    get server(): NbdServer {
      if (server === undefined) throw new Error("the suite server is made in the suite's before hook");
      return server;
    },
  };
  t.before(async () => {
    server = new NbdServer(options());
    await server.listenUnix(fixture.sock);
    await hooks.ready?.(server);
  });
  t.after(async () => {
    try {
      await hooks.closing?.();
    } finally {
      await server?.close();
      tmp.remove();
    }
  });
  return fixture;
}

/** A socket with an exact-length reader. Every wait is bounded. */
export class RawClient {
  socket: net.Socket;
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  closed = false;
  readonly closedP: Promise<void>;

  private readonly onData = (d: Buffer): void => {
    this.buf = Buffer.concat([this.buf, d]);
    this.waiter?.();
  };

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('error', () => {});
    this.closedP = new Promise((r) =>
      socket.on('close', () => {
        this.closed = true;
        this.waiter?.();
        r();
      }),
    );
  }

  static connect(where: string | number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = typeof where === 'string' ? net.connect(where) : net.connect(where, '127.0.0.1');
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawClient(s));
      });
    });
  }

  /** After the server acknowledged NBD_OPT_STARTTLS: run TLS on this socket; rejects if the handshake fails. */
  async startTls(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
    const raw = this.socket;
    raw.off('data', this.onData);
    const s = tls.connect({ socket: raw, ...options });
    s.on('data', this.onData);
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    s.on('error', () => {});
    this.socket = s;
    return s;
  }

  get buffered(): number {
    return this.buf.length;
  }

  write(b: Uint8Array): void {
    this.socket.write(b);
  }

  /** Exactly n bytes; rejects if the connection closes first or after `ms`. */
  async read(n: number, ms = 3000): Promise<Buffer> {
    const deadline = Date.now() + ms;
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`connection closed with ${this.buf.length} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.buf.length})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = null;
          r();
        };
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Resolves true when the server closes the connection within `ms`, false otherwise. */
  async waitClosed(ms = 3000): Promise<boolean> {
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => {
      t = setTimeout(() => r(false), ms);
    });
    const r = await Promise.race([this.closedP.then(() => true), timeout]);
    clearTimeout(t);
    return r;
  }

  destroy(): void {
    this.socket.destroy();
  }

  // ---- handshake ----

  /** Read the greeting, send client flags. Returns the handshake flags. */
  async greet(clientFlags = P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES): Promise<number> {
    const g = await this.read(18);
    if (g.readUInt32BE(0) !== P.NBDMAGIC_HI || g.readUInt32BE(4) !== P.NBDMAGIC_LO) throw new Error('no NBDMAGIC');
    if (g.readUInt32BE(8) !== P.IHAVEOPT_HI || g.readUInt32BE(12) !== P.IHAVEOPT_LO) throw new Error('no IHAVEOPT');
    const f = Buffer.alloc(4);
    f.writeUInt32BE(clientFlags >>> 0);
    this.write(f);
    return g.readUInt16BE(16);
  }

  sendOption(option: number, data: Uint8Array = new Uint8Array(0), declaredLength = data.length): void {
    const h = Buffer.alloc(16);
    h.writeUInt32BE(P.IHAVEOPT_HI, 0);
    h.writeUInt32BE(P.IHAVEOPT_LO, 4);
    h.writeUInt32BE(option >>> 0, 8);
    h.writeUInt32BE(declaredLength >>> 0, 12);
    this.write(Buffer.concat([h, data]));
  }

  async optionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const h = await this.read(20);
    if (h.readUInt32BE(0) !== P.OPT_REPLY_MAGIC_HI || h.readUInt32BE(4) !== P.OPT_REPLY_MAGIC_LO) throw new Error('bad option reply magic');
    const len = h.readUInt32BE(16);
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: Buffer.from(await this.read(len)) };
  }

  /** NBD_OPT_INFO / NBD_OPT_GO: all replies up to and including the final one. */
  async infoOrGo(option: number, name: string, infos: number[] = []): Promise<{ infos: Map<number, Buffer>; final: number; message: string }> {
    this.sendOption(option, infoData(name, infos));
    const got = new Map<number, Buffer>();
    for (;;) {
      const r = await this.optionReply();
      if (r.option !== option) throw new Error(`reply for option ${r.option}, asked ${option}`);
      if (r.type === P.NBD_REP_INFO) got.set(r.data.readUInt16BE(0), r.data.subarray(2));
      else return { infos: got, final: r.type, message: r.data.toString() };
    }
  }

  /** Greet and GO to an export: the client is then in transmission. */
  async open(name: string): Promise<{ size: number; flags: number }> {
    await this.greet();
    const r = await this.infoOrGo(P.NBD_OPT_GO, name, [P.NBD_INFO_BLOCK_SIZE]);
    if (r.final !== P.NBD_REP_ACK) throw new Error(`GO ${name}: reply ${r.final.toString(16)} ${r.message}`);
    const e = r.infos.get(P.NBD_INFO_EXPORT)!;
    return { size: Number(e.readBigUInt64BE(0)), flags: e.readUInt16BE(8) };
  }

  // ---- transmission ----

  request(type: number, handle: number, offset: number, length: number, opts: { flags?: number; data?: Uint8Array; magic?: number } = {}): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(opts.magic ?? P.NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(opts.flags ?? 0, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(BigInt(handle), 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length >>> 0, 24);
    this.write(opts.data ? Buffer.concat([h, opts.data]) : h);
  }

  /** One simple reply; `dataLength(handle)` says how many data bytes follow a successful one. */
  async reply(dataLength: (handle: number) => number = () => 0): Promise<{ error: number; handle: number; data: Buffer }> {
    const h = await this.read(16);
    if (h.readUInt32BE(0) !== P.NBD_SIMPLE_REPLY_MAGIC) throw new Error('bad simple reply magic');
    const error = h.readUInt32BE(4);
    const handle = Number(h.readBigUInt64BE(8));
    const n = error === 0 ? dataLength(handle) : 0;
    return { error, handle, data: Buffer.from(await this.read(n)) };
  }

  async readAt(handle: number, offset: number, length: number): Promise<{ error: number; data: Buffer }> {
    this.request(P.NBD_CMD_READ, handle, offset, length);
    const r = await this.reply(() => length);
    if (r.handle !== handle) throw new Error(`reply handle ${r.handle}, expected ${handle}`);
    return r;
  }

  async writeAt(handle: number, offset: number, data: Uint8Array, flags = 0): Promise<number> {
    this.request(P.NBD_CMD_WRITE, handle, offset, data.length, { data, flags });
    const r = await this.reply();
    if (r.handle !== handle) throw new Error(`reply handle ${r.handle}, expected ${handle}`);
    return r.error;
  }

  // ---- structured replies ----

  /** Greet, negotiate structured replies (and `base:allocation` when asked), GO. */
  async openStructured(name: string, meta = true): Promise<{ size: number; flags: number }> {
    await this.greet();
    this.sendOption(P.NBD_OPT_STRUCTURED_REPLY);
    const sr = await this.optionReply();
    if (sr.type !== P.NBD_REP_ACK) throw new Error(`STRUCTURED_REPLY: reply ${sr.type.toString(16)} ${sr.data.toString()}`);
    if (meta) {
      this.sendOption(P.NBD_OPT_SET_META_CONTEXT, metaData(name, ['base:allocation']));
      const ctx = await this.optionReply();
      if (ctx.type !== P.NBD_REP_META_CONTEXT) throw new Error(`SET_META_CONTEXT: reply ${ctx.type.toString(16)} ${ctx.data.toString()}`);
      if ((await this.optionReply()).type !== P.NBD_REP_ACK) throw new Error('SET_META_CONTEXT: no ACK');
    }
    const r = await this.infoOrGo(P.NBD_OPT_GO, name, [P.NBD_INFO_BLOCK_SIZE]);
    if (r.final !== P.NBD_REP_ACK) throw new Error(`GO ${name}: reply ${r.final.toString(16)} ${r.message}`);
    const e = r.infos.get(P.NBD_INFO_EXPORT)!;
    return { size: Number(e.readBigUInt64BE(0)), flags: e.readUInt16BE(8) };
  }

  /** The replies to one option: every reply up to and including the first that is not META_CONTEXT. */
  async optionReplies(): Promise<{ option: number; type: number; data: Buffer }[]> {
    const all = [];
    for (;;) {
      const r = await this.optionReply();
      all.push(r);
      if (r.type !== P.NBD_REP_META_CONTEXT) return all;
    }
  }

  /** One reply message: a simple reply (no data read) or one structured chunk with its payload. */
  async message(): Promise<Chunk> {
    const magic = (await this.read(4)).readUInt32BE(0);
    if (magic === P.NBD_SIMPLE_REPLY_MAGIC) {
      const h = await this.read(12);
      return { simple: true, flags: P.NBD_REPLY_FLAG_DONE, type: -1, handle: Number(h.readBigUInt64BE(4)), error: h.readUInt32BE(0), payload: Buffer.alloc(0) };
    }
    if (magic !== P.NBD_STRUCTURED_REPLY_MAGIC) throw new Error(`bad reply magic 0x${magic.toString(16)}`);
    const h = await this.read(16);
    const type = h.readUInt16BE(2);
    const payload = Buffer.from(await this.read(h.readUInt32BE(12)));
    const error = type & 0x8000 ? payload.readUInt32BE(0) : 0;
    return { simple: false, flags: h.readUInt16BE(0), type, handle: Number(h.readBigUInt64BE(4)), error, payload };
  }

  /** Every chunk of one reply (one request outstanding), up to the one flagged DONE. */
  async chunks(): Promise<Chunk[]> {
    const all: Chunk[] = [];
    for (;;) {
      const m = await this.message();
      all.push(m);
      if (m.simple || (m.flags & P.NBD_REPLY_FLAG_DONE) !== 0) return all;
    }
  }

  /**
   * A structured read of [offset, offset + length): its chunks, and the data they describe put
   * together (throws on a chunk outside the request, an overlap, or a gap on success).
   */
  async readStructured(handle: number, offset: number, length: number, flags = 0): Promise<{ chunks: Chunk[]; error: number; data: Buffer }> {
    this.request(P.NBD_CMD_READ, handle, offset, length, { flags });
    const chunks = await this.chunks();
    const data = Buffer.alloc(length);
    const seen = new Uint8Array(length);
    let error = 0;
    for (const c of chunks) {
      if (c.handle !== handle) throw new Error(`chunk for handle ${c.handle}, expected ${handle}`);
      if (c.simple) throw new Error('a simple reply to a structured read');
      if (c.error) error = c.error;
      let at: number;
      let n: number;
      if (c.type === P.NBD_REPLY_TYPE_OFFSET_DATA) {
        at = Number(c.payload.readBigUInt64BE(0)) - offset;
        n = c.payload.length - 8;
        if (at >= 0 && at + n <= length) c.payload.copy(data, at, 8);
      } else if (c.type === P.NBD_REPLY_TYPE_OFFSET_HOLE) {
        at = Number(c.payload.readBigUInt64BE(0)) - offset;
        n = c.payload.readUInt32BE(8);
        if (n === 0) throw new Error('a hole of 0 bytes');
      } else continue;
      if (at < 0 || at + n > length) throw new Error(`chunk [${at}, +${n}) outside the request`);
      for (let i = at; i < at + n; i++) {
        if (seen[i]) throw new Error(`chunks overlap at ${offset + i}`);
        seen[i] = 1;
      }
    }
    if (error === 0 && !seen.every((x) => x === 1)) throw new Error('a successful read whose chunks do not cover the request');
    return { chunks, error, data };
  }

  /** NBD_CMD_BLOCK_STATUS: the error, or the context id and its extents. */
  async blockStatus(handle: number, offset: number, length: number, flags = 0): Promise<{ error: number; id: number; extents: [number, number][] }> {
    this.request(P.NBD_CMD_BLOCK_STATUS, handle, offset, length, { flags });
    const chunks = await this.chunks();
    const extents: [number, number][] = [];
    let id = -1;
    let error = 0;
    for (const c of chunks) {
      if (c.handle !== handle) throw new Error(`chunk for handle ${c.handle}, expected ${handle}`);
      if (c.error) error = c.error;
      if (c.type !== P.NBD_REPLY_TYPE_BLOCK_STATUS) continue;
      id = c.payload.readUInt32BE(0);
      for (let at = 4; at < c.payload.length; at += 8) extents.push([c.payload.readUInt32BE(at), c.payload.readUInt32BE(at + 4)]);
    }
    return { error, id, extents };
  }
}

/** One reply message as `RawClient.message` reads it (`type` -1 for a simple reply). */
export interface Chunk {
  simple: boolean;
  flags: number;
  type: number;
  handle: number;
  error: number;
  payload: Buffer;
}

/** Option data of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT. */
export function metaData(name: string, queries: string[]): Buffer {
  const parts = [Buffer.alloc(4), Buffer.from(name), Buffer.alloc(4)];
  parts[0]!.writeUInt32BE(parts[1]!.length);
  parts[2]!.writeUInt32BE(queries.length);
  for (const q of queries) {
    const l = Buffer.alloc(4);
    l.writeUInt32BE(Buffer.byteLength(q));
    parts.push(l, Buffer.from(q));
  }
  return Buffer.concat(parts);
}

export function infoData(name: string, infos: number[]): Buffer {
  const n = Buffer.from(name);
  const b = Buffer.alloc(4 + n.length + 2 + 2 * infos.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(infos.length, 4 + n.length);
  infos.forEach((t, i) => b.writeUInt16BE(t, 6 + n.length + 2 * i));
  return b;
}

/** Deterministic bytes for a pattern check. */
export function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * A memory device whose operations complete only when the test releases them (or after a delay),
 * to test pipelining, out-of-order replies, and that a write is acknowledged only once done.
 */
export class GatedDevice implements BlockDevice {
  readonly inner: MemoryBlockDevice;
  readonly size: number;
  readonly blockSize: number;
  readonly readOnly = false;
  readonly capabilities: BlockCapabilities;
  readonly held: { op: string; offset: number; release(): void; fail(err: unknown): void }[] = [];
  readonly log: string[] = [];
  /** Hold every operation until released (true) or complete at once (false). */
  gate = true;

  constructor(size: number, caps: Partial<BlockCapabilities> = {}) {
    this.inner = new MemoryBlockDevice({ size });
    this.size = size;
    this.blockSize = 512;
    this.capabilities = { flush: true, fua: true, trim: true, writeZeroes: true, multiConn: true, ...caps };
  }

  private hold(op: string, offset: number, run: () => Promise<void>): Promise<void> {
    this.log.push(`${op}@${offset}:start`);
    if (!this.gate)
      return run().then(() => {
        this.log.push(`${op}@${offset}:done`);
      });
    return new Promise((resolve, reject) => {
      this.held.push({
        op,
        offset,
        release: () => {
          void run().then(() => {
            this.log.push(`${op}@${offset}:done`);
            resolve();
          }, reject);
        },
        fail: (err) => reject(err),
      });
    });
  }

  async waitHeld(n: number, ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.held.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.held.length} of ${n} operations reached the device`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  read(offset: number, into: Uint8Array): Promise<void> {
    return this.hold('read', offset, () => this.inner.read(offset, into));
  }
  write(offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    const copy = Uint8Array.from(data);
    return this.hold(fua ? 'write-fua' : 'write', offset, () => this.inner.write(offset, copy, fua));
  }
  flush(): Promise<void> {
    return this.hold('flush', 0, () => this.inner.flush());
  }
  trim(offset: number, length: number, fua: boolean): Promise<void> {
    return this.hold('trim', offset, () => this.inner.trim(offset, length, fua));
  }
  writeZeroes(offset: number, length: number, fua: boolean, noHole: boolean): Promise<void> {
    return this.hold('zero', offset, () => this.inner.writeZeroes(offset, length, fua, noHole));
  }
}
