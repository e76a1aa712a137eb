/**
 * linux-sys: the syscall seam of dmabox. See README.md.
 *
 * One interface (`Sys`) for every Linux call the project makes, one implementation over libc
 * through koffi (loaded on first use), and nothing else: the only package that calls koffi.
 */
export * from './sys.js';
export { SyscallError, SysArgError, errnoOf, type SysCode } from './errors.js';
export { errnoName, ERRNO } from './errno.js';
export { registerIoctlNames, ioctlName } from './ioctl-names.js';
