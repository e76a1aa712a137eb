/**
 * NVMe completion status (NVMe 1.4 §4.6.1.2): Status Code Type (SCT) and Status Code (SC) as data,
 * and the errors the driver raises. Shared by the driver and the simulated controller.
 */
import { DmaboxError } from '../../common/errors.js';

/** Status Code Types (§4.6.1.2, Figure 125). */
export const Sct = Object.freeze({
  GENERIC: 0,
  COMMAND_SPECIFIC: 1,
  MEDIA_DATA_INTEGRITY: 2,
  PATH_RELATED: 3,
  VENDOR_SPECIFIC: 7,
});

/** Generic Command Status (SCT 0), §4.6.1.2.1, Figures 126 and 127. */
export const GenericSc = Object.freeze({
  SUCCESS: 0x00,
  INVALID_COMMAND_OPCODE: 0x01,
  INVALID_FIELD: 0x02,
  COMMAND_ID_CONFLICT: 0x03,
  DATA_TRANSFER_ERROR: 0x04,
  ABORTED_POWER_LOSS: 0x05,
  INTERNAL_ERROR: 0x06,
  ABORTED_BY_REQUEST: 0x07,
  ABORTED_SQ_DELETION: 0x08,
  INVALID_NAMESPACE_OR_FORMAT: 0x0b,
  INVALID_PRP_OFFSET: 0x13,
  /** NVM command set specific, in SCT 0 (Figure 127). */
  LBA_OUT_OF_RANGE: 0x80,
  CAPACITY_EXCEEDED: 0x81,
  NAMESPACE_NOT_READY: 0x82,
});

/** Command Specific Status (SCT 1), §4.6.1.2.2, Figure 128. */
export const CommandSpecificSc = Object.freeze({
  COMPLETION_QUEUE_INVALID: 0x00,
  INVALID_QUEUE_IDENTIFIER: 0x01,
  INVALID_QUEUE_SIZE: 0x02,
  ABORT_COMMAND_LIMIT_EXCEEDED: 0x03,
  ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED: 0x05,
  INVALID_INTERRUPT_VECTOR: 0x08,
  INVALID_QUEUE_DELETION: 0x0c,
  FEATURE_NOT_SAVEABLE: 0x0d,
});

/** Media and Data Integrity Errors (SCT 2), §4.6.1.2.3, Figure 130. */
export const MediaSc = Object.freeze({
  WRITE_FAULT: 0x80,
  UNRECOVERED_READ_ERROR: 0x81,
});

/** Names for messages, keyed by (SCT << 8) | SC. */
const NAMES = new Map<number, string>();
for (const [table, sct] of [
  [GenericSc, Sct.GENERIC],
  [CommandSpecificSc, Sct.COMMAND_SPECIFIC],
  [MediaSc, Sct.MEDIA_DATA_INTEGRITY],
] as const) {
  for (const [name, sc] of Object.entries(table)) NAMES.set((sct << 8) | sc, name);
}

/** The 15-bit status (SC | SCT << 8 | CRD << 11 | M << 13 | DNR << 14), i.e. CQE status field >> 1. */
export function statusOf(sct: number, sc: number, dnr = false): number {
  return ((dnr ? 1 : 0) << 14) | ((sct & 7) << 8) | (sc & 0xff);
}
export function sctOf(status: number): number {
  return (status >>> 8) & 7;
}
export function scOf(status: number): number {
  return status & 0xff;
}
export function dnrOf(status: number): boolean {
  return ((status >>> 14) & 1) === 1;
}
export function statusName(status: number): string {
  const key = status & 0x7ff;
  return NAMES.get(key) ?? `SCT ${sctOf(status)} SC 0x${scOf(status).toString(16).padStart(2, '0')}`;
}

/** A command completed with a non-zero status. */
export class NvmeStatusError extends DmaboxError {
  readonly sct: number;
  readonly sc: number;
  readonly dnr: boolean;
  constructor(what: string, status: number) {
    super(
      'ERR_NVME_STATUS',
      `${what} failed: ${statusName(status)} (SCT ${sctOf(status)}, SC 0x${scOf(status).toString(16).padStart(2, '0')}${dnrOf(status) ? ', do not retry' : ''})`,
    );
    this.sct = sctOf(status);
    this.sc = scOf(status);
    this.dnr = dnrOf(status);
  }
}

/** A command got no completion in time, after escalation (poll again, Abort, controller reset). */
export class NvmeTimeoutError extends DmaboxError {
  constructor(message: string, fix?: string) {
    super('ERR_NVME_TIMEOUT', message, fix ? { fix } : {});
  }
}

/** The controller is in a state the driver cannot use (CSTS.CFS, unsupported capability, closed). */
export class NvmeControllerError extends DmaboxError {
  constructor(code: 'ERR_NVME_FATAL' | 'ERR_NVME_UNSUPPORTED' | 'ERR_NVME_CLOSED' | 'ERR_NVME_PROTOCOL', message: string, fix?: string) {
    super(code, message, fix ? { fix } : {});
  }
}

/** The caller asked for something invalid (LBA range, buffer size, queue count). */
export class NvmeArgumentError extends DmaboxError {
  constructor(message: string, fix?: string) {
    super('ERR_NVME_ARGUMENT', message, fix ? { fix } : {});
  }
}
