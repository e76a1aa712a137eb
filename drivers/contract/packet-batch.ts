/**
 * A batch of packets, the currency of the net driver contract: a NIC driver fills and drains
 * batches, the net service and the TAP bridge pass them. Buffer indices and lengths live in
 * preallocated typed arrays reused for every call (nothing is allocated per packet); the indices
 * refer to a driver's RX or TX buffer pool.
 */
import { ContractError } from './errors.js';

export class PacketBatch {
  readonly capacity: number;
  /** Packets in the batch: entries 0..count-1 are valid. */
  count = 0;
  /** Buffer index of each packet in its pool. */
  readonly buf: Uint32Array;
  /** Frame length in bytes (without FCS). */
  readonly len: Uint16Array;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 65536) {
      throw new ContractError('ERR_CONTRACT_ARG', `PacketBatch: capacity ${capacity} must be an integer from 1 to 65536`, {
        fix: 'size a batch for one turn of the driver (32 frames is typical)',
      });
    }
    this.capacity = capacity;
    this.buf = new Uint32Array(capacity);
    this.len = new Uint16Array(capacity);
  }

  /** Append one packet; false when the batch is full. */
  push(buf: number, len: number): boolean {
    if (this.count === this.capacity) return false;
    this.buf[this.count] = buf;
    this.len[this.count] = len;
    this.count++;
    return true;
  }

  /** Drop the first `n` packets, moving the rest to the front (what tx() does with what it took). */
  shift(n: number): void {
    if (n >= this.count) {
      this.count = 0;
      return;
    }
    if (n <= 0) return;
    this.buf.copyWithin(0, n, this.count);
    this.len.copyWithin(0, n, this.count);
    this.count -= n;
  }

  clear(): void {
    this.count = 0;
  }
}
