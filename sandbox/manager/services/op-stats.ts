/**
 * Per-operation request counters of one sandbox's block ring, for the metrics endpoint (ops/):
 * requests, errors and bytes by operation, and a latency histogram per operation with fixed
 * log-scale buckets. Recording is on the hot path (every completion), so it allocates nothing:
 * every counter is a slot of a typed array made once, and the bucket of a latency is found by
 * arithmetic, not a search over boundaries.
 *
 * Buckets: upper bounds 2^k microseconds for k = 0..LATENCY_BUCKETS-1 (1 us to ~8.4 s), then +Inf;
 * a latency goes to the first bucket whose bound is at least it (Prometheus's `le`). Counts are
 * stored per bucket, not cumulatively; the exposition sums them.
 */

/** The operations of the block ring, in the order of their slots (sandbox/abi/block.ts BlockOp names). */
export const BLOCK_OPS = ['read', 'write', 'flush', 'discard', 'write_zeroes'] as const;
export type BlockOpName = (typeof BLOCK_OPS)[number];

/** Finite buckets: 2^0 .. 2^23 microseconds. */
export const LATENCY_BUCKETS = 24;

/** The finite upper bounds in seconds (the exposition's `le` values). */
export const LATENCY_BOUNDS_SECONDS: readonly number[] = Object.freeze(Array.from({ length: LATENCY_BUCKETS }, (_, k) => 2 ** k / 1e6));

const SLOTS = LATENCY_BUCKETS + 1; // + the +Inf bucket

export class OpStats {
  /** Completed requests per op (successful or not). */
  readonly requests = new Float64Array(BLOCK_OPS.length);
  /** Requests per op the driver answered with an error. */
  readonly errors = new Float64Array(BLOCK_OPS.length);
  /** Bytes moved per op (read and write; the range of a discard or write-zeroes is not data moved). */
  readonly bytes = new Float64Array(BLOCK_OPS.length);
  /** Sum of latencies per op, in seconds. */
  readonly latencySum = new Float64Array(BLOCK_OPS.length);
  /** Per op, SLOTS bucket counts (not cumulative). */
  readonly buckets = new Float64Array(BLOCK_OPS.length * SLOTS);

  /**
   * One finished request: `op` is the slot in BLOCK_OPS, `seconds` its latency (from when the
   * client took it to its completion, replays included). An op out of range is ignored.
   */
  record(op: number, ok: boolean, bytes: number, seconds: number): void {
    if (op < 0 || op >= BLOCK_OPS.length) return;
    this.requests[op]!++;
    if (!ok) this.errors[op]!++;
    this.bytes[op]! += bytes;
    const s = seconds > 0 ? seconds : 0;
    this.latencySum[op]! += s;
    this.buckets[op * SLOTS + bucketOf(s)]!++;
  }

  /** The cumulative count of op's requests at or below each finite bound, then the total (+Inf), into `into` (SLOTS long). */
  cumulative(op: number, into: Float64Array): Float64Array {
    let acc = 0;
    for (let i = 0; i < SLOTS; i++) {
      acc += this.buckets[op * SLOTS + i]!;
      into[i] = acc;
    }
    return into;
  }
}

/** Bucket slots of one op: LATENCY_BUCKETS finite, then +Inf. */
export const LATENCY_SLOTS = SLOTS;

/** The bucket of a latency: the smallest k with seconds <= 2^k us, or LATENCY_BUCKETS (+Inf). */
export function bucketOf(seconds: number): number {
  const us = seconds * 1e6;
  if (us <= 1) return 0;
  let k = Math.ceil(Math.log2(us));
  // log2 of an exact power of two can land a hair above it: step back if the bound below still holds.
  if (k > 0 && 2 ** (k - 1) >= us) k--;
  return k < LATENCY_BUCKETS ? k : LATENCY_BUCKETS;
}
