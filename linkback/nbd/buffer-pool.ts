/**
 * Buffers kept for reuse by exact size, per connection: a read reply's buffer once the socket has
 * written it (reply-writer.ts), a write's payload once the device has completed it (connection.ts).
 * A steady stream of requests of one size then allocates nothing. Bounded: at most `maxBytes` kept
 * in all, none larger than `maxEach`; a buffer past either bound is left to the collector.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private kept = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly maxEach: number,
  ) {}

  /** A buffer of exactly `n` bytes: a kept one when there is one, else a new one (contents undefined). */
  take(n: number): Buffer {
    const b = this.free.get(n)?.pop();
    if (b !== undefined) {
      this.kept -= n;
      return b;
    }
    return Buffer.allocUnsafe(n);
  }

  /** `b` is no longer in use by anyone: keep it for a later `take` of its size, within the bounds. */
  give(b: Buffer): void {
    if (b.length > this.maxEach || this.kept + b.length > this.maxBytes) return;
    let list = this.free.get(b.length);
    if (list === undefined) this.free.set(b.length, (list = []));
    list.push(b);
    this.kept += b.length;
  }
}
