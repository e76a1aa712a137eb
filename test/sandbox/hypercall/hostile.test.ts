import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HELLO, HEARTBEAT, HcStatus, HcType, IRQ_SETUP, LOG, MAP_WINDOW, REPLY, type HypercallError } from '../../../sandbox/abi/hypercall/index.js';
import { HostEndpoint, type HostOptions } from '../../../sandbox/manager/hypercall/host.js';
import { FRAMES_PER_TURN } from '../../../sandbox/abi/hypercall/channel.js';
import { RawPeer, duplexPair, payload, tick } from './helpers.js';
import { FakeTimers } from '../../helpers/fake-timers.js';

function hello(min = 1, max = 1, name = 'evil'): Buffer {
  const b = payload(HELLO.size, (v) => {
    v.setUint16(HELLO.minVersion, min, true);
    v.setUint16(HELLO.maxVersion, max, true);
    v.setUint32(HELLO.pid, 4242, true);
  });
  b.write(name, HELLO.name, 'latin1');
  return b;
}
const heartbeat = (completed: bigint) => payload(HEARTBEAT.size, (v) => v.setBigUint64(HEARTBEAT.completed, completed, true));
const log = (text: string, level = 2) => {
  const t = Buffer.from(text);
  const b = payload(LOG.headerSize + t.length, (v) => {
    v.setUint8(LOG.level, level);
    v.setUint16(LOG.textLength, t.length, true);
  });
  t.copy(b, LOG.text);
  return b;
};

/** A host with a raw peer; `greet` sends a valid HELLO first. */
async function hostile(greet = true, extra: Partial<HostOptions> = {}) {
  const [h, g] = duplexPair();
  const violations: HypercallError[] = [];
  const calls: string[] = [];
  const timers = new FakeTimers();
  const host = new HostEndpoint(h, {
    windowCount: 1,
    handler: {
      mapWindow: () => ({ iova: 0n, length: 4096n, offset: 0n, fdSlot: 3, deviceRead: true, deviceWrite: false, hugePages: false }),
      irqSetup: () => HcStatus.DENIED,
      log: (r) => calls.push(`log ${r.text}`),
      heartbeat: (b) => calls.push(`beat ${b.completed}`),
    },
    onViolation: (e) => violations.push(e),
    timers,
    ...extra,
  });
  const peer = new RawPeer(g);
  if (greet) {
    const s = peer.send(HcType.HELLO, hello());
    await tick();
    assert.is(peer.repliesTo(s).length, 1);
  }
  const codes = () => violations.map((v) => `${v.code} ${v.decision}`);
  return { host, peer, violations, calls, codes, timers, advance: (ms: number) => timers.advance(ms) };
}

/** After a 'drop', the endpoint must still serve: a CLOCK gets its reply. */
async function stillServes(t: Awaited<ReturnType<typeof hostile>>): Promise<void> {
  const s = t.peer.send(HcType.CLOCK);
  await tick();
  const r = t.peer.repliesTo(s);
  assert.is(r.length, 1, 'the endpoint stalled after a dropped frame');
  assert.is(r[0]!.payload.readUInt16LE(REPLY.status), HcStatus.OK);
}

test('unknown type: dropped, the channel goes on', async () => {
  const t = await hostile();
  t.peer.send(99, Buffer.alloc(7));
  await tick();
  assert.equal(t.codes(), ['ERR_HC_BAD_TYPE drop']);
  await stillServes(t);
});

test('a host-to-guest type sent by the guest is refused', async () => {
  const t = await hostile();
  t.peer.send(HcType.SHUTDOWN, Buffer.alloc(8));
  await tick();
  assert.equal(t.codes(), ['ERR_HC_BAD_TYPE drop']);
  await stillServes(t);
});

test('wrong payload length: dropped, and a request still gets an answer (BAD_REQUEST)', async () => {
  const t = await hostile();
  t.peer.send(HcType.HEARTBEAT, Buffer.alloc(HEARTBEAT.size - 1));
  const s = t.peer.send(HcType.MAP_WINDOW, Buffer.alloc(MAP_WINDOW.size + 4));
  await tick();
  assert.equal(t.codes(), ['ERR_HC_BAD_LENGTH drop', 'ERR_HC_BAD_LENGTH drop']);
  assert.is(t.peer.repliesTo(s)[0]!.payload.readUInt16LE(REPLY.status), HcStatus.BAD_REQUEST);
  await stillServes(t);
});

test('out-of-range and reserved fields are dropped with the field named', async () => {
  const t = await hostile();
  t.peer.send(HcType.LOG, log('x', 9));
  t.peer.send(
    HcType.MAP_WINDOW,
    payload(MAP_WINDOW.size, (v) => v.setUint32(MAP_WINDOW.reserved, 1, true)),
  );
  const irq = t.peer.send(
    HcType.IRQ_SETUP,
    payload(IRQ_SETUP.size, (v) => {
      v.setUint8(IRQ_SETUP.kind, 1);
      v.setUint16(IRQ_SETUP.vectors, 0, true);
    }),
  );
  t.peer.send(
    HcType.LOG,
    payload(LOG.headerSize + 2, (v) => v.setUint16(LOG.textLength, 600, true)),
  );
  t.peer.send(HcType.CLOCK, Buffer.alloc(0), { ref: 5 });
  await tick();
  assert.equal(t.codes(), Array(5).fill('ERR_HC_BAD_FIELD drop'));
  assert.match(t.violations[0]!.message, /level 9 is outside 0\.\.3/);
  assert.match(t.violations[1]!.message, /reserved byte at payload offset 4/);
  assert.match(t.violations[2]!.message, /vectors 0 is outside 1\.\.2048/);
  assert.match(t.violations[3]!.message, /textLength 600 is outside 0\.\.512/);
  assert.match(t.violations[4]!.message, /only REPLY frames carry a ref/);
  assert.is(t.peer.repliesTo(irq)[0]!.payload.readUInt16LE(REPLY.status), HcStatus.BAD_REQUEST);
  await stillServes(t);
});

test('heartbeat counters may not go down', async () => {
  const t = await hostile();
  t.peer.send(HcType.HEARTBEAT, heartbeat(10n));
  t.peer.send(HcType.HEARTBEAT, heartbeat(9n));
  t.peer.send(HcType.HEARTBEAT, heartbeat(11n));
  await tick();
  assert.equal(t.calls, ['beat 10', 'beat 11']);
  assert.equal(t.codes(), ['ERR_HC_BAD_FIELD drop']);
});

test('a REPLY to nothing is dropped', async () => {
  const t = await hostile();
  t.peer.send(
    HcType.REPLY,
    payload(REPLY.headerSize + 4, (v) => v.setUint8(REPLY.call, HcType.QUIESCE)),
    { ref: 77 },
  );
  await tick();
  assert.equal(t.codes(), ['ERR_HC_UNEXPECTED_REPLY drop']);
  await stillServes(t);
});

test('unsolicited REPLY frames are rate-limited like any other, and flooding with them kills', async () => {
  const t = await hostile(true, { floodLimit: 30 });
  const reply = payload(REPLY.headerSize + 4, (v) => v.setUint8(REPLY.call, HcType.QUIESCE));
  for (let i = 0; i < 40; i++) t.peer.send(HcType.REPLY, reply, { ref: 1000 + i });
  await tick();
  const codes = t.codes();
  assert.is(codes.filter((c) => c === 'ERR_HC_UNEXPECTED_REPLY drop').length, 16, 'the REPLY burst is 16, each one a drop');
  // every drop counts against the flood limit, whatever dropped it: 16 + 14 = 30, then the kill
  assert.is(t.host.counters.dropped, 31);
  assert.equal(codes.slice(-1), ['ERR_HC_FLOOD kill']);
  assert.match(t.violations.at(-1)!.message, /31 dropped frames within a second/);
});

test('a flood of unknown types and of requests with a ref is charged, counted and killed, and reported in bounded form', async () => {
  const t = await hostile(true, { floodLimit: 100, reportLimit: 5 });
  for (let i = 0; i < 200; i++) {
    if (i % 2 === 0) t.peer.send(0x7e, Buffer.alloc(0));
    else t.peer.send(HcType.CLOCK, Buffer.alloc(0), { ref: 9 });
  }
  await tick();
  const codes = t.codes();
  // five reported one by one, the rest counted: the kill's message summarises them
  assert.is(codes.length, 6, codes.join('\n'));
  assert.equal(codes.slice(-1), ['ERR_HC_FLOOD kill']);
  const flood = t.violations.at(-1)!.message;
  assert.match(flood, /101 dropped frames within a second, over the limit of 100 \(95 not reported one by one: /);
  // unknown types spent their own bucket (burst 8) and then went over it
  assert.match(flood, /ERR_HC_RATE \d+/);
  assert.match(flood, /ERR_HC_BAD_FIELD \d+/);
  assert.is(t.host.counters.dropped, 101);
  assert.is(t.host.state, 'stopped');
  // frames after the kill are not even read
  t.peer.send(0x7e, Buffer.alloc(0));
  await tick();
  assert.is(t.violations.length, 6);
});

test('drops under the flood limit: the first of each second one by one, the rest in one summary when the second ends', async () => {
  const t = await hostile(true, { floodLimit: 100, reportLimit: 3 });
  for (let i = 0; i < 20; i++) t.peer.send(0x7e, Buffer.alloc(0));
  await tick();
  assert.equal(t.codes(), Array(3).fill('ERR_HC_BAD_TYPE drop'));
  t.advance(1000);
  await tick();
  assert.equal(t.codes().slice(3), ['ERR_HC_DROPPED drop']);
  assert.match(t.violations.at(-1)!.message, /17 not reported one by one: ERR_HC_BAD_TYPE 5, ERR_HC_RATE 12/);
  assert.is(t.host.counters.dropped, 20);
  await stillServes(t);
  // a new second (the bucket refilled 4 tokens meanwhile): reported one by one again
  t.peer.send(0x7e, Buffer.alloc(0));
  await tick();
  assert.equal(t.codes().slice(-1), ['ERR_HC_BAD_TYPE drop']);
});

test('a REPLY before HELLO is a kill too', async () => {
  const t = await hostile(false);
  t.peer.send(
    HcType.REPLY,
    payload(REPLY.headerSize + 4, (v) => v.setUint8(REPLY.call, HcType.QUIESCE)),
    { ref: 1 },
  );
  await tick();
  assert.equal(t.codes(), ['ERR_HC_STATE kill']);
});

test('anything before HELLO is a kill', async () => {
  const t = await hostile(false);
  t.peer.send(HcType.CLOCK);
  t.peer.send(HcType.HELLO, hello());
  await tick();
  assert.equal(t.codes(), ['ERR_HC_STATE kill']);
  assert.is(t.host.state, 'stopped');
  assert.is(t.peer.received.length, 0, 'a stopped endpoint answers nothing');
});

test('a second HELLO is refused (STATE) and dropped', async () => {
  const t = await hostile();
  const s = t.peer.send(HcType.HELLO, hello());
  await tick();
  assert.equal(t.codes(), ['ERR_HC_STATE drop']);
  assert.is(t.peer.repliesTo(s)[0]!.payload.readUInt16LE(REPLY.status), HcStatus.STATE);
  await stillServes(t);
});

test('no common version: UNSUPPORTED, then a kill with a fix', async () => {
  const t = await hostile(false);
  const s = t.peer.send(HcType.HELLO, hello(2, 3));
  await tick();
  assert.is(t.peer.repliesTo(s)[0]!.payload.readUInt16LE(REPLY.status), HcStatus.UNSUPPORTED);
  assert.equal(t.codes(), ['ERR_HC_VERSION_MISMATCH kill']);
  assert.match(t.violations[0]!.message, /fix: rebuild the driver container image/);
});

test('a bad HELLO name is a bad field', async () => {
  const t = await hostile(false);
  t.peer.send(HcType.HELLO, hello(1, 1, 'a\x01b'));
  await tick();
  assert.equal(t.codes().slice(0, 1), ['ERR_HC_BAD_FIELD drop']);
});

test('oversized frame: killed before its payload is read; later bytes are ignored', async () => {
  const t = await hostile();
  t.peer.send(HcType.LOG, Buffer.alloc(5000));
  t.peer.send(HcType.CLOCK);
  await tick();
  assert.equal(t.codes(), ['ERR_HC_FRAME_TOO_LARGE kill']);
  assert.match(t.violations[0]!.message, /declares 5000 payload bytes; the maximum is 1024/);
  assert.is(t.host.state, 'stopped');
  assert.is(t.peer.received.length, 1, 'only the HELLO reply');
});

test('bad magic and bad header version are kills', async () => {
  const a = await hostile();
  a.peer.stream.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  await tick();
  assert.equal(a.codes(), ['ERR_HC_BAD_MAGIC kill']);
  const b = await hostile();
  b.peer.send(HcType.CLOCK, Buffer.alloc(0), { version: 7 });
  await tick();
  assert.equal(b.codes(), ['ERR_HC_BAD_VERSION kill']);
});

test('a truncated frame at end of stream is reported as such', async () => {
  const t = await hostile();
  const frame = Buffer.alloc(16 + 8);
  frame.writeUInt16LE(0x6368, 0);
  frame[2] = 1;
  frame[3] = HcType.MAP_WINDOW;
  frame.writeUInt32LE(2, 4);
  frame.writeUInt32LE(8, 12);
  t.peer.stream.write(frame.subarray(0, 20));
  t.peer.stream.end();
  await tick();
  await tick();
  assert.equal(t.codes(), ['ERR_HC_TRUNCATED kill']);
});

test('out-of-order, duplicate and replayed sequence ids are kills', async () => {
  for (const seq of [3, 1, 2]) {
    const t = await hostile();
    if (seq === 2) {
      t.peer.send(HcType.CLOCK);
      t.peer.send(HcType.CLOCK, Buffer.alloc(0), { seq: 2 });
    } else {
      t.peer.send(HcType.CLOCK, Buffer.alloc(0), { seq });
    }
    await tick();
    assert.equal(t.codes(), ['ERR_HC_SEQUENCE kill'], `seq ${seq}`);
  }
});

test('a peer keeping the socket full gets FRAMES_PER_TURN frames a turn; the rest wait, in order, for the next turns', async () => {
  const t = await hostile(true);
  const seqs: number[] = [];
  for (let i = 0; i < 5 * FRAMES_PER_TURN + 5; i++) seqs.push(t.peer.send(HcType.CLOCK));
  const answered = () => seqs.filter((s) => t.peer.repliesTo(s).length === 1).length;
  // one loop iteration: the data event's share, and at most one more from the check phase
  await tick(1);
  assert.ok(answered() > 0 && answered() <= 2 * FRAMES_PER_TURN, `${answered()} answered in one turn`);
  await tick();
  assert.is(answered(), seqs.length);
  assert.equal(t.codes(), [], 'in order: no sequence violation');
});

test('flooding: the token bucket drops, sustained flooding kills', async () => {
  const t = await hostile(true, { floodLimit: 50, reportLimit: 100 });
  for (let i = 0; i < 230; i++) t.peer.send(HcType.LOG, log(`m${i}`));
  await tick();
  assert.is(t.calls.length, 200, 'the LOG burst is 200');
  assert.equal(t.codes(), Array(30).fill('ERR_HC_RATE drop'));
  t.advance(100); // 100 ms at 100/s refills 10 tokens
  for (let i = 0; i < 12; i++) t.peer.send(HcType.LOG, log(`late${i}`));
  await tick();
  assert.is(t.calls.length, 210);
  assert.is(t.host.state, 'running');
  for (let i = 0; i < 20; i++) t.peer.send(HcType.LOG, log('more'));
  await tick();
  assert.equal(t.codes().slice(-1), ['ERR_HC_FLOOD kill']);
  assert.is(t.violations.filter((v) => v.code === 'ERR_HC_RATE').length, 50);
  assert.is(t.host.state, 'stopped');
});

test.run();
