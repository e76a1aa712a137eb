/**
 * A resolved policy: every default filled in, sizes in bytes, durations in milliseconds. This is
 * what the manager consumes; `policies/schema.ts` is the one description it is checked against.
 */

export type DeviceSelector =
  | { pci: string; bind: boolean }
  | { id: string; index: number; bind: boolean }
  | { sim: 'nvme'; capacity: number; blockSize: 512 | 4096; maxQueues: number; mqes: number; serial: string }
  | { sim: 'e1000e'; mac: string; peer: 'none' | 'echo' };

/** The driver: a built-in one by `name`, or an external driver module by `module` (exactly one of the two). */
export interface DriverOptions {
  /** A built-in driver; absent when `module` names the driver. */
  name?: 'nvme' | 'e1000e';
  /** An external driver module (drivers/README.md): its absolute path, resolved against the policy file's folder. */
  module?: string;
  queues: number;
  depth: number;
  interrupts: 'polling' | 'msix';
}

export interface WindowGrant {
  /** Bytes, a multiple of the IOMMU page size (of 2 MiB with hugePages). */
  size: number;
  hugePages: boolean;
  label?: string;
  /** What the device may do to it; 'split': first half device-read, second half device-write. */
  access: 'split' | 'read' | 'write' | 'read-write';
}

export interface ContainerOptions {
  /** Set by the policy only when it pins an identity; absent: allocated per sandbox (sandbox/spawner/identity.ts). */
  uid?: number;
  gid?: number;
  /** Bytes: the cgroup memory limit of the whole process. */
  memory: number;
  /** Tasks the cgroup may hold. */
  pids: number;
  /** CPU weight, 1..10000 (100: an equal share). */
  cpuWeight: number;
  seccomp: string;
}

export interface RestartPolicy {
  maxRestarts: number;
  /** Milliseconds. */
  window: number;
  backoff: { initial: number; max: number };
  /** Keep a spare container (and device process on the simulator) started ahead of need (sandbox/manager/spare.ts). */
  spare: boolean;
}

/** What every NBD linkback has besides where it listens. */
export interface NbdLinkbackOptions {
  export: string;
  poll: number;
  tls: 'off' | 'on' | 'require';
  'tls-psk'?: string;
  'tls-certificates'?: string;
  'tls-verify-peer': boolean;
}

export type NbdListen = { socket: string } | { port: number } | { address: string };

export type Linkback = { nbd: NbdListen & NbdLinkbackOptions } | { tap: { interface: string; address?: string; gateway?: string } };

export interface Policy {
  version: 1;
  name: string;
  device: DeviceSelector;
  driver: DriverOptions;
  windows: WindowGrant[];
  container: ContainerOptions;
  restart: RestartPolicy;
  onIommuFault: 'log' | 'restart' | 'stop';
  linkback?: Linkback;
  unconfined: boolean;
}

/** One policy with where it came from. */
export interface LoadedPolicy {
  policy: Policy;
  file: string;
  /** The line its YAML document starts on. */
  line: number;
}
