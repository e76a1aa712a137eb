/**
 * The one error hierarchy of vfio-bindings. Every error is a `VfioError` with a stable `code`
 * from `VfioCode` (never reworded, programs match on it; README.md documents each), the operation that failed (`op`), the errno when a
 * syscall failed, and, for the known pitfalls of VFIO, a `fix` telling the user what to do.
 *
 * The seam (linux-sys) raises `SyscallError` (code ERR_SYSCALL) with the errno read right after
 * the call; the classes here turn the errnos they can explain into the specific codes below,
 * keeping the syscall error as `cause`.
 */
import { errnoName as nameOf, SyscallError } from 'linux-sys';

/** The stable codes. */
export const VfioCode = Object.freeze({
  /** A syscall failed and nothing more specific is known (the seam's SyscallError is its cause). */
  SYSCALL: 'ERR_VFIO_SYSCALL',
  /** Bad input from the caller (wrong type, range, alignment, unknown name). */
  ARG: 'ERR_VFIO_ARG',
  /** No /dev/vfio/vfio: no IOMMU, or the vfio modules are not loaded. */
  NO_VFIO: 'ERR_VFIO_NO_VFIO',
  /** Permission denied opening a VFIO node. */
  ACCESS: 'ERR_VFIO_ACCESS',
  /** The kernel's VFIO API version is not the one this package speaks (0). */
  API_VERSION: 'ERR_VFIO_API_VERSION',
  /** The container does not offer the IOMMU type asked for (TYPE1v2). */
  NO_EXTENSION: 'ERR_VFIO_NO_EXTENSION',
  /** SET_IOMMU refused with EPERM: no interrupt remapping. */
  NO_INTERRUPT_REMAPPING: 'ERR_VFIO_NO_INTERRUPT_REMAPPING',
  /** A DMA map or unmap issued before SET_IOMMU. */
  IOMMU_NOT_SET: 'ERR_VFIO_IOMMU_NOT_SET',
  /** /dev/vfio/N does not exist. */
  GROUP_NOT_FOUND: 'ERR_VFIO_GROUP_NOT_FOUND',
  /** The group is already open elsewhere (a legacy group opens once). */
  GROUP_BUSY: 'ERR_VFIO_GROUP_BUSY',
  /** Another device of the group is bound to a host driver. */
  GROUP_NOT_VIABLE: 'ERR_VFIO_GROUP_NOT_VIABLE',
  /** The group has no device with that address. */
  DEVICE_NOT_FOUND: 'ERR_VFIO_DEVICE_NOT_FOUND',
  /** MAP_DMA failed for lack of locked-memory allowance (RLIMIT_MEMLOCK). */
  MEMLOCK: 'ERR_VFIO_MEMLOCK',
  /** An IOVA outside the ranges the IOMMU reports as valid. */
  IOVA_RANGE: 'ERR_VFIO_IOVA_RANGE',
  /** MAP_DMA over an IOVA range that is already (partly) mapped. */
  MAP_EXISTS: 'ERR_VFIO_MAP_EXISTS',
  /** Address or size not aligned to the IOMMU's smallest page. */
  MAP_ALIGN: 'ERR_VFIO_MAP_ALIGN',
  /** UNMAP_DMA unmapped less than asked (nothing, or part of a range). */
  UNMAP_SHORT: 'ERR_VFIO_UNMAP_SHORT',
  /** The object was closed. */
  CLOSED: 'ERR_VFIO_CLOSED',
  /** An MMIO access outside the BAR or not 4-byte aligned. */
  MMIO_BOUNDS: 'ERR_MMIO_BOUNDS',
  /** A region cannot be mmapped (no MMAP flag, or only partly). */
  REGION_MMAP: 'ERR_VFIO_REGION_MMAP',
  /** An interrupt vector did not fire in time. */
  IRQ_TIMEOUT: 'ERR_VFIO_IRQ_TIMEOUT',
  /** A sysfs file is missing or unreadable, or a bind did not take. */
  SYSFS: 'ERR_VFIO_SYSFS',
  /** An info reply of the kernel (device, region or IOMMU info) whose capability chain does not fit its buffer. */
  BAD_INFO: 'ERR_VFIO_BAD_INFO',
} as const);

/** The closed set of codes a `VfioError` carries: `'ERR_VFIO_ARG' | 'ERR_VFIO_NO_VFIO' | ...`. */
export type VfioCodeValue = (typeof VfioCode)[keyof typeof VfioCode];

export interface VfioErrorOptions {
  op?: string;
  errno?: number;
  fix?: string;
  cause?: unknown;
}

export class VfioError extends Error {
  readonly code: VfioCodeValue;
  /** What was being done: `open /dev/vfio/1`, `VFIO_IOMMU_MAP_DMA`. */
  readonly op: string | undefined;
  readonly errno: number | undefined;
  /** `ENOENT` for errno 2. */
  readonly errnoName: string | undefined;
  readonly fix: string | undefined;

  constructor(code: VfioCodeValue, message: string, options: VfioErrorOptions = {}) {
    const errName = options.errno !== undefined ? nameOf(options.errno) : undefined;
    let text = options.op ? `${options.op}: ${message}` : message;
    if (errName) text += ` (${errName})`;
    if (options.fix) text += `\n  fix: ${options.fix}`;
    super(text, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.op = options.op;
    this.errno = options.errno;
    this.errnoName = errName;
    this.fix = options.fix;
  }
}

/** Bad input: says what is wrong and what is expected. */
export class VfioArgError extends VfioError {
  constructor(message: string, op?: string) {
    super(VfioCode.ARG, message, op ? { op } : {});
  }
}

/** An MMIO access outside its BAR or misaligned. */
export class MmioBoundsError extends VfioError {
  constructor(offset: number, size: number, width: number) {
    super(VfioCode.MMIO_BOUNDS, `${width}-byte access at offset ${offset} is outside the register space of ${size} bytes or not 4-byte aligned`, {
      op: 'mmio',
      fix: 'use a 4-byte-aligned offset inside the BAR (check the register map against the BAR size)',
    });
  }
}

/** Re-raise a syscall error under a specific code, keeping its errno and the original as cause. */
export function explain(e: unknown, code: VfioCodeValue, message: string, op: string, fix?: string): VfioError {
  const errno = e instanceof VfioError || e instanceof SyscallError ? e.errno : undefined;
  const opts: VfioErrorOptions = { op, cause: e };
  if (errno !== undefined) opts.errno = errno;
  if (fix !== undefined) opts.fix = fix;
  return new VfioError(code, message, opts);
}

export { errnoOf } from 'linux-sys';

/** Known pitfall fixes, shared by the classes and the README. */
export const FIX = Object.freeze({
  noVfio:
    'this machine has no usable IOMMU/VFIO: enable the IOMMU (intel_iommu=on or amd_iommu=on on the kernel command line) and `modprobe vfio-pci`; without one, use the simulator (sim/) or the QEMU lab (appliance/lab)',
  access: 'VFIO group nodes are root-only by default: run as root, or give the user the node (chown user /dev/vfio/N)',
  memlock:
    'MAP_DMA pins the pages and counts them against RLIMIT_MEMLOCK: raise it (`ulimit -l unlimited` as root, or a memlock line in /etc/security/limits.conf, or LimitMEMLOCK= in the systemd unit)',
  groupBusy: 'a legacy VFIO group can be open in one place only: close the other user (another dmabox manager, QEMU, DPDK: `fuser -v /dev/vfio/N`)',
  noIntRemap:
    'the IOMMU has no interrupt remapping, so the kernel refuses VFIO: enable it (intremap=on, or on QEMU q35 `-device intel-iommu,intremap=on` with `kernel-irqchip=split` under KVM), or, knowing a device can then forge interrupts, `modprobe vfio_iommu_type1 allow_unsafe_interrupts=1`',
  iommuNotSet: 'attach a group to the container and call setIommu() before mapping DMA',
  bindVfio: 'bind the device to vfio-pci first (dmabox bind BDF, or driver_override + drivers_probe)',
} as const);
