/**
 * What the injector is told: pure data, so it can be handed to a driver container as part of a
 * campaign's code image as well as used in this process. The targets of wild DMA are addresses the
 * host chose (the canary's and the neighbour's physical addresses); the rest the injector finds in
 * the driver's own windows.
 */
export interface InjectionPlan {
  /** The fault class (campaigns/fault-classes.ts), or 'none' for a verification run. */
  readonly fault: string;
  /** The stream seed of this trial's injector. */
  readonly seed: number;
  /** The first eligible point (0-based) that may fire. */
  readonly first: number;
  readonly probability: number;
  readonly interval: number;
  readonly times: number;
  /** The class's variants a firing draws from (targets, mutations, sites). */
  readonly variants: readonly string[];
  /** Host-chosen addresses: outside every window of this device. */
  readonly canary: number;
  readonly neighbour: number;
  /** The device the driver drives: how its work is found (NVMe submission queues by default, the 82574L's rings). */
  readonly device?: 'nvme' | 'e1000e';
  /**
   * An IOVA the host knows is mapped for no window of this device. Without it the `unmapped`
   * target is a guess past the driver's own allocations, which in a container (its whole windows
   * mapped, the block service's data areas among them) is mapped memory: a wild DMA that never was.
   */
  readonly unmapped?: number;
  /** Container mode: the hypercall socket's fd in the container (sandbox/abi/boot.ts), for `hostile-abi`'s garbage. */
  readonly hypercallFd?: number;
}

/** What one firing did, for the trial record and replay. */
export interface Firing {
  readonly point: number;
  readonly variant: string;
  /** The address a wild or corrupted command was pointed at, when there is one. */
  readonly address?: number;
  readonly detail: string;
}
