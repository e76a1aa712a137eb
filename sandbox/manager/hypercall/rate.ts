/**
 * Token buckets, one per call type and one (`INVALID_BUCKET`) for frames of a type the endpoint
 * does not accept, in preallocated arrays: checking a frame allocates nothing. A bucket holds at
 * most `burst` tokens and refills at `perSecond`; each frame takes one.
 */
import { HypercallUsageError } from '../../abi/hypercall/errors.js';

export interface RateLimit {
  perSecond: number;
  burst: number;
}

/** The bucket of frames whose type the endpoint does not accept (types are 0..255). */
export const INVALID_BUCKET = 256;

export class TokenBuckets {
  private readonly tokens = new Float64Array(257);
  private readonly stamp = new Float64Array(257);
  private readonly rate = new Float64Array(257);
  private readonly burst = new Float64Array(257);

  /** `limits[type]` (or `limits[INVALID_BUCKET]`); a type without a limit gets none (it is refused elsewhere or unlimited by design). */
  constructor(limits: Partial<Record<number, RateLimit>>, now: number) {
    this.rate.fill(Infinity);
    for (const [type, l] of Object.entries(limits)) {
      if (!l) continue;
      if (!(l.perSecond > 0) || !(l.burst >= 1))
        throw new HypercallUsageError(
          'ERR_HC_ARG',
          `rate limit for type ${type}: perSecond ${l.perSecond} and burst ${l.burst}; perSecond must be > 0 and burst >= 1`,
        );
      const t = Number(type);
      this.rate[t] = l.perSecond / 1000;
      this.burst[t] = l.burst;
      this.tokens[t] = l.burst;
      this.stamp[t] = now;
    }
  }

  /** Take a token for `type` at time `now` (ms); false when the bucket is empty. */
  take(type: number, now: number): boolean {
    const rate = this.rate[type]!;
    if (rate === Infinity) return true;
    const elapsed = now - this.stamp[type]!;
    let t = this.tokens[type]!;
    if (elapsed > 0) {
      t = Math.min(this.burst[type]!, t + elapsed * rate);
      this.stamp[type] = now;
    }
    if (t < 1) {
      this.tokens[type] = t;
      return false;
    }
    this.tokens[type] = t - 1;
    return true;
  }
}
