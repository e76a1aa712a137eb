/**
 * What a container is told at spawn, and where: the fd slots fixed by the ABI, and the boot
 * parameters it reads by key with the GETPARAM hypercall (as rump's `rumpuser_getparam`), from a
 * table the manager makes for each container (incarnation). Nothing comes through argv or the
 * environment. The keys, their value formats and every fd slot are documented in
 * sandbox/abi/README.md ("Boot parameters, fd slots and driver code"); this file is their one
 * definition in code.
 *
 * The manager writes the table, the container reads it: a malformed or missing value is refused
 * with BootError (the container then fails to start and says why), never guessed.
 */
import { DmaboxError } from '../../common/errors.js';

export type BootCode =
  | 'ERR_BOOT_PARAM' // a boot parameter is missing or malformed
  | 'ERR_BOOT_CODE'; // the driver code memfd is not a driver code image of this build

export class BootError extends DmaboxError<BootCode> {}

/** Fd slots fixed by the ABI. Every other inherited fd is announced by a parameter, MAP_WINDOW or IRQ_SETUP. */
export const FD = {
  /** The hypercall channel (a unix stream socket). */
  HYPERCALL: 3,
  /** The driver code image (code.ts), a memfd made for this container alone. */
  CODE: 4,
} as const;
/**
 * How a container's exit code reads to the manager. EXIT_CONFIG (78, sysexits' EX_CONFIG): the
 * driver cannot start on this device and a restart would fail the same way (an import outside its
 * code, a kind other than the device's, another contract version, a boot parameter it cannot
 * read); the manager marks the device failed at once instead of restarting.
 */
export const EXIT = { OK: 0, START_FAILED: 2, CHANNEL_LOST: 3, CONFIG: 78 } as const;

/** The first slot of the fds announced by parameters (the manager hands them out in order from here). */
export const FIRST_ANNOUNCED_FD = 5;
/** The highest fd slot a parameter may name. */
export const MAX_FD_SLOT = 1023;

/** Keys of the boot parameters (printable ASCII, at most 64 bytes; values at most 256 bytes of UTF-8). */
export const PARAM = {
  /** The sandbox's (policy's) name. */
  SANDBOX_NAME: 'sandbox.name',
  /** Comma-separated services the container serves: `block` or `net`. */
  SERVICES: 'services',
  /** The driver's kind, `block` or `net`: what its module must declare. */
  DRIVER_KIND: 'driver.kind',
  /** The driver as the policy names it: a built-in name, or `module:FILE`. */
  DRIVER_NAME: 'driver.name',
  DRIVER_QUEUES: 'driver.queues',
  DRIVER_DEPTH: 'driver.depth',
  /** `polling` or `msix`. */
  DRIVER_INTERRUPTS: 'driver.interrupts',
  /** `sim` (registers through the mailbox) or `vfio` (the device fd). */
  DEVICE_KIND: 'device.kind',
  /** VFIO: the slot of the device fd. */
  DEVICE_FD: 'device.fd',
  /** Sizes of BARs 0..5 in bytes, comma-separated decimal (0: no memory BAR). */
  DEVICE_BARS: 'device.bars',
  /** Vectors the device offers. */
  DEVICE_IRQ_MSIX: 'device.irq.msix',
  DEVICE_IRQ_INTX: 'device.irq.intx',
  /** Interrupt eventfds made for this container: IRQ_SETUP grants at most these. */
  IRQ_VECTORS: 'irq.vectors',
  /** Simulated devices: the register mailbox memfd, its kick eventfd, its size. */
  MAILBOX_FD: 'mailbox.fd',
  MAILBOX_KICK_FD: 'mailbox.kick.fd',
  MAILBOX_BYTES: 'mailbox.bytes',
  /** The seccomp profile to confine with, or `none` (policy `unconfined: true`). */
  SECCOMP: 'container.seccomp',
  /** Bound on each register read through the mailbox, ms. */
  REGISTER_TIMEOUT_MS: 'register.timeout.ms',
  /** The block service: its ring memfd, size, request and completion eventfds, data areas (window ids and bytes). */
  BLOCK_RING_FD: 'block.ring.fd',
  BLOCK_RING_BYTES: 'block.ring.bytes',
  BLOCK_REQUEST_FD: 'block.request.fd',
  BLOCK_COMPLETION_FD: 'block.completion.fd',
  BLOCK_DATA_READ_WINDOW: 'block.data.read.window',
  BLOCK_DATA_WRITE_WINDOW: 'block.data.write.window',
  BLOCK_DATA_BYTES: 'block.data.bytes',
  /** The net service: its ring memfd, size, kick (manager -> container) and notify (container -> manager) eventfds. */
  NET_RING_FD: 'net.ring.fd',
  NET_RING_BYTES: 'net.ring.bytes',
  NET_KICK_FD: 'net.kick.fd',
  NET_NOTIFY_FD: 'net.notify.fd',
} as const;

export type ParamKey = (typeof PARAM)[keyof typeof PARAM];

/** The driver kinds a container serves, each with its service (drivers/contract/driver.ts DriverKind). */
export const SERVICE_NAMES = ['block', 'net'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** A parameter value as text: integers in decimal, lists comma-separated. */
export function formatParam(value: string | number | readonly number[]): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return value;
  return value.join(',');
}

/**
 * Typed reads of the parameters a container fetched (the container's side). Every read checks the
 * value's format and range and throws BootError naming the key.
 */
export class BootParams {
  constructor(private readonly values: ReadonlyMap<string, string>) {}

  has(key: ParamKey): boolean {
    return this.values.has(key);
  }

  text(key: ParamKey): string {
    const v = this.values.get(key);
    if (v === undefined)
      throw new BootError('ERR_BOOT_PARAM', `boot parameter ${key} is missing`, { fix: 'the container and the manager must come from the same build' });
    return v;
  }

  oneOf<T extends string>(key: ParamKey, allowed: readonly T[]): T {
    const v = this.text(key);
    if (!(allowed as readonly string[]).includes(v))
      throw new BootError('ERR_BOOT_PARAM', `boot parameter ${key} is '${v.slice(0, 40)}'; expected one of ${allowed.join(', ')}`);
    return v as T;
  }

  int(key: ParamKey, min: number, max: number): number {
    const v = this.text(key);
    const n = /^(0|[1-9][0-9]{0,15})$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max)
      throw new BootError('ERR_BOOT_PARAM', `boot parameter ${key} is '${v.slice(0, 40)}'; expected a whole number from ${min} to ${max}`);
    return n;
  }

  /** An inherited fd slot announced by the manager (never a fixed one). */
  fd(key: ParamKey): number {
    return this.int(key, FIRST_ANNOUNCED_FD, MAX_FD_SLOT);
  }

  ints(key: ParamKey, count: number, min: number, max: number): number[] {
    const parts = this.text(key).split(',');
    if (parts.length !== count) throw new BootError('ERR_BOOT_PARAM', `boot parameter ${key} has ${parts.length} values; expected ${count}`);
    return parts.map((p) => {
      const n = /^(0|[1-9][0-9]{0,15})$/.test(p) ? Number(p) : NaN;
      if (!Number.isSafeInteger(n) || n < min || n > max)
        throw new BootError('ERR_BOOT_PARAM', `boot parameter ${key}: '${p.slice(0, 20)}' is not a whole number from ${min} to ${max}`);
      return n;
    });
  }
}
