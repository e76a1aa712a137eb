/**
 * The simulated wire (sim/wire.ts): back to back, loopback, a caller-held endpoint; link follows
 * the cable; bad use is refused with a clear message.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backToBack, loopback, endpoint, type WirePort, type FrameSink } from '../../../sim/wire.js';
import { SimError } from '../../../sim/errors.js';

const simArg =
  (pattern: RegExp) =>
  (e: unknown): boolean =>
    e instanceof SimError && e.code === 'ERR_SIM_ARG' && pattern.test(e.message);

/** A NIC stand-in that records what it receives and can transmit through its cable. */
class Port implements WirePort {
  sink: FrameSink | null = null;
  got: number[][] = [];
  attachWire(sink: FrameSink | null): void {
    this.sink = sink;
  }
  receive(frame: Uint8Array, len: number): boolean {
    this.got.push([...frame.subarray(0, len)]);
    return true;
  }
  send(bytes: number[]): void {
    const f = new Uint8Array(64);
    f.set(bytes);
    this.sink!(f, bytes.length);
  }
}

test('back to back: each side receives what the other sends, with the length given; unplug cuts both', () => {
  const a = new Port(),
    b = new Port();
  const cable = backToBack(a, b);
  a.send([1, 2, 3]);
  b.send([9]);
  assert.equal(b.got, [[1, 2, 3]]);
  assert.equal(a.got, [[9]]);
  cable.unplug();
  assert.is(a.sink, null);
  assert.is(b.sink, null);
  assert.throws(() => backToBack(a, a), simArg(/two different NICs/));
});

test('loopback: a NIC receives its own frames', () => {
  const a = new Port();
  loopback(a);
  a.send([7, 7]);
  assert.equal(a.got, [[7, 7]]);
});

test('endpoint: frames out arrive as copies the callback may keep; send puts frames on the RX side', () => {
  const a = new Port();
  const kept: Uint8Array[] = [];
  const ep = endpoint(a, (f) => kept.push(f));
  const scratch = new Uint8Array([5, 6, 7, 8]);
  a.sink!(scratch, 3);
  scratch.fill(0); // the sender reuses its scratch buffer
  assert.equal([...kept[0]!], [5, 6, 7], 'a copy, cut to the length');
  assert.ok(ep.send(new Uint8Array([1, 2, 3, 4]), 2));
  assert.equal(a.got, [[1, 2]]);
  assert.throws(() => ep.send(new Uint8Array(4), 5), simArg(/outside the frame/));
  ep.unplug();
  assert.is(a.sink, null);
});

test.run();
