/**
 * Errors of image building (appliance/image) and of the QEMU lab (appliance/lab): one class, one
 * closed set of codes, documented in appliance/lab/README.md.
 */
import { DmaboxError } from '../../common/errors.js';

/** Building an image: host tools, the kernel package, its modules, the initramfs. */
export type ImageCode =
  | 'ERR_IMAGE_TOOL_MISSING'
  | 'ERR_IMAGE_NOT_ROOT'
  | 'ERR_IMAGE_KERNEL_RESOLVE'
  | 'ERR_IMAGE_KERNEL_DOWNLOAD'
  | 'ERR_IMAGE_MODULE_MISSING'
  | 'ERR_IMAGE_MODULE_INDEX'
  | 'ERR_IMAGE_CPIO'
  | 'ERR_IMAGE_COMMAND';

/** Booting the lab and running a command in it. */
export type LabCode =
  | 'ERR_LAB_OPTIONS'
  | 'ERR_LAB_CHECKOUT'
  | 'ERR_LAB_QEMU_MISSING'
  | 'ERR_LAB_TRACE_UNSUPPORTED'
  | 'ERR_LAB_TIMEOUT'
  | 'ERR_LAB_BOOT_FAILED'
  | 'ERR_LAB_GUEST_SETUP'
  | 'ERR_LAB_GUEST_DIED'
  | 'ERR_LAB_QEMU_CRASHED'
  | 'ERR_LAB_RELAY';

/** Building a secure appliance image (appliance/build): its spec, its pinned inputs, its tools' output. */
export type BuildCode = 'ERR_APPLIANCE_SPEC' | 'ERR_APPLIANCE_LOCK' | 'ERR_APPLIANCE_INPUT' | 'ERR_APPLIANCE_VERITY';

export type ApplianceCode = ImageCode | LabCode | BuildCode;

export class ApplianceError extends DmaboxError<ApplianceCode> {}
