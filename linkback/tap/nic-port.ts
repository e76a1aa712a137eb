/**
 * NicPort: what the TAP bridge needs from a NIC driver, and nothing more. It lends its packet
 * buffers rather than taking copies: the bridge reads a frame from the TAP fd straight into a TX
 * buffer (inside the DMA window the device reads) and writes a received frame to the TAP fd
 * straight from its RX buffer. Buffers are indices; their bytes are at `txBytes[txOffset(i)]` and
 * `rxBytes[rxOffset(i)]`, so the hot path makes no subarray per frame.
 *
 * Two implementations: the manager's end of a NIC container's packet rings
 * (sandbox/manager/services/net.ts), and `E1000ePort` (linkback/in-process/e1000e.ts), the driver
 * running in this process (benchmarks, the lab). For the second the contract is deliberately loose:
 * - `tx` may accept fewer frames than offered (none while a ring is full or a driver restarts); the
 *   rest stay at the batch's front, still the bridge's, and are offered again;
 * - `rx` may return 0 frames even after `waitRx` said true;
 * - `txBytes` / `rxBytes` are read again on every turn, so a port may swap its memory (a new
 *   container after a restart) between turns.
 */
import type { PacketBatch } from '../../drivers/contract/packet-batch.js';

export interface NicPort {
  /** For logs and errors. */
  readonly name: string;
  /** The NIC's station address; the TAP interface takes it, so the NIC's filter accepts the host's traffic. */
  readonly mac: Uint8Array;
  /** Largest frame the NIC sends, without FCS (1514 for an untagged 1500-byte MTU). */
  readonly maxFrame: number;
  /** Bytes per buffer (at least maxFrame). */
  readonly bufferSize: number;
  /** Link state, as the NIC sees its cable. Called a few times a second, not per frame. */
  linkUp(): boolean;

  /** Memory holding every TX buffer. */
  readonly txBytes: Uint8Array;
  /** Byte offset of TX buffer `buf` in txBytes. */
  txOffset(buf: number): number;
  /** A free TX buffer, or -1 when none is free now (retry later). */
  txAlloc(): number;
  /** Give back a TX buffer that was allocated but will not be sent. */
  txFree(buf: number): void;
  /** Send the batch's frames from its front; returns how many were taken (they leave the batch). */
  tx(batch: PacketBatch): number;

  /** Memory holding every RX buffer. */
  readonly rxBytes: Uint8Array;
  /** Byte offset of RX buffer `buf` in rxBytes. */
  rxOffset(buf: number): number;
  /** Append received frames (up to the batch's room) to the batch; returns how many. */
  rx(batch: PacketBatch): number;
  /** Give every buffer of the batch back and empty it. */
  rxFree(batch: PacketBatch): void;
  /** Resolve true when frames are (probably) waiting, false after `timeoutMs`. Bounded. */
  waitRx(timeoutMs: number): Promise<boolean>;
}
