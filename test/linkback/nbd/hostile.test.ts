/**
 * Hostile and broken clients, from raw sockets: each gets the protocol's answer or a closed
 * connection, the server never crashes, and a well-behaved client connected the whole time keeps
 * reading back what it wrote.
 */
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import type { NbdEvent } from '../../../linkback/nbd/server.js';
import * as P from '../../../linkback/nbd/protocol.js';
import { MAX_EXTENTS } from '../../../linkback/nbd/export.js';
import { MAX_META_QUERIES } from '../../../linkback/nbd/meta-context.js';
import { GatedDevice, RawClient, metaData, pattern, suiteServer } from './helpers.js';

const t = suite('nbd hostile clients');
const MiB = 1 << 20;
const gated = new GatedDevice(8 * MiB);
const events: NbdEvent[] = [];
const served = suiteServer(
  t,
  () => ({
    exports: [
      { name: 'disk', device: new MemoryBlockDevice({ size: 64 * MiB }) },
      { name: 'gated', device: gated },
      { name: 'unread', device: new MemoryBlockDevice({ size: 32 * MiB }) },
    ],
    maxConnections: 8,
    limits: { handshakeTimeoutMs: 300, maxOptions: 8 },
    onEvent: (e) => events.push(e),
  }),
  {
    // The good client runs from before the first test until after the last, and must end clean.
    ready: () => good.start(),
    closing: async () => {
      await good.finish();
      assert.is(good.error, null);
    },
  },
);
const { sock } = served;

/** A client doing verified write/read cycles in the background the whole time. */
class GoodClient {
  ops = 0;
  error: unknown = null;
  private stop = false;
  private done: Promise<void> = Promise.resolve();
  private c!: RawClient;

  async start(): Promise<void> {
    this.c = await RawClient.connect(sock);
    await this.c.open('disk');
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    let i = 0;
    try {
      while (!this.stop) {
        const off = (i % 64) * 65536;
        const data = pattern(65536, i + 1);
        const e = await this.c.writeAt(2 * i, off, data);
        if (e !== 0) throw new Error(`write error ${e}`);
        const r = await this.c.readAt(2 * i + 1, off, 65536);
        if (r.error !== 0 || !r.data.equals(data)) throw new Error(`read back differs at ${off}`);
        this.ops++;
        i++;
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      this.error = e;
    }
  }

  /** Assert it made progress since `since` and saw no error. */
  async progressed(since: number): Promise<number> {
    const deadline = Date.now() + 3000;
    while (this.ops <= since + 2 && !this.error && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.is(this.error, null, `good client failed: ${String(this.error)}`);
    assert.ok(this.ops > since + 2, 'good client made progress');
    return this.ops;
  }

  async finish(): Promise<void> {
    this.stop = true;
    await this.done;
    this.c.destroy();
  }
}

const good = new GoodClient();
let mark = 0;

t.after.each(async () => {
  mark = await good.progressed(mark);
});

t('truncated handshakes: closing at every point before transmission', async () => {
  for (const cut of [0, 2, 4, 10, 16, 20]) {
    const c = await RawClient.connect(sock);
    await c.read(18);
    const bytes = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('IHAVEOPT'), Buffer.from([0, 0, 0, 7, 0, 0, 0, 12])]);
    c.write(bytes.subarray(0, cut));
    c.destroy();
  }
  const early = await RawClient.connect(sock);
  early.destroy(); // before even reading the greeting
});

t('unknown client flags: the server drops the connection (§Client flags)', async () => {
  const c = await RawClient.connect(sock);
  await c.greet(0xffff);
  assert.ok(await c.waitClosed(1000));
});

t('bad option magic: dropped', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  c.write(Buffer.concat([Buffer.from('IHAVEOPX'), Buffer.alloc(8)]));
  assert.ok(await c.waitClosed(1000));
});

t('a handshake that stalls is cut after the handshake timeout', async () => {
  const before = served.server.stats().handshakeTimeouts;
  const silent = await RawClient.connect(sock);
  const half = await RawClient.connect(sock);
  await half.greet();
  half.write(Buffer.from('IHAVE')); // a partial option header, then nothing
  const huge = await RawClient.connect(sock);
  await huge.greet();
  huge.sendOption(P.NBD_OPT_LIST, Buffer.alloc(100), 0xfffffff0); // promises 4 GiB, sends 100 bytes
  const t0 = Date.now();
  assert.ok(await silent.waitClosed(2000));
  assert.ok(await half.waitClosed(2000));
  assert.ok(await huge.waitClosed(2000));
  assert.ok(Date.now() - t0 < 1500);
  assert.is(served.server.stats().handshakeTimeouts - before, 3);
});

t('too many options: answered up to the limit, then dropped', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  for (let i = 0; i < 20; i++) c.sendOption(0x4321);
  let answered = 0;
  try {
    for (;;) {
      assert.is((await c.optionReply()).type, P.NBD_REP_ERR_UNSUP);
      answered++;
    }
  } catch {
    /* closed */
  }
  assert.is(answered, 8);
  assert.ok(await c.waitClosed(1000));
});

t('an oversized option is skipped and answered NBD_REP_ERR_TOO_BIG; an oversized EXPORT_NAME is dropped', async () => {
  const c = await RawClient.connect(sock);
  await c.greet();
  c.sendOption(P.NBD_OPT_INFO, Buffer.alloc(100 * 1024, 0x41));
  const r = await c.optionReply();
  assert.is(r.type, P.NBD_REP_ERR_TOO_BIG);
  const ok = await c.infoOrGo(P.NBD_OPT_INFO, 'disk', []);
  assert.is(ok.final, P.NBD_REP_ACK, 'still in step after the skipped data');
  c.sendOption(P.NBD_OPT_EXPORT_NAME, Buffer.alloc(100 * 1024, 0x41));
  assert.ok(await c.waitClosed(1000));
});

t('bad request magic in transmission: dropped and counted', async () => {
  const before = served.server.stats().exports['disk']!.protocolErrors;
  const c = await RawClient.connect(sock);
  await c.open('disk');
  c.request(P.NBD_CMD_READ, 1, 0, 512, { magic: 0x12345678 });
  assert.ok(await c.waitClosed(1000));
  assert.is(served.server.stats().exports['disk']!.protocolErrors - before, 1);
});

t('a write promising more than 32 MiB: dropped without buffering it', async () => {
  const c = await RawClient.connect(sock);
  await c.open('disk');
  c.request(P.NBD_CMD_WRITE, 1, 0, 0xffffff00, { data: Buffer.alloc(4096) });
  assert.ok(await c.waitClosed(1000));
  assert.is(c.buffered, 0);
});

t('a client that disconnects in the middle of a write payload: nothing is written', async () => {
  const c = await RawClient.connect(sock);
  await c.open('disk');
  c.request(P.NBD_CMD_WRITE, 1, 32 * MiB, 65536, { data: pattern(30000, 1) });
  await new Promise((r) => setTimeout(r, 20));
  c.destroy();
  const v = await RawClient.connect(sock);
  await v.open('disk');
  const r = await v.readAt(1, 32 * MiB, 65536);
  assert.ok(r.data.every((x) => x === 0));
  v.destroy();
});

t('a client that disconnects with requests in flight: the device finishes them, nobody is answered, no crash', async () => {
  const c = await RawClient.connect(sock);
  await c.open('gated');
  for (let i = 0; i < 8; i++) c.request(P.NBD_CMD_READ, i, i * 4096, 4096);
  c.request(P.NBD_CMD_WRITE, 99, 0, 4096, { data: pattern(4096, 3) });
  await gated.waitHeld(9);
  c.destroy();
  await c.waitClosed();
  for (const h of gated.held.splice(0, 4)) h.release();
  for (const h of gated.held.splice(0)) h.fail(new Error('late failure after the client left'));
  await new Promise((r) => setTimeout(r, 20));
  const closes = events.filter((e) => e.type === 'close' && e.export === 'gated');
  assert.ok(closes.length >= 1);
  gated.gate = false;
});

t('garbage after the greeting and after GO: the server answers or hangs up, and carries on', async () => {
  for (let round = 0; round < 6; round++) {
    const cs = await Promise.all([0, 1, 2, 3].map(() => RawClient.connect(sock)));
    await Promise.all(
      cs.map(async (c, i) => {
        if (i % 2 === 0) await c.greet();
        else await c.open('disk');
        for (let k = 0; k < 5; k++) c.write(randomBytes(1 + Math.floor(Math.random() * 3000)));
        // Either the server hangs up (bad magic) or it waits for more; both are fine, crashing is not.
        await c.waitClosed(400);
        c.destroy();
      }),
    );
  }
  // Garbage that looks like requests: valid magic, random everything else.
  const c = await RawClient.connect(sock);
  await c.open('disk');
  for (let i = 0; i < 200; i++) {
    const h = randomBytes(28);
    h.writeUInt32BE(P.NBD_REQUEST_MAGIC, 0);
    const type = h.readUInt16BE(6) % 10;
    h.writeUInt16BE(type === P.NBD_CMD_WRITE || type === P.NBD_CMD_DISC ? P.NBD_CMD_READ : type, 6);
    c.write(h);
  }
  // Random 64-bit offsets are past the 64 MiB export (all but with odds of 2^-38), so every request
  // is answered with an error and no data, in step.
  for (let i = 0; i < 200; i++) {
    const r = await c.reply();
    assert.ok(r.error === P.NBD_EINVAL || r.error === P.NBD_ENOSPC, `error ${r.error}`);
  }
  c.destroy();
});

/** A fixed-newstyle client that negotiated structured replies (one option of the 8 allowed). */
async function structuredClient(): Promise<RawClient> {
  const c = await RawClient.connect(sock);
  await c.greet();
  c.sendOption(P.NBD_OPT_STRUCTURED_REPLY);
  assert.is((await c.optionReply()).type, P.NBD_REP_ACK);
  return c;
}

/** Meta-context option data with raw fields: name length, name, query count, then raw bytes. */
function rawMeta(nameLen: number, name: string | Buffer, count: number, rest: Buffer = Buffer.alloc(0)): Buffer {
  const n = typeof name === 'string' ? Buffer.from(name) : name;
  const b = Buffer.alloc(8 + n.length);
  b.writeUInt32BE(nameLen >>> 0, 0);
  n.copy(b, 4);
  b.writeUInt32BE(count >>> 0, 4 + n.length);
  return Buffer.concat([b, rest]);
}

function query(q: Buffer | string, declared?: number): Buffer {
  const body = typeof q === 'string' ? Buffer.from(q) : q;
  const l = Buffer.alloc(4);
  l.writeUInt32BE((declared ?? body.length) >>> 0);
  return Buffer.concat([l, body]);
}

t('malformed LIST/SET_META_CONTEXT: each answered with its error, the handshake stays in step', async () => {
  const cases: [string, Buffer, number][] = [
    ['empty', Buffer.alloc(0), P.NBD_REP_ERR_INVALID],
    ['7 bytes', Buffer.alloc(7), P.NBD_REP_ERR_INVALID],
    ['name length 2^32-1', rawMeta(0xffffffff, 'disk', 0), P.NBD_REP_ERR_INVALID],
    ['name length past the data', rawMeta(5, 'disk', 0), P.NBD_REP_ERR_INVALID],
    ['query count 2^32-1', rawMeta(4, 'disk', 0xffffffff), P.NBD_REP_ERR_TOO_BIG],
    [
      `${MAX_META_QUERIES + 1} queries`,
      metaData(
        'disk',
        Array.from({ length: MAX_META_QUERIES + 1 }, () => 'base:allocation'),
      ),
      P.NBD_REP_ERR_TOO_BIG,
    ],
    ['3 queries announced, 1 sent', rawMeta(4, 'disk', 3, query('base:allocation')), P.NBD_REP_ERR_INVALID],
    ['query length 2^32-1', rawMeta(4, 'disk', 1, query('base:allocation', 0xffffffff)), P.NBD_REP_ERR_INVALID],
    ['query longer than a string', rawMeta(4, 'disk', 1, query(`base:${'a'.repeat(5000)}`)), P.NBD_REP_ERR_INVALID],
    ['query with NUL', rawMeta(4, 'disk', 1, query('base:alloc\0ation')), P.NBD_REP_ERR_INVALID],
    ['query not UTF-8', rawMeta(4, 'disk', 1, query(Buffer.from([0x62, 0x3a, 0xff, 0xfe]))), P.NBD_REP_ERR_INVALID],
    ['query without namespace', rawMeta(4, 'disk', 1, query(':allocation')), P.NBD_REP_ERR_INVALID],
    ['bytes after the last query', Buffer.concat([metaData('disk', ['base:allocation']), Buffer.from('xx')]), P.NBD_REP_ERR_INVALID],
    ['name not UTF-8', rawMeta(1, Buffer.from([0xff]), 0), P.NBD_REP_ERR_INVALID],
    ['unknown export', metaData('nope', ['base:allocation']), P.NBD_REP_ERR_UNKNOWN],
  ];
  let c = await structuredClient();
  let used = 1;
  for (const [what, data, err] of cases) {
    for (const opt of [P.NBD_OPT_LIST_META_CONTEXT, P.NBD_OPT_SET_META_CONTEXT]) {
      if (used >= 7) {
        c.destroy();
        c = await structuredClient();
        used = 1;
      }
      c.sendOption(opt, data);
      const r = await c.optionReply();
      used++;
      assert.equal([r.option, r.type], [opt, err], what);
    }
  }
  // In step: a GO still works, and the failed SET left no context selected.
  const go = await c.infoOrGo(P.NBD_OPT_GO, 'disk', []);
  assert.is(go.final, P.NBD_REP_ACK);
  assert.is((await c.blockStatus(1, 0, 4096)).error, P.NBD_EINVAL);
  c.destroy();
});

t('random metadata-context option data: one final reply each, in step, never a crash', async () => {
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  for (let conn = 0; conn < 20; conn++) {
    const c = await structuredClient();
    for (let k = 0; k < 6; k++) {
      // Mostly well-formed heads with random counts and lengths, sometimes pure noise.
      const data =
        rnd(4) === 0
          ? randomBytes(rnd(64))
          : rawMeta(
              rnd(3) === 0 ? rnd(0x10000) : 4,
              'disk',
              rnd(3) === 0 ? rnd(1000) : rnd(4),
              Buffer.concat([query('base:allocation', rnd(2) ? undefined : rnd(100)), randomBytes(rnd(20))]),
            );
      const opt = rnd(2) ? P.NBD_OPT_LIST_META_CONTEXT : P.NBD_OPT_SET_META_CONTEXT;
      c.sendOption(opt, data);
      const rs = await c.optionReplies();
      assert.ok(rs.every((r) => r.option === opt));
      const last = rs.at(-1)!.type;
      assert.ok(last === P.NBD_REP_ACK || last >= 0x80000000, `final reply ${last.toString(16)}`);
    }
    c.destroy();
  }
});

t('a structured client sending an option after GO: bad request magic, dropped', async () => {
  const c = await RawClient.connect(sock);
  await c.openStructured('disk');
  const before = served.server.stats().exports['disk']!.protocolErrors;
  c.sendOption(P.NBD_OPT_SET_META_CONTEXT, metaData('disk', ['base:allocation']));
  assert.ok(await c.waitClosed(1000));
  assert.is(served.server.stats().exports['disk']!.protocolErrors - before, 1);
});

t('block status floods with hostile offsets, lengths and flags: every reply bounded and in step', async () => {
  const c = await RawClient.connect(sock);
  const { size } = await c.openStructured('disk');
  const N = 400;
  const asked: { offset: number; length: number; flags: number }[] = [];
  for (let i = 0; i < N; i++) {
    const kind = i % 5;
    const length = kind === 0 ? 0xffffffff : kind === 1 ? 0 : 512 * (1 + Math.floor(Math.random() * 65536));
    const offset = kind === 2 ? 2 ** 62 : 512 * Math.floor(Math.random() * (size / 512));
    const flags = kind === 3 ? P.NBD_CMD_FLAG_REQ_ONE : kind === 4 ? Math.floor(Math.random() * 0x10000) & ~P.NBD_CMD_FLAG_FUA : 0;
    asked.push({ offset, length, flags });
    c.request(P.NBD_CMD_BLOCK_STATUS, i, offset, length, { flags });
  }
  for (let i = 0; i < N; i++) {
    const ch = await c.chunks();
    const m = ch.at(-1)!;
    const q = asked[m.handle]!;
    assert.ok(m.flags & P.NBD_REPLY_FLAG_DONE);
    const valid = q.length > 0 && q.offset + q.length <= size && (q.flags & ~P.NBD_CMD_FLAG_REQ_ONE) === 0;
    if (!valid) {
      assert.is(m.error, P.NBD_EINVAL, JSON.stringify(q));
      continue;
    }
    assert.is(m.type, P.NBD_REPLY_TYPE_BLOCK_STATUS, JSON.stringify(q));
    const n = (m.payload.length - 4) / 8;
    assert.ok(n >= 1 && n <= MAX_EXTENTS);
    if (q.flags & P.NBD_CMD_FLAG_REQ_ONE) assert.is(n, 1);
    let sum = 0;
    for (let k = 0; k < n; k++) sum += m.payload.readUInt32BE(4 + 8 * k);
    assert.ok(sum > 0 && sum <= q.length, `extents cover ${sum} of ${q.length}`);
  }
  c.destroy();
});

t('a client that never reads its replies: input is paused, memory stays bounded', async () => {
  const c = await RawClient.connect(sock);
  await c.open('unread');
  c.socket.pause(); // never read
  const hdrs = Buffer.alloc(28 * 2000);
  for (let i = 0; i < 2000; i++) {
    const at = i * 28;
    hdrs.writeUInt32BE(P.NBD_REQUEST_MAGIC, at);
    hdrs.writeUInt16BE(P.NBD_CMD_READ, at + 6);
    hdrs.writeUInt32BE(i, at + 12);
    hdrs.writeUInt32BE((i % 32) * MiB, at + 20);
    hdrs.writeUInt32BE(MiB, at + 24);
  }
  c.write(hdrs); // 2000 reads of 1 MiB: 2 GiB of replies
  await new Promise((r) => setTimeout(r, 300));
  const parsed = served.server.stats().exports['unread']!.reads;
  assert.ok(parsed < 200, `only a bounded number of reads is taken in while replies are unread (took ${parsed})`);
  c.destroy();
});

t('connections over the limit are closed at once; the counted refusal shows in stats', async () => {
  // Let the server see earlier tests' connections go: only the good client remains.
  for (let i = 0; i < 100 && served.server.stats().connectionsActive > 1; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(served.server.stats().connectionsActive, 1);
  const before = served.server.stats().connectionsRefused;
  const open: RawClient[] = [];
  for (let i = 0; i < 12; i++) open.push(await RawClient.connect(sock));
  // Wait (bounded) for the refusals to reach the clients; the machine may be busy.
  for (let i = 0; i < 300 && open.filter((c) => c.closed).length < 5; i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 50)); // and make sure no sixth one follows
  const closed = open.filter((c) => c.closed).length;
  // 8 allowed, one of them is the good client.
  assert.is(closed, 5);
  assert.is(served.server.stats().connectionsRefused - before, 5);
  for (const c of open) c.destroy();
  await new Promise((r) => setTimeout(r, 50));
});

t.run();
