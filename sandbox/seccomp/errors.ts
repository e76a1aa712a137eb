/** Errors of confinement: building the seccomp filter, and installing it. Codes documented in sandbox/README.md. */
import { DmaboxError } from '../../common/errors.js';

export type SeccompCode =
  | 'ERR_SECCOMP_PROFILE' // no profile of that name
  | 'ERR_SECCOMP_ERRNO' // an errno action outside 1..4095
  | 'ERR_SECCOMP_RULE' // a rule naming an impossible syscall, argument or value list
  | 'ERR_SECCOMP_TOO_LONG' // the filter exceeds the kernel's BPF_MAXINSNS
  | 'ERR_SECCOMP_INSN' // the BPF interpreter (tests) met an instruction it does not know, or ran off the end
  | 'ERR_CONFINE_NNP' // no_new_privs could not be set
  | 'ERR_CONFINE_SECCOMP'; // the filter could not be installed on every thread

export class SeccompError extends DmaboxError<SeccompCode> {}
