/**
 * NicPort: what the TAP bridge needs from a NIC driver, and nothing more. It lends its packet
 * buffers rather than taking copies: the bridge reads a frame from the TAP fd straight into a TX
 * buffer (inside the DMA window the device reads) and writes a received frame to the TAP fd
 * straight from its RX buffer. Buffers are indices; their bytes are at `txBytes[txOffset(i)]` and
 * `rxBytes[rxOffset(i)]`, so the hot path makes no subarray per frame.
 *
 * Two implementations: `E1000ePort` (below, the in-process driver) and, later, the manager's end of
 * a driver container's shared-memory rings. For the second the contract is deliberately loose:
 * - `tx` may accept fewer frames than offered (none while a ring is full or a driver restarts); the
 *   rest stay at the batch's front, still the bridge's, and are offered again;
 * - `rx` may return 0 frames even after `waitRx` said true;
 * - `txBytes` / `rxBytes` are read again on every turn, so a port may swap its memory (a new
 *   container after a restart) between turns.
 */
import type { PacketBatch } from '../../drivers/kit/packet-batch.js';
import type { E1000e } from '../../drivers/e1000e/device.js';
import { BUFFER_SIZE } from '../../drivers/e1000e/device.js';
import { ETH } from '../../spec/e1000e/descriptors.js';

export { PacketBatch } from '../../drivers/kit/packet-batch.js';

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

/** The in-process e1000e driver as a NicPort. */
export class E1000ePort implements NicPort {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly maxFrame = ETH.MAX_FRAME;
  readonly bufferSize = BUFFER_SIZE;
  private readonly nic: E1000e;

  constructor(nic: E1000e) {
    this.nic = nic;
    this.name = nic.platform.name;
    this.mac = nic.mac;
  }

  linkUp(): boolean {
    return this.nic.link().up;
  }

  get txBytes(): Uint8Array {
    return this.nic.txPool.window.bytes;
  }

  txOffset(buf: number): number {
    return this.nic.txPool.offset(buf);
  }

  txAlloc(): number {
    return this.nic.txAlloc();
  }

  txFree(buf: number): void {
    this.nic.txPool.free(buf);
  }

  tx(batch: PacketBatch): number {
    return this.nic.tx(batch);
  }

  get rxBytes(): Uint8Array {
    return this.nic.rxPool.window.bytes;
  }

  rxOffset(buf: number): number {
    return this.nic.rxPool.offset(buf);
  }

  rx(batch: PacketBatch): number {
    return this.nic.rx(batch);
  }

  rxFree(batch: PacketBatch): void {
    this.nic.rxFree(batch);
  }

  waitRx(timeoutMs: number): Promise<boolean> {
    return this.nic.waitRx(timeoutMs);
  }
}
