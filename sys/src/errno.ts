/**
 * Linux errno numbers and names (x86-64, asm-generic/errno-base.h and errno.h), for error
 * messages. A plain table so that the fake seam and the real one name errnos the same way, without
 * loading koffi.
 */
const NAMES: Readonly<Record<number, string>> = Object.freeze({
  1: 'EPERM',
  2: 'ENOENT',
  3: 'ESRCH',
  4: 'EINTR',
  5: 'EIO',
  6: 'ENXIO',
  7: 'E2BIG',
  8: 'ENOEXEC',
  9: 'EBADF',
  10: 'ECHILD',
  11: 'EAGAIN',
  12: 'ENOMEM',
  13: 'EACCES',
  14: 'EFAULT',
  15: 'ENOTBLK',
  16: 'EBUSY',
  17: 'EEXIST',
  18: 'EXDEV',
  19: 'ENODEV',
  20: 'ENOTDIR',
  21: 'EISDIR',
  22: 'EINVAL',
  23: 'ENFILE',
  24: 'EMFILE',
  25: 'ENOTTY',
  26: 'ETXTBSY',
  27: 'EFBIG',
  28: 'ENOSPC',
  29: 'ESPIPE',
  30: 'EROFS',
  31: 'EMLINK',
  32: 'EPIPE',
  33: 'EDOM',
  34: 'ERANGE',
  38: 'ENOSYS',
  61: 'ENODATA',
  75: 'EOVERFLOW',
  88: 'ENOTSOCK',
  95: 'EOPNOTSUPP',
  110: 'ETIMEDOUT',
  111: 'ECONNREFUSED',
  121: 'EREMOTEIO',
});

/** errno number by name, the inverse of the table above. */
export const ERRNO: Readonly<Record<string, number>> = Object.freeze(Object.fromEntries(Object.entries(NAMES).map(([n, name]) => [name, Number(n)])));

/** `ENOENT` for 2; `errno 200` for a number the table does not know. */
export function errnoName(errno: number): string {
  return NAMES[errno] ?? `errno ${errno}`;
}
