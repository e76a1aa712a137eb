/**
 * Services by driver kind, the manager's side: what a kind of driver needs around its container.
 * The supervisor makes the one service of its driver's kind (`SERVICES[kind]`) and, without
 * knowing which it is, asks it at each step of a container's life:
 *
 *   construction   reserve what must outlive containers (block: the data areas in the windows,
 *                  the request client; net: the packet rings and the NIC port)
 *   prepare(out)   before each spawn: make what this container alone gets, hand its fds over
 *                  (`out.fd`) and publish their slots and sizes as boot parameters (`out.param`)
 *   attach()       at READY: check what the container published, start serving (a throw kills it)
 *   detach()       at the container's exit: stop serving, keep what a restart needs
 *   progress()     for hang detection: work pending in the container and when it last moved
 *   fail(error)    the device is failed or stopped: everything pending rejects
 *   close()        after the sandbox stopped: release everything
 *   status()       counters for `dmabox status`
 *
 * The container has the matching side (sandbox/container/services/registry.ts). Everything a
 * container receives is listed in sandbox/abi/README.md, per service.
 */
import type { Sys } from 'linux-sys';
import type { DriverKind } from '../../../drivers/contract/driver.js';
import type { Policy } from '../../../policies/types.js';
import type { ParamKey } from '../../abi/boot.js';
import type { RingGeometry } from '../../abi/block.js';
import type { NetGeometry } from '../../abi/net.js';
import type { Timers } from '../../../common/timers.js';
import type { SandboxDevice } from '../device.js';
import { BlockService } from './block-service.js';
import { NetService } from './net-service.js';

/** Where a service hands a container its fds and parameters. */
export interface Handout {
  /** Hand `fd` to the container; returns the slot it will have there. */
  fd(fd: number): number;
  param(key: ParamKey, value: string | number | readonly number[]): void;
}

/** What a service may ask of its sandbox. */
export interface ServiceHost {
  /** The sandbox's name. */
  readonly name: string;
  readonly policy: Policy;
  readonly device: SandboxDevice;
  readonly sys: Sys;
  readonly clock: Timers;
  /** Something the container wrote cannot be right: counted, logged, and the container killed. */
  violation(reason: string): void;
}

export interface ServiceOptions {
  /** Block ring geometry (default 16 entries of 64 KiB). */
  ring?: RingGeometry;
  /** Packet ring geometry (default 256 TX + 256 RX slots). */
  net?: NetGeometry;
  /** Hybrid polling window, ms (0: never polls). */
  pollIdleMs: number;
}

export interface ManagerService {
  readonly kind: DriverKind;
  prepare(out: Handout): void;
  /** Returns a line for the sandbox's `ready` event. */
  attach(): string;
  /** Returns what the exit event should add (requests kept for replay), or ''. */
  detach(): string;
  progress(): { pending: number; lastProgress: number };
  fail(error: Error): void;
  close(): void;
  status(): Record<string, unknown>;
}

export const SERVICES: Readonly<Record<DriverKind, (host: ServiceHost, options: ServiceOptions) => ManagerService>> = {
  block: (host, options) => new BlockService(host, options),
  net: (host, options) => new NetService(host, options),
};
