/**
 * What a driver module is: the one shape the sandbox loads, for built-in drivers
 * (drivers/nvme/sandbox.ts, drivers/e1000e/sandbox.ts) and external ones named by a policy
 * (`driver: { module: ./my-driver.js }`) alike.
 *
 * A driver module exports, by name:
 *
 *   export const contract = 1;          // DRIVER_CONTRACT: the version of this file's shapes
 *   export const name = 'my-nvme';      // printable ASCII, at most 16 characters
 *   export const kind = 'block';        // the service that serves its device: 'block' or 'net'
 *   export async function start(ctx) { ... return device; }
 *
 * `start` gets the Platform (registers, config space, DMA inside the policy's windows, interrupts,
 * clock), the policy's driver options and the parameters of the service of its kind (block.ts,
 * net.ts), and returns the device that service serves (a BlockDevice, a NetDevice). It runs in the
 * driver's container after confinement: the module and every file it imports are handed over by
 * the manager and evaluated there, with nothing to import but its own files (drivers/README.md).
 */
import type { Platform } from './platform.js';

/**
 * The version of the driver contract (this file, block.ts, net.ts, platform.ts). A container
 * refuses a module that says another: bump it only when a shape here changes incompatibly.
 */
export const DRIVER_CONTRACT = 1;

/** The kinds of driver, each with its service: `block` (a disk), `net` (a NIC). */
export type DriverKind = 'block' | 'net';
export const DRIVER_KINDS: readonly DriverKind[] = ['block', 'net'];

/** The policy's driver options, as the manager publishes them. */
export interface DriverOptions {
  /** I/O queue pairs (NVMe) or RX/TX queue pairs (a NIC). */
  readonly queues: number;
  /** Entries per queue or descriptor ring. */
  readonly depth: number;
  /** Completion by polling, or by MSI-X interrupts (vectors granted: `platform.irq.count('msix')`). */
  readonly interrupts: 'polling' | 'msix';
  /**
   * A bound on each device command the host asks for: the driver escalates a command that has not
   * completed after it (its own default when absent). A campaign sets it so that a device that drops
   * a completion is detected by the driver before the trial's supervisor takes it for a hang.
   */
  readonly timeoutMs?: number;
}

export type DriverLogLevel = 'error' | 'warn' | 'info' | 'debug';

/** A fault the driver saw (the service reports it to the manager, next to the IOMMU's own log). */
export interface DriverFault {
  /** `dma`: the device reported a DMA or data transfer error; `device`: a fatal device state; `timeout`: a bounded wait ran out; `driver`: its own error. */
  readonly kind: 'dma' | 'device' | 'timeout' | 'driver';
  /** The device's or driver's code (NVMe: the status code). */
  readonly code: number;
  /** The IOVA concerned, 0n when unknown. */
  readonly iova: bigint;
}

export interface DriverContext<P = unknown> {
  readonly platform: Platform;
  readonly options: DriverOptions;
  /** The parameters of the service of the driver's kind (block.ts BlockServiceParams, net.ts NetServiceParams). */
  readonly service: P;
  /** A line to the manager's log (bounded and rate-limited there). */
  log(level: DriverLogLevel, text: string): void;
}

/** What a driver module exports (see the top of this file). */
export interface DriverModule<K extends DriverKind = DriverKind, P = unknown, D = unknown> {
  readonly contract: number;
  readonly name: string;
  readonly kind: K;
  start(ctx: DriverContext<P>): Promise<D>;
}
