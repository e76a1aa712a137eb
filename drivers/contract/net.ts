/**
 * The net service's side of the driver contract: what a `kind: 'net'` driver module's `start`
 * returns (NetDevice). The service moves frames between its packet rings and the driver's own
 * buffer pools, one copy per frame, in batches (packet-batch.ts): nothing is allocated per frame.
 */
import type { DriverModule } from './driver.js';
import type { PacketBatch } from './packet-batch.js';

/** A driver's pool of fixed-size packet buffers inside one DMA window, by index. */
export interface NetBufferPool {
  /** The window holding every buffer: buffer i starts at `window.bytes[offset(i)]`. */
  readonly window: { readonly bytes: Uint8Array };
  /** Byte offset of buffer i in the window. */
  offset(index: number): number;
  /** Give buffer i back. */
  free(index: number): void;
}

export interface NetLink {
  readonly up: boolean;
  readonly speedMbps?: number;
}

/**
 * A NIC driver's device. The data path (txAlloc, tx, rx, waitRx) does not report per-frame errors;
 * a device fault the driver detects there (e.g. a device that left the bus) is thrown as a typed
 * error (ERR_...): the net service lets it end the container, and the supervisor resets the device
 * and restarts the driver.
 */
export interface NetDevice {
  /** The station address (6 bytes). */
  readonly mac: Uint8Array;
  link(): NetLink;
  readonly txPool: NetBufferPool;
  readonly rxPool: NetBufferPool;
  /** A free TX buffer, or -1 when none is free now. */
  txAlloc(): number;
  /** Send the batch's frames from its front (buffers of txPool); returns how many were taken (they leave the batch). */
  tx(batch: PacketBatch): number;
  /** Append received frames (buffers of rxPool, to be freed by the caller) to the batch; returns how many. */
  rx(batch: PacketBatch): number;
  /** Resolve true when frames are (probably) waiting, false after `timeoutMs`. Bounded. */
  waitRx(timeoutMs: number): Promise<boolean>;
  /** One line for the manager's log: what the device is. */
  describe(): string;
  close(): Promise<void>;
}

/** The net service has no parameters for its driver yet. */
export type NetServiceParams = Record<string, never>;

export type NetDriver = DriverModule<'net', NetServiceParams, NetDevice>;
