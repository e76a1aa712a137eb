/**
 * Errors of the syscall seam. A failing call throws `SyscallError`, carrying the operation, the
 * errno read right after the call, and its name; the layers above turn the errnos they can explain
 * into errors of their own (keeping this one as `cause`). Bad arguments to the seam itself throw
 * `SysArgError` before any call is made. The two codes are documented in ../README.md.
 */
import { errnoName } from './errno.js';

export type SysCode = 'ERR_SYSCALL' | 'ERR_SYS_ARG';

abstract class SysError extends Error {
  abstract readonly code: SysCode;
  /** What was being done: `open /dev/vfio/1`, `ioctl VFIO_IOMMU_MAP_DMA on fd 7`. */
  readonly op: string;
  constructor(op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = new.target.name;
    this.op = op;
  }
}

/** A syscall returned -1; `errno` was read immediately after it. */
export class SyscallError extends SysError {
  readonly code = 'ERR_SYSCALL' as const;
  readonly errno: number;
  /** `ENOENT` for errno 2. */
  readonly errnoName: string;
  constructor(op: string, errno: number, message = 'failed') {
    super(op, `${message} (${errnoName(errno)})`);
    this.errno = errno;
    this.errnoName = errnoName(errno);
  }
}

/** An argument the seam refuses before making the call. */
export class SysArgError extends SysError {
  readonly code = 'ERR_SYS_ARG' as const;
  constructor(message: string, op: string) {
    super(op, message);
  }
}

/** The errno name of a syscall error, or undefined for anything else. */
export function errnoOf(e: unknown): string | undefined {
  return e instanceof SyscallError ? e.errnoName : undefined;
}
