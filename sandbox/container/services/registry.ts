/**
 * Services by driver kind, the container's side (the manager's: sandbox/manager/services/registry.ts).
 * The container makes the one service of its driver's kind and, without knowing which it is:
 *
 *   create(sys, params, grants)  before confinement: map what the manager handed over (rings,
 *                                eventfds), say which window bytes are the service's (`reserved`)
 *   driverParams()               what the driver's start(ctx) gets as ctx.service
 *   serve(device, guest)         after the driver started: serve its device
 *   heartbeat()                  progress counters for the manager's hang detection
 *   quiesce(), shutdown()        the manager's QUIESCE and SHUTDOWN
 */
import type { Sys } from 'linux-sys';
import type { DriverKind } from '../../../drivers/contract/driver.js';
import type { BootParams } from '../../abi/boot.js';
import type { Heartbeat } from '../../abi/hypercall/index.js';
import type { GuestEndpoint } from '../hypercall/guest.js';
import type { Grant } from '../dma.js';
import { BlockContainerService } from './block-service.js';
import { NetContainerService } from './net-service.js';

export interface ContainerService {
  readonly kind: DriverKind;
  /** Bytes at the start of windows that are the service's, not the driver's to allocate. */
  readonly reserved: readonly { grant: number; bytes: number }[];
  driverParams(): unknown;
  /** Serve `device` (what the driver's start returned; checked here). */
  serve(device: unknown, guest: GuestEndpoint): void;
  /** A line for the log after the driver's own. */
  describe(): string;
  heartbeat(): Heartbeat;
  /** Take no more work; resolve with how much is still in flight (0 when drained). */
  quiesce(): Promise<number>;
  /** Quiesce, then close the device. */
  shutdown(): Promise<void>;
}

export const CONTAINER_SERVICES: Readonly<Record<DriverKind, (sys: Sys, params: BootParams, grants: readonly Grant[]) => ContainerService>> = {
  block: (sys, params, grants) => new BlockContainerService(sys, params, grants),
  net: (sys, params) => new NetContainerService(sys, params),
};
