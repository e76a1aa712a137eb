/**
 * Errors of the TAP linkback. Codes are stable; messages say what failed and how to fix it.
 */
import { DmaboxError } from '../../common/errors.js';

export type TapErrorCode =
  /** Bad input: interface name, option value. */
  | 'ERR_TAP_ARG'
  /** EPERM / EACCES: creating a TAP interface needs root or CAP_NET_ADMIN. */
  | 'ERR_TAP_PERMISSION'
  /** /dev/net/tun does not exist (the tun module is not loaded). */
  | 'ERR_TAP_NO_TUN'
  /** The name belongs to a TAP interface another process has open. */
  | 'ERR_TAP_BUSY'
  /** The name belongs to an interface that is not a TAP (or a TUN with other flags). */
  | 'ERR_TAP_NAME_TAKEN'
  /** Any other failure of open, ioctl, read or write on the TAP fd. */
  | 'ERR_TAP_IO'
  /** The device or bridge was closed. */
  | 'ERR_TAP_CLOSED'
  /** A NIC port did something the bridge cannot accept (a buffer outside its pool, a bad length). */
  | 'ERR_TAP_PORT';

export class TapError extends DmaboxError<TapErrorCode> {
  /** The errno name (`EPERM`) when a system call failed. */
  readonly errno: string | undefined;

  constructor(code: TapErrorCode, message: string, options: { cause?: unknown; fix?: string; errno?: string } = {}) {
    super(code, message, options);
    this.errno = options.errno;
  }
}
