/**
 * Boot parameters by key (GETPARAM) and the driver code image: the call between real endpoints,
 * hostile GETPARAM frames against the host (an unknown key is an answer, a malformed request is
 * BAD_REQUEST and a dropped frame, never a kill; the call is rate-limited), the container's typed
 * reads of the parameters, and the code image's checks.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HostEndpoint } from '../../sandbox/manager/hypercall/host.js';
import { GuestEndpoint } from '../../sandbox/container/hypercall/guest.js';
import { GETPARAM, GETPARAM_RESULT, HC_MAX_PARAM_VALUE, HcStatus, HcType, HELLO, REPLY, type HypercallError } from '../../sandbox/abi/hypercall/index.js';
import { BootParams, PARAM } from '../../sandbox/abi/boot.js';
import { CODE_HEADER_BYTES, decodeCode, decodeCodeHeader, encodeCode } from '../../sandbox/abi/code.js';
import { duplexPair, payload, RawPeer } from './hypercall/helpers.js';

const TABLE = new Map<string, string>([
  [PARAM.SANDBOX_NAME, 'disk0'],
  [PARAM.DRIVER_QUEUES, '2'],
  ['unicode', 'größe ✓'],
  [PARAM.DEVICE_BARS, '16384,0,0,0,0,0'],
]);

function host(stream: ReturnType<typeof duplexPair>[0], violations: HypercallError[], getParam?: (k: string) => string | undefined): HostEndpoint {
  return new HostEndpoint(stream, {
    windowCount: 0,
    helloTimeoutMs: 60_000,
    heartbeatMs: 60_000,
    handler: { mapWindow: () => HcStatus.DENIED, irqSetup: () => HcStatus.DENIED, ...(getParam ? { getParam } : {}) },
    onViolation: (e) => violations.push(e),
  });
}

test('GETPARAM between real endpoints: values by key, UTF-8 intact, an unknown key is undefined', async () => {
  const [a, b] = duplexPair();
  const violations: HypercallError[] = [];
  const h = host(a, violations, (k) => TABLE.get(k));
  const g = new GuestEndpoint(b, { name: 'test', handler: { shutdown: () => undefined, quiesce: () => 0 } });
  await g.hello();
  assert.is(await g.getParam(PARAM.SANDBOX_NAME), 'disk0');
  assert.is(await g.getParam('unicode'), 'größe ✓');
  assert.is(await g.getParam('no.such.key'), undefined);
  const all = await Promise.all([PARAM.DRIVER_QUEUES, PARAM.DEVICE_BARS].map((k) => g.getParam(k)));
  assert.equal(all, ['2', '16384,0,0,0,0,0']);
  try {
    await g.getParam('has space');
    assert.unreachable('a key with a space is not sent');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_HC_ARG');
  }
  assert.equal(violations, []);
  g.close();
  h.close();
});

test('GETPARAM from a hostile peer: malformed requests are BAD_REQUEST and dropped, a host without a table says UNSUPPORTED, a value too long is INTERNAL', async () => {
  const [a, b] = duplexPair();
  const violations: HypercallError[] = [];
  const big = 'x'.repeat(HC_MAX_PARAM_VALUE + 1);
  host(a, violations, (k) => (k === 'big' ? big : TABLE.get(k)));
  const peer = new RawPeer(b);
  const hello = payload(HELLO.size, (v) => {
    v.setUint16(0, 1, true);
    v.setUint16(2, 1, true);
    v.setUint32(4, 42, true);
  });
  hello.write('hostile', HELLO.name, 'latin1');
  peer.send(HcType.HELLO, hello);
  const key = (k: string, opts: { length?: number; reserved?: number } = {}): Buffer => {
    const kb = Buffer.from(k, 'latin1');
    const p = payload(GETPARAM.headerSize + kb.length, (v) => {
      v.setUint16(0, opts.length ?? kb.length, true);
      v.setUint16(2, opts.reserved ?? 0, true);
    });
    kb.copy(p, GETPARAM.key);
    return p;
  };
  const status = (seq: number): number => peer.repliesTo(seq)[0]!.payload.readUInt16LE(REPLY.status);
  const good = peer.send(HcType.GETPARAM, key(PARAM.SANDBOX_NAME));
  const unknown = peer.send(HcType.GETPARAM, key('nope'));
  const empty = peer.send(HcType.GETPARAM, key(''));
  const lying = peer.send(HcType.GETPARAM, key('abc', { length: 7 }));
  const reserved = peer.send(HcType.GETPARAM, key('abc', { reserved: 1 }));
  const ctrl = peer.send(HcType.GETPARAM, key('a\u0001b'));
  const long = peer.send(HcType.GETPARAM, key('k'.repeat(65)));
  const tooBig = peer.send(HcType.GETPARAM, key('big'));
  await new Promise((r) => setImmediate(r));
  const r = peer.repliesTo(good)[0]!.payload;
  assert.is(r.readUInt16LE(REPLY.status), HcStatus.OK);
  assert.is(r.length, REPLY.headerSize + GETPARAM_RESULT.size);
  const n = r.readUInt16LE(REPLY.result + GETPARAM_RESULT.valueLength);
  assert.is(r.subarray(REPLY.result + GETPARAM_RESULT.value, REPLY.result + GETPARAM_RESULT.value + n).toString('utf8'), 'disk0');
  assert.is(status(unknown), HcStatus.NOT_FOUND, 'an unknown key is an answer');
  for (const seq of [empty, lying, reserved, ctrl, long]) assert.is(status(seq), HcStatus.BAD_REQUEST, `seq ${seq}`);
  assert.is(status(tooBig), HcStatus.INTERNAL);
  assert.ok(violations.length >= 5 && violations.every((v) => v.decision === 'drop'), violations.map((v) => `${v.code} ${v.decision}`).join(', '));

  const [c, d] = duplexPair();
  host(c, []);
  const p2 = new RawPeer(d);
  p2.send(HcType.HELLO, hello);
  const seq = p2.send(HcType.GETPARAM, key('x'));
  await new Promise((r2) => setImmediate(r2));
  assert.is(p2.repliesTo(seq)[0]!.payload.readUInt16LE(REPLY.status), HcStatus.UNSUPPORTED);
});

test('GETPARAM is rate-limited like every call: a burst beyond its bucket is dropped, not answered', async () => {
  const [a, b] = duplexPair();
  const violations: HypercallError[] = [];
  host(a, violations, (k) => TABLE.get(k));
  const peer = new RawPeer(b);
  const hello = payload(HELLO.size, (v) => {
    v.setUint16(0, 1, true);
    v.setUint16(2, 1, true);
    v.setUint32(4, 42, true);
  });
  hello.write('hostile', HELLO.name, 'latin1');
  peer.send(HcType.HELLO, hello);
  const kb = Buffer.from(PARAM.SANDBOX_NAME, 'latin1');
  const p = payload(GETPARAM.headerSize + kb.length, (v) => v.setUint16(0, kb.length, true));
  kb.copy(p, GETPARAM.key);
  const seqs: number[] = [];
  for (let i = 0; i < 200; i++) seqs.push(peer.send(HcType.GETPARAM, p));
  // a channel handles FRAMES_PER_TURN frames a turn: give it a few
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  const answered = seqs.filter((s) => peer.repliesTo(s).length > 0).length;
  assert.ok(answered >= 100 && answered < 200, `${answered} of 200 answered`);
  assert.ok(violations.some((v) => v.code === 'ERR_HC_RATE'));
});

test("the container's typed reads: each value checked for format and range, the key named", () => {
  const p = new BootParams(
    new Map([
      [PARAM.DRIVER_QUEUES, '2'],
      [PARAM.DRIVER_DEPTH, '02'],
      [PARAM.BLOCK_RING_FD, '4'],
      [PARAM.DEVICE_BARS, '1,2,3'],
      [PARAM.DEVICE_KIND, 'vfio'],
    ]),
  );
  assert.is(p.int(PARAM.DRIVER_QUEUES, 1, 64), 2);
  assert.is(p.oneOf(PARAM.DEVICE_KIND, ['sim', 'vfio'] as const), 'vfio');
  for (const bad of [
    () => p.int(PARAM.DRIVER_DEPTH, 1, 10),
    () => p.int(PARAM.DRIVER_QUEUES, 3, 4),
    () => p.fd(PARAM.BLOCK_RING_FD),
    () => p.ints(PARAM.DEVICE_BARS, 6, 0, 10),
    () => p.text(PARAM.SANDBOX_NAME),
    () => p.oneOf(PARAM.DEVICE_KIND, ['sim'] as const),
  ]) {
    try {
      bad();
      assert.unreachable('refused');
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_BOOT_PARAM');
    }
  }
});

test('the driver code image: round trip, and every malformed image refused with ERR_BOOT_CODE', () => {
  const files = [
    { path: 'drivers/x/sandbox.js', source: "import './y.js'; export const name = 'x';" },
    { path: 'drivers/x/y.js', source: 'export const y = "ü";' },
  ];
  const img = encodeCode({ name: 'x', files, entry: 0 });
  assert.equal(decodeCode(img), { name: 'x', files, entry: 0 });
  assert.equal(decodeCodeHeader(img.subarray(0, CODE_HEADER_BYTES)), { name: 'x', bytes: img.length, files: 2, entry: 0 });
  const refused = (what: string, make: () => unknown): void => {
    try {
      make();
      assert.unreachable(what);
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_BOOT_CODE', what);
    }
  };
  const mutate = (at: number, v: number): Uint8Array => {
    const c = Uint8Array.from(img);
    c[at] = v;
    return c;
  };
  refused('bad magic', () => decodeCode(mutate(0, 0)));
  refused('another version', () => decodeCode(mutate(4, 2)));
  refused('entry beyond the files', () => decodeCode(mutate(12, 5)));
  refused('short', () => decodeCode(img.subarray(0, img.length - 1)));
  refused('a path with ..', () => encodeCode({ name: 'x', files: [{ path: '../x.js', source: '' }], entry: 0 }));
  refused('an absolute path', () => encodeCode({ name: 'x', files: [{ path: '/x.js', source: '' }], entry: 0 }));
  refused('a duplicate path', () => encodeCode({ name: 'x', files: [files[0]!, files[0]!], entry: 0 }));
  refused('not JavaScript', () => encodeCode({ name: 'x', files: [{ path: 'x.ts', source: '' }], entry: 0 }));
  refused('a name too long', () => encodeCode({ name: 'x'.repeat(17), files, entry: 0 }));
  // A path's bytes changed to '..' inside the image: caught when read.
  const at = Buffer.from(img).indexOf('drivers/x/y.js');
  const c = Uint8Array.from(img);
  c.set(Buffer.from('driver/../y.js'), at);
  refused('a .. segment inside the image', () => decodeCode(c));
});

test.run();
