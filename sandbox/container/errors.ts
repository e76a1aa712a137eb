/**
 * The container's errors: one class, a closed set of codes, each documented in sandbox/README.md.
 * Those that a restart cannot cure (CONFIG_CODES) make the container exit with EXIT_CONFIG.
 */
import { DmaboxError } from '../../common/errors.js';

export type ContainerCode =
  | 'ERR_CONTAINER_CONFINE' // confinement did not hold: /dev/vfio/vfio could still be opened
  | 'ERR_CONTAINER_DUMPABLE' // the dumpable flag could not be cleared
  | 'ERR_CONTAINER_IMPORT' // the driver's code imports something outside its code image
  | 'ERR_CONTAINER_DRIVER' // the driver module does not meet the driver contract
  | 'ERR_CONTAINER_WINDOWS' // the windows handed over do not fit what the service expects
  | 'ERR_CONTAINER_DMA_ARG' // a DMA allocation with an impossible size or alignment, or a free of a window not handed out
  | 'ERR_CONTAINER_DMA_EXHAUSTED' // no granted window of that device access has room
  | 'ERR_CONTAINER_IRQ' // interrupt vectors asked beyond those granted
  | 'ERR_CONTAINER_BAR'; // a BAR the device does not have

export class ContainerError extends DmaboxError<ContainerCode> {}

/** Codes that mean the driver cannot start on this device: the manager fails it rather than restart it. */
export const CONFIG_CODES: ReadonlySet<string> = new Set(['ERR_CONTAINER_IMPORT', 'ERR_CONTAINER_DRIVER', 'ERR_BOOT_PARAM', 'ERR_BOOT_CODE']);
