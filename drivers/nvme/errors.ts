/**
 * The NVMe driver's errors. Each class carries a closed set of codes (a code belongs to one class
 * only, so `instanceof` and `code` agree); every code is explained, with its fix, in
 * drivers/nvme/README.md (test/common/error-codes.test.ts holds the two together). Statuses are
 * decoded with spec/nvme/status.ts.
 */
import { DmaboxError } from '../../common/errors.js';
import { dnrOf, scOf, sctOf, statusName } from '../../spec/nvme/status.js';

/** The driver's codes, one closed set per class (a code belongs to one class only). */
export type NvmeStatusCode = 'ERR_NVME_STATUS';
export type NvmeTimeoutCode = 'ERR_NVME_TIMEOUT';
export type NvmeControllerCode = 'ERR_NVME_FATAL' | 'ERR_NVME_UNSUPPORTED' | 'ERR_NVME_CLOSED' | 'ERR_NVME_PROTOCOL';
export type NvmeArgumentCode = 'ERR_NVME_ARGUMENT';
/** Every code the driver's errors carry. */
export type NvmeCode = NvmeStatusCode | NvmeTimeoutCode | NvmeControllerCode | NvmeArgumentCode;

/** A command completed with a non-zero status: the status decoded (§4.6.1). */
export class NvmeStatusError extends DmaboxError<NvmeStatusCode> {
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
export class NvmeTimeoutError extends DmaboxError<NvmeTimeoutCode> {
  constructor(message: string, fix?: string) {
    super('ERR_NVME_TIMEOUT', message, fix ? { fix } : {});
  }
}

/** The controller is in a state the driver cannot use (CSTS.CFS, an unsupported capability, closed), or the driver's own sequencing broke. */
export class NvmeControllerError extends DmaboxError<NvmeControllerCode> {
  constructor(code: NvmeControllerCode, message: string, fix?: string) {
    super(code, message, fix ? { fix } : {});
  }
}

/** The caller asked for something invalid (LBA range, buffer size, queue size, a slot it does not hold). */
export class NvmeArgumentError extends DmaboxError<NvmeArgumentCode> {
  constructor(message: string, fix?: string) {
    super('ERR_NVME_ARGUMENT', message, fix ? { fix } : {});
  }
}
