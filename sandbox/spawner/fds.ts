/**
 * fd hygiene: a process that starts others marks every fd it inherited (3 and up) close-on-exec,
 * so a log file or a pipe of the invoking shell never reaches a child. The children get exactly
 * the fds their spawn names (dup2 into place clears the flag on the copy).
 */
import { readdirSync } from 'node:fs';
import { FD_CLOEXEC, F_GETFD, F_SETFD, type Sys } from 'linux-sys';

/** Mark every open fd from 3 on close-on-exec; returns those that were not (the leaks it closed off). */
export function closeOnExecAll(sys: Sys, fdDir = '/proc/self/fd'): number[] {
  const fixed: number[] = [];
  let names: string[];
  try {
    names = readdirSync(fdDir);
  } catch {
    return fixed;
  }
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd < 3) continue;
    let flags: number;
    try {
      flags = sys.fcntl(fd, F_GETFD, 0);
    } catch {
      continue; // the directory's own fd, closed by now
    }
    if ((flags & FD_CLOEXEC) !== 0) continue;
    sys.fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    fixed.push(fd);
  }
  return fixed;
}
