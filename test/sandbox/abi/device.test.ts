/**
 * The device-process protocol's codec (sandbox/abi/device.ts) against what a hostile device
 * process can send: frames over the bound, another magic or version, bad fields; and frames split
 * or joined anywhere in the stream.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  COUNTERS,
  DeviceMsg,
  FrameReader,
  MAX_FROM_DEVICE,
  decodeFault,
  decodeHeartbeat,
  decodeLog,
  decodeQuarantined,
  decodeStart,
  encodeFault,
  encodeHeartbeat,
  encodeLog,
  encodeQuarantined,
  encodeStart,
  frame,
  type DeviceStart,
} from '../../../sandbox/abi/device.js';

const bad = (e: { code?: string }): boolean => e.code === 'ERR_DEVICE_PROTOCOL';

test('frames split and joined anywhere come out whole, in order', () => {
  const stream = new Uint8Array([...encodeLog(2, 'a'), ...encodeHeartbeat(1, { 'nvme.commands': 5 }), ...frame(DeviceMsg.READY), ...encodeQuarantined(7, 7)]);
  for (const cut of [1, 3, 8, 9, 20, stream.length - 1]) {
    const r = new FrameReader(MAX_FROM_DEVICE);
    const got = [...r.push(stream.subarray(0, cut)), ...r.push(stream.subarray(cut))];
    assert.equal(
      got.map(([t]) => t),
      [DeviceMsg.LOG, DeviceMsg.HEARTBEAT, DeviceMsg.READY, DeviceMsg.QUARANTINED],
      `cut at ${cut}`,
    );
    assert.is(r.pending, 0);
  }
});

test('a frame over the bound, another magic or version: refused, and the reader stays dead', () => {
  const big = new Uint8Array(8);
  new DataView(big.buffer).setUint32(0, MAX_FROM_DEVICE + 1, true);
  const r = new FrameReader(MAX_FROM_DEVICE);
  assert.throws(() => r.push(big), bad);
  assert.equal(r.push(frame(DeviceMsg.READY)), [], 'dead after a violation');
  const magic = frame(DeviceMsg.READY);
  magic[4] = 0;
  assert.throws(() => new FrameReader(MAX_FROM_DEVICE).push(magic), bad);
  const version = frame(DeviceMsg.READY);
  version[6] = 99;
  assert.throws(() => new FrameReader(MAX_FROM_DEVICE).push(version), bad);
  const short = new Uint8Array(8);
  new DataView(short.buffer).setUint32(0, 2, true);
  assert.throws(() => new FrameReader(MAX_FROM_DEVICE).push(short), bad);
});

test('FAULT, HEARTBEAT, QUARANTINED and LOG round-trip, and their bad fields are refused', () => {
  const payload = (f: Uint8Array): Uint8Array => f.subarray(8);
  const f = { iova: 0x7000_0000n, length: 64, access: 'write' as const, reason: 'not-present' as const, vtdReason: 5, suppressed: 3 };
  assert.equal(decodeFault(payload(encodeFault(f))), f);
  const p = payload(encodeFault(f)).slice();
  p[12] = 2;
  assert.throws(() => decodeFault(p), bad);
  p[12] = 0;
  p[13] = 9;
  assert.throws(() => decodeFault(p), bad);
  p[13] = 0;
  p[14] = 0x07;
  assert.throws(() => decodeFault(p), bad);
  assert.throws(() => decodeFault(p.subarray(0, 10)), bad);

  const hb = { 'nvme.commands': 10, 'peer.echoReplies': 2 };
  assert.equal(decodeHeartbeat(payload(encodeHeartbeat(4, hb))), { seq: 4, counters: hb });
  const h = payload(encodeHeartbeat(4, hb)).slice();
  h[8] = COUNTERS.length;
  assert.throws(() => decodeHeartbeat(h), bad, 'an unknown counter id');
  const n = payload(encodeHeartbeat(4, { 'nvme.commands': -1 }));
  assert.throws(() => decodeHeartbeat(n), bad, 'a negative counter');
  const nan = payload(encodeHeartbeat(4, { 'nvme.commands': NaN }));
  assert.throws(() => decodeHeartbeat(nan), bad, 'NaN');
  const lie = payload(encodeHeartbeat(4, hb)).slice();
  lie[4] = 200;
  assert.throws(() => decodeHeartbeat(lie), bad, 'a count the payload does not hold');

  assert.equal(decodeQuarantined(payload(encodeQuarantined(9, 7))), { seq: 9, done: 7 });
  assert.throws(() => decodeQuarantined(payload(encodeQuarantined(9, 8))), bad);

  assert.equal(decodeLog(payload(encodeLog(1, 'hello'))), { level: 1, text: 'hello' });
  assert.is(decodeLog(payload(encodeLog(1, 'x'.repeat(2000)))).text.length, 512, 'cut to 512 bytes');
  assert.throws(() => decodeLog(new Uint8Array(600)), bad);
  assert.throws(() => decodeLog(Uint8Array.from([9, 65])), bad);
});

test('START round-trips and refuses what is missing or out of range', () => {
  const s: DeviceStart = {
    name: 'x',
    address: '0000:00:01.0',
    model: { kind: 'nvme', serial: 's', blocks: 8, blockSize: 512, mqes: 64, maxQueues: 1, storeFdSlot: 9 },
    mailbox: { fdSlot: 4, bytes: 8192, kickFdSlot: 5 },
    irqFdSlots: [6, 7],
    mappings: [{ iova: '0x1000', size: 4096, offset: 0, memfdSize: 4096, read: true, write: false, fdSlot: 8, label: 'w' }],
    heartbeatMs: 250,
    seccomp: 'device',
    pollMs: 0,
  };
  const payload = (o: unknown): Uint8Array => encodeStart(o as DeviceStart).subarray(8);
  assert.equal(decodeStart(payload(s)), s);
  assert.throws(() => decodeStart(payload({ ...s, irqFdSlots: [2] })), bad, 'fd slots start at 4');
  assert.throws(() => decodeStart(payload({ ...s, mappings: [{ ...s.mappings[0]!, offset: 4096 }] })), bad, 'a mapping past its memfd');
  assert.throws(() => decodeStart(payload({ ...s, heartbeatMs: 0 })), bad);
  assert.is(decodeStart(payload({ ...s, pollMs: 0.5 })).pollMs, 0.5, 'a poll window below a millisecond (the policies default, 500 us)');
  assert.throws(() => decodeStart(payload({ ...s, pollMs: -1 })), bad);
  assert.throws(() => decodeStart(payload({ ...s, model: { ...s.model, kind: 'ahci' } })), bad);
  assert.throws(() => decodeStart(new TextEncoder().encode('{')), bad);
  // The fault plan seam: a string of bounded length when present (the device process parses it).
  assert.is(decodeStart(payload({ ...s, faultPlan: 'nvme.wrong-phase@7' })).faultPlan, 'nvme.wrong-phase@7');
  assert.throws(() => decodeStart(payload({ ...s, faultPlan: 7 })), bad);
  assert.throws(() => decodeStart(payload({ ...s, faultPlan: 'x'.repeat(513) })), bad);
});

test.run();
