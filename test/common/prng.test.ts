import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, mixSeed, prng } from '../../common/prng.js';

test('prng: the same seed gives the same stream, 0 is not a stuck seed', () => {
  const a = prng(42),
    b = prng(42);
  for (let i = 0; i < 100; i++) assert.is(a(), b());
  const z = prng(0);
  assert.ok(z() !== 0 && z() !== z());
});

test('mixSeed: trial seeds are a pure function of (seed, index) and differ between neighbours', () => {
  assert.is(mixSeed(7, 3), mixSeed(7, 3));
  const seen = new Set<number>();
  for (let i = 0; i < 10_000; i++) seen.add(mixSeed(7, i));
  assert.is(seen.size, 10_000);
  assert.is.not(mixSeed(7, 1), mixSeed(8, 1));
});

test('Rng: below/between stay in range, weighted follows the weights, float in [0, 1)', () => {
  const r = new Rng(1234);
  const counts = [0, 0, 0];
  for (let i = 0; i < 30_000; i++) {
    const b = r.below(10);
    assert.ok(b >= 0 && b < 10 && Number.isInteger(b));
    const w = r.between(-3, 3);
    assert.ok(w >= -3 && w <= 3);
    const f = r.float();
    assert.ok(f >= 0 && f < 1);
    counts[r.weighted([1, 0, 3])]!++;
  }
  assert.is(counts[1], 0);
  const ratio = counts[2]! / counts[0]!;
  assert.ok(ratio > 2.7 && ratio < 3.3, `3:1 weights gave ${ratio.toFixed(2)}`);
  assert.is(r.pick(['only']), 'only');
});

test.run();
