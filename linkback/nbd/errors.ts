/**
 * Errors of the NBD server: configuration refused at start-up, listeners that cannot open. Errors a
 * client causes never throw: they are answered on the wire (NBD error values, option replies) and
 * reported through the server's `onEvent`.
 */
import { DmaboxError } from '../../common/errors.js';

export type NbdCode =
  /** The server's options: no export, a duplicate name, an unknown default export, a bad limit. */
  | 'ERR_NBD_CONFIG'
  /** One export's options: its name, description, block sizes, or a replacement device that differs. */
  | 'ERR_NBD_EXPORT'
  /** A listener could not open (address in use, a path that exists). */
  | 'ERR_NBD_LISTEN'
  /** TCP on a non-loopback address without `allowRemote`. */
  | 'ERR_NBD_NOT_LOOPBACK'
  /** TLS configuration: a key file unreadable, malformed or open to others, certificates refused, keys without TLS. */
  | 'ERR_NBD_TLS'
  /** listen after close(). */
  | 'ERR_NBD_CLOSED';

export class NbdError extends DmaboxError<NbdCode> {}
