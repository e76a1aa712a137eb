import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as P from '../../../sandbox/abi/hypercall/protocol.js';
import { FrameDecoder, HypercallError, encodeFrame, type FrameHeader } from '../../../sandbox/abi/hypercall/index.js';

function collect(maxPayload = 1024) {
  const frames: Array<FrameHeader & { payload: number[] }> = [];
  const problems: HypercallError[] = [];
  const d = new FrameDecoder(
    {
      frame: (h, v) => frames.push({ ...h, payload: [...new Uint8Array(v.buffer, v.byteOffset + P.HEADER_SIZE, h.length)] }),
      problem: (e) => problems.push(e),
    },
    { version: P.HC_VERSION, maxPayload },
  );
  return { d, frames, problems };
}

test('header layout: magic, version, type, seq, ref, length little-endian in 16 bytes', () => {
  const f = encodeFrame(1, P.HcType.REPLY, 0x01020304, 0x0a0b0c0d, 3, (_v, b) => b.set([7, 8, 9], 16));
  assert.equal([...f], [0x68, 0x63, 1, 64, 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a, 3, 0, 0, 0, 7, 8, 9]);
});

test('the same frames come out whatever the chunking (byte by byte, whole, split headers)', () => {
  const stream = Buffer.concat([
    encodeFrame(1, P.HcType.CLOCK, 1, 0, 0),
    encodeFrame(1, P.HcType.MAP_WINDOW, 2, 0, 8, (v) => v.setUint32(16, 5, true)),
    encodeFrame(1, P.HcType.LOG, 3, 0, 9, (_v, b) => b.write('\x02\x00\x05\x00hello', 16, 'latin1')),
  ]);
  const whole = collect();
  whole.d.push(stream);
  const bytes = collect();
  for (const b of stream) bytes.d.push(Uint8Array.of(b));
  const odd = collect();
  for (let i = 0; i < stream.length; i += 7) odd.d.push(stream.subarray(i, i + 7));
  assert.is(whole.frames.length, 3);
  assert.equal(bytes.frames, whole.frames);
  assert.equal(odd.frames, whole.frames);
  assert.equal(whole.frames[1]!.payload, [5, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal([...whole.problems, ...bytes.problems, ...odd.problems], []);
});

test('a length of exactly the maximum is accepted; one more byte is a kill', () => {
  const ok = collect(32);
  ok.d.push(encodeFrame(1, 99, 1, 0, 32));
  assert.is(ok.frames.length, 1);
  const big = collect(32);
  big.d.push(encodeFrame(1, 99, 1, 0, 33));
  assert.equal(
    big.problems.map((p) => p.code),
    ['ERR_HC_FRAME_TOO_LARGE'],
  );
  assert.ok(big.d.stopped);
});

test('payload layouts: every field fits its layout, and no two fields overlap', () => {
  const widths: Record<string, number> = {
    minVersion: 2,
    maxVersion: 2,
    pid: 4,
    name: 16,
    version: 2,
    windowCount: 2,
    maxPayload: 4,
    heartbeatMs: 4,
    windowId: 4,
    iova: 8,
    length: 8,
    offset: 8,
    fdSlot: 4,
    perm: 1,
    flags: 1,
    kind: 1,
    vectors: 2,
    granted: 2,
    firstFdSlot: 2,
    monotonicNs: 8,
    realtimeNs: 8,
    completed: 8,
    errors: 8,
    bytes: 8,
    inflight: 4,
    code: 4,
    queues: 2,
    deadlineMs: 4,
    reason: 1,
  };
  const reserved: Record<string, number> = {
    HELLO_RESULT: 4,
    MAP_WINDOW: 4,
    MAP_WINDOW_RESULT: 2,
    IRQ_SETUP: 1,
    HEARTBEAT: 4,
    FAULT: 3,
    READY: 2,
    SHUTDOWN: 3,
  };
  const layouts = {
    HELLO: P.HELLO,
    HELLO_RESULT: P.HELLO_RESULT,
    MAP_WINDOW: P.MAP_WINDOW,
    MAP_WINDOW_RESULT: P.MAP_WINDOW_RESULT,
    IRQ_SETUP: P.IRQ_SETUP,
    IRQ_SETUP_RESULT: P.IRQ_SETUP_RESULT,
    CLOCK_RESULT: P.CLOCK_RESULT,
    HEARTBEAT: P.HEARTBEAT,
    FAULT: P.FAULT,
    READY: P.READY,
    SHUTDOWN: P.SHUTDOWN,
    QUIESCE: P.QUIESCE,
    QUIESCE_RESULT: P.QUIESCE_RESULT,
  };
  for (const [name, layout] of Object.entries(layouts)) {
    const used = new Uint8Array(layout.size);
    for (const [field, offset] of Object.entries(layout)) {
      if (field === 'size' || field === 'nameLength') continue;
      const w = field === 'reserved' ? reserved[name]! : widths[field]!;
      assert.ok(w, `${name}.${field}: width unknown`);
      for (let i = offset; i < offset + w; i++) {
        assert.ok(i < layout.size, `${name}.${field} runs past the layout`);
        assert.is(used[i], 0, `${name}.${field} overlaps another field`);
        used[i] = 1;
      }
    }
    assert.ok(
      used.every((u) => u === 1),
      `${name} has bytes no field covers`,
    );
  }
  assert.ok(P.LOG.headerSize + P.HC_MAX_LOG_TEXT <= P.HC_MAX_PAYLOAD);
});

test.run();
