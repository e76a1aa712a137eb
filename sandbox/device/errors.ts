/**
 * The device process's errors: one class, a closed set of codes, each documented in
 * sandbox/device/README.md.
 */
import { DmaboxError } from '../../common/errors.js';

export type DeviceProcessCode =
  | 'ERR_DEVICE_START' // START names memory or a model the device process cannot set up
  | 'ERR_DEVICE_IRQ'; // interrupt vectors asked beyond the eventfds handed over

export class DeviceProcessError extends DmaboxError<DeviceProcessCode> {}
