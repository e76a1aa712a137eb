/**
 * The project's one seeded pseudo-random generator, for everything that must replay from a seed:
 * fuzz tests, device fault plans, fault-injection campaigns. Not for secrets.
 *
 * xorshift32 (Marsaglia, 2003) for the stream; murmur3's 32-bit finaliser to derive independent
 * seeds (`mixSeed(seed, index)`), so a campaign's trial N is a pure function of (seed, N) and shards
 * of one campaign can run anywhere and still agree.
 */

/** A xorshift32 stream: each call returns the next unsigned 32-bit value (never 0). */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** murmur3's fmix32: a bijection on 32-bit values that spreads every input bit over the output. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The seed of item `index` under `seed` (a trial of a campaign, a sub-stream of a plan). */
export function mixSeed(seed: number, index: number): number {
  return fmix32((fmix32(seed >>> 0) ^ Math.imul(index >>> 0, 0x9e3779b9)) >>> 0) || 1;
}

/** A seeded stream with the draws the fault plans and campaigns need. */
export class Rng {
  private readonly next: () => number;

  constructor(readonly seed: number) {
    this.next = prng(seed);
  }

  /** The next unsigned 32-bit value. */
  u32(): number {
    return this.next();
  }

  /** A float in [0, 1). */
  float(): number {
    return (this.next() - 1) / 0xffffffff;
  }

  /** An integer in [0, n) for 1 <= n <= 2^32. */
  below(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** An integer in [lo, hi], both included. */
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)] as T;
  }

  /** An index drawn by weight (weights >= 0, at least one > 0). */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let r = this.float() * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i] as number;
      if (r < 0) return i;
    }
    return weights.length - 1;
  }
}
