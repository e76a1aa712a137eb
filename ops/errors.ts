/**
 * Errors of the operations side (ops/): the metrics endpoint, the service manager's notify
 * socket, the logger. One class, a closed set of codes, each documented in ops/README.md.
 */
import { DmaboxError } from '../common/errors.js';

export type OpsCode =
  | 'ERR_OPS_METRICS_ADDRESS' // --metrics names no unix path or loopback TCP address
  | 'ERR_OPS_METRIC' // a metric family, sample or label is malformed (a bug in the collector)
  | 'ERR_OPS_METRICS_LISTEN' // the metrics endpoint could not listen
  | 'ERR_OPS_NOTIFY' // NOTIFY_SOCKET is malformed or cannot be reached
  | 'ERR_OPS_LOG_FORMAT' // --log-format names no known format
  | 'ERR_OPS_POLICY_DIR'; // a policy folder cannot be read or holds no policy

export class OpsError extends DmaboxError<OpsCode> {}
