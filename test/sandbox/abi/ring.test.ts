/**
 * The one ring (sandbox/abi/ring.ts) on its own, both ends over one Uint32Array: entries in order
 * across index wrap-around, the kick rule (first post kicks, none while the consumer is behind or
 * polls, a lying HEAD only costs kicks), the consumer's second look after publishing its head, a
 * sink that stops, the budget, and a TAIL no correct producer could write reported once.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RingConsumer, RingProducer, type RingLayout, type RingSink } from '../../../sandbox/abi/ring.js';

const L: RingLayout = { name: 'test ring', tail: 0, head: 1, polled: 2, offset: 16, entries: 5, entryBytes: 8 };
const WORDS = (L.offset + L.entries * L.entryBytes) / 4;

function ends(start = 0): { u32: Uint32Array; p: RingProducer; c: RingConsumer; violations: string[] } {
  const u32 = new Uint32Array(WORDS);
  u32[L.tail] = start;
  u32[L.head] = start;
  const violations: string[] = [];
  const p = new RingProducer(L);
  p.bind(u32, start);
  const c = new RingConsumer(L, (r) => violations.push(r));
  c.bind(u32, start);
  return { u32, p, c, violations };
}

/** Write values v.. as entries (two words each: value and its complement) and post them. */
function put(u32: Uint32Array, p: RingProducer, ...values: number[]): boolean {
  values.forEach((v, k) => {
    const i = p.at(k) >>> 2;
    u32[i] = v;
    u32[i + 1] = ~v >>> 0;
  });
  return p.post(values.length);
}

/** A sink recording values, stopping after `limit`. */
function sink(u32: Uint32Array, got: number[], limit = Infinity): RingSink {
  return {
    take(at) {
      if (got.length >= limit) return false;
      const i = at >>> 2;
      assert.is(u32[i + 1], ~u32[i]! >>> 0, 'an entry is whole when taken');
      got.push(u32[i]!);
      return true;
    },
  };
}

test('entries arrive in order across the u32 wrap-around of the indices', () => {
  const { u32, p, c } = ends(0xffff_fffd);
  const got: number[] = [];
  for (let round = 0; round < 4; round++) {
    put(u32, p, round * 10, round * 10 + 1, round * 10 + 2);
    assert.is(c.available(), 3);
    assert.is(c.drain(sink(u32, got), 100), 3);
    assert.is(u32[L.head], c.head, 'the head is published');
  }
  assert.equal(got, [0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]);
  assert.is(c.head, (0xffff_fffd + 12) >>> 0);
  assert.is(p.tail, c.head);
});

test('kicks: the first post, none while the consumer is behind, one once it caught up, none while it polls', () => {
  const { u32, p, c } = ends();
  const got: number[] = [];
  assert.ok(put(u32, p, 1), 'an idle consumer may be asleep: kick');
  assert.not.ok(put(u32, p, 2), 'it has not taken entry 1 yet: it will find 2 as well');
  c.drain(sink(u32, got), 100);
  assert.ok(put(u32, p, 3, 4), 'caught up: it may have gone to sleep');
  c.setPolled(true);
  c.drain(sink(u32, got), 100);
  assert.not.ok(put(u32, p, 5), 'polling: no kick');
  c.setPolled(false);
  assert.is(c.drain(sink(u32, got), 100), 1, 'the one more look after clearing POLLED finds it');
  assert.equal(got, [1, 2, 3, 4, 5]);
  assert.equal([p.kicks, p.kicksSaved], [2, 2]);
});

test('a HEAD that lies costs its consumer kicks, never the producer its entries', () => {
  const { u32, p } = ends();
  put(u32, p, 1);
  Atomics.store(u32, L.head, 1000); // "ahead" of everything: far beyond the ring
  assert.ok(put(u32, p, 2), 'a head no consumer could have is not "behind": kick');
  Atomics.store(u32, L.head, 0); // behind by two: no kick, and nothing else changes
  assert.not.ok(put(u32, p, 3));
  assert.is(p.tail, 3);
  assert.is(p.unconsumed(), 3);
});

test('the consumer looks at TAIL again after publishing HEAD, and goes on while it moved', () => {
  const { u32, p, c } = ends();
  const got: number[] = [];
  put(u32, p, 1, 2);
  let posted = false;
  const s = sink(u32, got);
  const racing: RingSink = {
    take(at) {
      const ok = s.take(at);
      // The producer posts while the consumer is still taking: it sees the consumer behind and
      // leaves the kick out; the consumer must find the entry on its own.
      if (!posted) {
        posted = true;
        assert.not.ok(put(u32, p, 3));
      }
      return ok;
    },
  };
  assert.is(c.drain(racing, 100), 3);
  assert.equal(got, [1, 2, 3]);
});

test('a sink that stops leaves the entry; the budget bounds a call; the rest comes on the next', () => {
  const { u32, p, c } = ends();
  const got: number[] = [];
  put(u32, p, 1, 2, 3, 4, 5);
  assert.is(c.drain(sink(u32, got, 2), 100), 2);
  assert.is(c.available(), 3, 'entries the sink refused stay');
  assert.is(c.drain(sink(u32, got), 2), 2, 'at most the budget');
  assert.is(c.drain(sink(u32, got), 100), 1);
  assert.equal(got, [1, 2, 3, 4, 5]);
  assert.is(c.drain(sink(u32, got), 100), 0);
});

test('a TAIL more than the ring ahead is a violation, reported once; nothing is taken until the next bind', () => {
  const { u32, p, c, violations } = ends();
  const got: number[] = [];
  put(u32, p, 7);
  Atomics.store(u32, L.tail, 6); // 6 entries in a ring of 5
  assert.is(c.drain(sink(u32, got), 100), 0);
  assert.is(c.available(), 0);
  assert.ok(c.violated);
  assert.equal(violations, ['test ring tail 6 is 6 entries ahead of head 0 (the ring holds 5)']);
  assert.equal(got, []);
  assert.is(c.claimed(), 6, 'what the producer claims stays readable, for accounting');
  c.bind(u32, 6);
  assert.not.ok(c.violated, 'fresh memory, fresh start');
  Atomics.store(u32, L.tail, 0xffff_ffff); // behind the head: as far ahead as 2^32 - 7
  assert.is(c.available(), 0);
  assert.is(violations.length, 2);
});

test('a ring without a POLLED word: setPolled does nothing, the kick rule still holds', () => {
  const layout: RingLayout = { ...L, polled: -1 };
  const u32 = new Uint32Array(WORDS);
  u32[L.polled] = 1; // a word that is not this ring's
  const p = new RingProducer(layout);
  p.bind(u32, 0);
  const c = new RingConsumer(layout, () => assert.unreachable('no violation'));
  c.bind(u32, 0);
  c.setPolled(false);
  assert.is(u32[L.polled], 1);
  assert.ok(put(u32, p, 1));
  assert.not.ok(put(u32, p, 2));
});

test.run();
