import { DmaboxError } from '../../common/errors.js';

/**
 * Errors of image building and of the lab. Codes are stable:
 * ERR_IMAGE_TOOL_MISSING, ERR_IMAGE_NOT_ROOT, ERR_IMAGE_KERNEL_RESOLVE, ERR_IMAGE_KERNEL_DOWNLOAD,
 * ERR_IMAGE_MODULE_MISSING, ERR_IMAGE_COMMAND (a host tool failed), ERR_LAB_OPTIONS, ERR_LAB_QEMU_MISSING,
 * ERR_LAB_TIMEOUT (QEMU killed after the timeout), ERR_LAB_GUEST_SETUP (the guest's /init failed),
 * ERR_LAB_TRACE_UNSUPPORTED (this QEMU lacks the vtd_dmar_fault trace event), ERR_LAB_BOOT_FAILED (the guest never reached /init), ERR_LAB_GUEST_DIED (panic, or exit without a status).
 */
export class ApplianceError extends DmaboxError {}
