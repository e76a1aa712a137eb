/**
 * Errors of the container ABI's shared memory (the formats and their mapping) and of the register
 * mailbox's container end. Each class has a closed set of codes, documented once in README.md
 * ("Errors"). Ring violations are not errors: a ring end reports them to its owner (ring.ts) and
 * never throws. The hypercall channel has its own classes (hypercall/errors.ts).
 */
import { DmaboxError } from '../../common/errors.js';

export type AbiCode =
  /** The memory is not the format expected (its magic word differs). */
  | 'ERR_ABI_MAGIC'
  /** The format is the one expected, in another version (the other side comes from another build). */
  | 'ERR_ABI_VERSION'
  /** A geometry (entries, slot sizes) out of range, or larger than the memory holding it. */
  | 'ERR_ABI_GEOMETRY'
  /** Shared memory could not be made, sized or mapped. */
  | 'ERR_ABI_SHM'
  /** A spare's handover (handover.ts): a foreign or short message, too many fds, fds not on their slots. */
  | 'ERR_ABI_HANDOVER';

export class AbiError extends DmaboxError<AbiCode> {}

export type MailboxCode =
  /** No answer from the manager in time, or the manager let go of the device. */
  | 'ERR_MAILBOX_TIMEOUT'
  /** The manager answered a register access, interrupt or reset request with a refusal. */
  | 'ERR_MAILBOX_ACCESS'
  /** The driver named a register offset outside the BAR or not 4-byte aligned. */
  | 'ERR_MAILBOX_OFFSET';

export class MailboxError extends DmaboxError<MailboxCode> {}
