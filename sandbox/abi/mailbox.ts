/**
 * The simulated-BAR register mailbox: how a driver container reaches a device the manager
 * simulates. The device model lives in the manager (a container holding the IOMMU model could
 * cheat); the container has only this page of shared memory and an eventfd.
 *
 * One 4 KiB+ memfd, shared. u32 words, little-endian:
 *
 * | word | name | writer | meaning |
 * |---|---|---|---|
 * | 0 | REQ_TAIL | container | requests posted (free-running, mod 2^32) |
 * | 1 | REQ_HEAD | manager | requests consumed |
 * | 2 | RESP_SEQ | manager | REQ_TAIL value of the last request answered (reads, IRQ set-up, reset) |
 * | 3 | RESP_VALUE | manager | the answer |
 * | 4 | RESP_STATUS | manager | 0 ok, else a `MailboxStatus` |
 * | 5 | HOST_GONE | manager | 1 once the manager has let go (the container stops waiting) |
 * | 6 | HOST_POLLED | manager | 1 while it applies the ring every event-loop turn (kicks may be left out) |
 *
 * The ring starts at byte 64: RING_ENTRIES entries of 16 bytes: `u32 word0` (op | width << 8 |
 * space << 16), `u32 offset`, `u32 value`, `u32 reserved`. Every access, posted write or read,
 * goes through the ring in program order, so a read is ordered after every earlier write, as
 * on PCI (a read flushes posted writes). After writing an entry the container bumps REQ_TAIL and
 * kicks the eventfd; the manager applies writes and answers each read by setting RESP_VALUE,
 * RESP_STATUS and then RESP_SEQ, on which the container spins (Atomics.load, bounded).
 *
 * Kicks: the container leaves the kick out while REQ_HEAD shows the manager has not yet taken the
 * entries before the new one; the manager, after storing REQ_HEAD, loads REQ_TAIL again (behind a
 * full fence, block/fence.ts) and goes on while it moved.
 * REQ_HEAD is only that hint to the container; the manager never trusts REQ_TAIL beyond the ring.
 * While HOST_POLLED is 1 the container leaves every kick out: the manager polls the ring as a
 * device sees its doorbells, with no wake-up (block/layout.ts, "Polling", for the protocol).
 */
export const MAILBOX_BYTES = 8192;
export const RING_OFFSET = 64;
export const RING_ENTRIES = 256;
export const ENTRY_BYTES = 16;
/** Word indices in the header. */
export const W = { REQ_TAIL: 0, REQ_HEAD: 1, RESP_SEQ: 2, RESP_VALUE: 3, RESP_STATUS: 4, HOST_GONE: 5, HOST_POLLED: 6 } as const;

export const enum MailboxOp {
  /** Posted register write (no answer). */
  WRITE = 1,
  /** Register read (answered). */
  READ = 2,
  /** Route `value` vectors of interrupt kind `offset` (1 msix, 3 intx) to the container's eventfds (answered: granted). */
  IRQ_ENABLE = 3,
  /** Stop interrupt delivery (answered). */
  IRQ_DISABLE = 4,
  /** Function-level reset (answered). */
  RESET = 5,
}

/** `space` of a register access: BAR 0..5, or PCI configuration space. */
export const SPACE_CONFIG = 0xff;

export const enum MailboxStatus {
  OK = 0,
  /** Bad space, offset, width or alignment. */
  BAD_ACCESS = 1,
  /** Unknown op. */
  BAD_OP = 2,
  /** The manager refused (e.g. more vectors than granted). */
  DENIED = 3,
  /** The device failed the access. */
  DEVICE = 4,
}

export const IRQ_KIND_CODE = { msix: 1, msi: 2, intx: 3 } as const;

export function word0(op: MailboxOp, width: number, space: number): number {
  return (op | (width << 8) | (space << 16)) >>> 0;
}
