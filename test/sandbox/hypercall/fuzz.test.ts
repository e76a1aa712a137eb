import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameDecoder, HC_VERSION, HEADER_SIZE, HcStatus, HcType, HypercallError, encodeFrame } from '../../../sandbox/abi/hypercall/index.js';
import { HostEndpoint } from '../../../sandbox/manager/hypercall/host.js';
import { GuestEndpoint } from '../../../sandbox/container/hypercall/guest.js';
import { duplexPair, prng, tick } from './helpers.js';

const CODES = new Set([
  'ERR_HC_BAD_MAGIC',
  'ERR_HC_BAD_VERSION',
  'ERR_HC_FRAME_TOO_LARGE',
  'ERR_HC_TRUNCATED',
  'ERR_HC_SEQUENCE',
  'ERR_HC_BAD_TYPE',
  'ERR_HC_BAD_LENGTH',
  'ERR_HC_BAD_FIELD',
  'ERR_HC_STATE',
  'ERR_HC_UNEXPECTED_REPLY',
  'ERR_HC_RATE',
  'ERR_HC_FLOOD',
  'ERR_HC_VERSION_MISMATCH',
  'ERR_HC_TIMEOUT',
  'ERR_HC_HEARTBEAT',
  'ERR_HC_CLOSED',
]);
const KILLS = new Set([
  'ERR_HC_BAD_MAGIC',
  'ERR_HC_BAD_VERSION',
  'ERR_HC_FRAME_TOO_LARGE',
  'ERR_HC_TRUNCATED',
  'ERR_HC_SEQUENCE',
  'ERR_HC_FLOOD',
  'ERR_HC_VERSION_MISMATCH',
  'ERR_HC_CLOSED',
  'ERR_HC_HEARTBEAT',
  'ERR_HC_TIMEOUT',
]);

test('decoder: random bytes in random chunks never throw, and every problem is typed', () => {
  const rnd = prng(0xd1ab0c5);
  let frames = 0;
  let problems = 0;
  for (let iter = 0; iter < 3000; iter++) {
    let dead = false;
    const d = new FrameDecoder(
      {
        frame: (h) => {
          assert.ok(!dead);
          assert.ok(h.length <= 64);
          frames++;
        },
        problem: (e) => {
          assert.instance(e, HypercallError);
          assert.ok(CODES.has(e.code), e.code);
          if (e.decision === 'kill') dead = true;
          problems++;
        },
      },
      { version: HC_VERSION, maxPayload: 64 },
    );
    const n = rnd() % 200;
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) bytes[i] = rnd() & 0xff;
    // A valid magic and version now and then, so the fuzz reaches past the header checks.
    if (n >= 4 && rnd() % 2) {
      bytes[0] = 0x68;
      bytes[1] = 0x63;
      bytes[2] = HC_VERSION;
    }
    if (n >= 16 && rnd() % 2) {
      bytes[12] = rnd() % 80;
      bytes[13] = 0;
      bytes[14] = 0;
      bytes[15] = 0;
    }
    for (let i = 0; i < n;) {
      const k = 1 + (rnd() % 32);
      d.push(bytes.subarray(i, i + k));
      i += k;
    }
    d.end();
    assert.ok(!(dead && !d.stopped));
  }
  assert.ok(problems > 1000, `problems ${problems}`);
  assert.ok(frames > 0, 'the fuzz never produced a whole frame: it does not reach the payload path');
});

test('host endpoint: well-framed frames with random types and payloads never throw out of it or leave it stuck', async () => {
  const rnd = prng(42);
  const types = [...Object.values(HcType).filter((v) => typeof v === 'number'), 0, 5, 200] as number[];
  let kills = 0;
  for (let run = 0; run < 200; run++) {
    const [h, g] = duplexPair();
    g.on('data', () => {});
    let killed = false;
    const host = new HostEndpoint(h, {
      windowCount: 2,
      handler: { mapWindow: () => HcStatus.DENIED, irqSetup: () => HcStatus.DENIED, log: () => {}, heartbeat: () => {}, fault: () => {}, ready: () => {} },
      onViolation: (e) => {
        assert.ok(CODES.has(e.code), e.code);
        if (e.code !== 'ERR_HC_STATE') assert.is(e.decision === 'kill', KILLS.has(e.code), e.code);
        if (e.decision === 'kill') killed = true;
      },
    });
    // A valid HELLO first, so most frames reach the per-type checks.
    const hello = encodeFrame(HC_VERSION, HcType.HELLO, 1, 0, 24, (v, b) => {
      v.setUint16(16, 1, true);
      v.setUint16(18, 1, true);
      v.setUint32(20, 7, true);
      b.write('fuzz', 24);
    });
    g.write(hello);
    for (let seq = 2; seq < 60 && !killed; seq++) {
      const type = types[rnd() % types.length]!;
      const len = rnd() % 3 === 0 ? [0, 4, 8, 16, 24, 32][rnd() % 6]! : rnd() % 48;
      const f = encodeFrame(HC_VERSION, type, rnd() % 50 === 0 ? seq + 1 : seq, rnd() % 8 === 0 ? rnd() % 4 : 0, len);
      for (let i = HEADER_SIZE; i < f.length; i++) f[i] = rnd() % 4 === 0 ? rnd() & 0xff : 0;
      g.write(f);
    }
    await tick();
    assert.is(host.state === 'stopped', killed, 'stopped exactly when a kill was decided');
    if (killed) kills++;
    host.close();
  }
  assert.ok(kills > 0 && kills < 200, `kills ${kills}: the fuzz should reach both outcomes`);
});

test('guest endpoint: random host frames never throw out of it', async () => {
  const rnd = prng(7);
  for (let run = 0; run < 100; run++) {
    const [h, g] = duplexPair();
    h.on('data', () => {});
    const guest = new GuestEndpoint(g, {
      name: 'fuzz',
      timeoutMs: 1000,
      handler: { shutdown: () => {}, quiesce: () => 0 },
      onViolation: (e) => assert.ok(CODES.has(e.code), e.code),
    });
    const pending = guest.mapWindow(0).catch((e) => e);
    for (let seq = 1; seq < 30; seq++) {
      const type = [HcType.REPLY, HcType.SHUTDOWN, HcType.QUIESCE, HcType.LOG, 3][rnd() % 5]!;
      const len = [0, 4, 8, 36, rnd() % 40][rnd() % 5]!;
      const f = encodeFrame(HC_VERSION, type, seq, rnd() % 3, len);
      for (let i = HEADER_SIZE; i < f.length; i++) f[i] = rnd() % 3 === 0 ? rnd() & 0xff : 0;
      h.write(f);
    }
    await tick();
    guest.close();
    const r = await pending;
    assert.ok(r instanceof Error || typeof r === 'object');
  }
});

test.run();
