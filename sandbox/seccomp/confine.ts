/**
 * Confine the calling process: no_new_privs, then a seccomp filter on every thread (TSYNC).
 *
 * Call it last, once every module, native library and thread the process will ever use is loaded:
 * afterwards it cannot open files, create fds of new kinds, spawn, or exec. Under Node the filter
 * must be installed with SECCOMP_FILTER_FLAG_TSYNC (LAB-NOTES): prctl(PR_SET_SECCOMP) would filter
 * only the calling thread of Node's eleven.
 */
import { defaultSys, PR_GET_NO_NEW_PRIVS, PR_SET_NO_NEW_PRIVS, SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_SET_MODE_FILTER, type Sys } from 'linux-sys';
import { compile, profile } from './profiles.js';
import { SeccompError } from './errors.js';

export function confine(profileName: string, sys: Sys = defaultSys()): void {
  // Built here, in the process being confined: the filter names its own pid (tgkill, prlimit64).
  const program = compile(profile(profileName), { pid: process.pid });
  // Node creates process.stdout and process.stderr on first use (a pipe or socket handle): create
  // them now, or logging after confinement would fail silently.
  void process.stdout.fd;
  void process.stderr.fd;
  try {
    sys.prctl(PR_SET_NO_NEW_PRIVS, 1);
  } catch (e) {
    throw new SeccompError('ERR_CONFINE_NNP', 'could not set no_new_privs', { cause: e });
  }
  if (sys.prctl(PR_GET_NO_NEW_PRIVS, 0) !== 1) {
    throw new SeccompError('ERR_CONFINE_NNP', 'no_new_privs did not stick');
  }
  try {
    sys.seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, program);
  } catch (e) {
    throw new SeccompError('ERR_CONFINE_SECCOMP', `could not install the '${profileName}' seccomp filter on all threads`, {
      cause: e,
      fix: 'the kernel needs CONFIG_SECCOMP_FILTER; a TSYNC failure names a thread already under another filter',
    });
  }
}
