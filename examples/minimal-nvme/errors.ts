/** The example driver's errors: a closed set of codes, documented in README.md beside it. */
import { DmaboxError } from '../../common/errors.js';

export type MinimalNvmeCode =
  | 'ERR_MINIMAL_NVME_DEVICE' // the controller or namespace is not what this driver can drive
  | 'ERR_MINIMAL_NVME_TIMEOUT' // a bounded wait on the controller ran out
  | 'ERR_MINIMAL_NVME_STATUS' // a command completed with an error status
  | 'ERR_MINIMAL_NVME_STATE'; // a command id reused while in flight (a bug of the driver)

export class MinimalNvmeError extends DmaboxError<MinimalNvmeCode> {
  /** For ERR_MINIMAL_NVME_STATUS: the completion's status code type and status code (NVMe 1.4 §4.6.1). */
  sct = 0;
  sc = 0;

  static status(what: string, sct: number, sc: number): MinimalNvmeError {
    const e = new MinimalNvmeError('ERR_MINIMAL_NVME_STATUS', `${what}: the controller answered status type ${sct} code 0x${sc.toString(16)}`);
    e.sct = sct;
    e.sc = sc;
    return e;
  }
}
