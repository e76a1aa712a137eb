/**
 * The register mailbox: how a driver container reaches a device the manager simulates. The device
 * model lives in the manager (a container holding the IOMMU model could cheat); the container has
 * only this memfd and an eventfd. README.md, "The register mailbox", is its document.
 *
 * Header (u32 words):
 *
 * | word | name | writer | meaning |
 * |---|---|---|---|
 * | 0 | MAGIC | manager | `0x78626d64` (the bytes "dmbx") |
 * | 1 | VERSION | manager | `MAILBOX_VERSION` |
 * | 2 | REQ_TAIL | container | requests posted (ring.ts TAIL) |
 * | 3 | REQ_HEAD | manager | requests taken (HEAD) |
 * | 4 | RESP_SEQ | manager | REQ_TAIL value of the last request answered (reads, IRQ set-up, reset) |
 * | 5 | RESP_VALUE | manager | the answer |
 * | 6 | RESP_STATUS | manager | 0 ok, else a `MailboxStatus` |
 * | 7 | HOST_GONE | manager | 1 once the manager has let go (the container stops waiting) |
 * | 8 | HOST_POLLED | manager | 1 while it applies the ring every event-loop turn (POLLED) |
 *
 * The request ring starts at byte 64: RING_ENTRIES entries of 16 bytes, `u32 word0` (op | width
 * << 8 | space << 16), `u32 offset`, `u32 value`, `u32 reserved`, in program order, so a read is
 * ordered after every earlier write, as on PCI. Answers go through RESP_*: the manager stores
 * RESP_VALUE and RESP_STATUS, then RESP_SEQ, on which the container spins (Atomics.load, bounded).
 */
import { writeFormat, type SharedFormat } from './format.js';
import type { RingLayout } from './ring.js';

export const MAILBOX_MAGIC = 0x78626d64;
/** Bump on any change of this layout or of its ring's protocol: a container refuses a mailbox of another version. */
export const MAILBOX_VERSION = 1;
export const MAILBOX_BYTES = 8192;
export const RING_OFFSET = 64;
export const RING_ENTRIES = 256;
export const ENTRY_BYTES = 16;
/** Word indices in the header. */
export const W = { MAGIC: 0, VERSION: 1, REQ_TAIL: 2, REQ_HEAD: 3, RESP_SEQ: 4, RESP_VALUE: 5, RESP_STATUS: 6, HOST_GONE: 7, HOST_POLLED: 8 } as const;
export const MAILBOX_FORMAT: SharedFormat = {
  name: 'register mailbox',
  magic: MAILBOX_MAGIC,
  version: MAILBOX_VERSION,
  magicWord: W.MAGIC,
  versionWord: W.VERSION,
};
/** The request ring: the container produces, the manager consumes. */
export const MAILBOX_RING: RingLayout = {
  name: 'register ring',
  tail: W.REQ_TAIL,
  head: W.REQ_HEAD,
  polled: W.HOST_POLLED,
  offset: RING_OFFSET,
  entries: RING_ENTRIES,
  entryBytes: ENTRY_BYTES,
};

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

/**
 * The manager's part of a fresh mailbox, before the container is spawned: the header zeroed but
 * for MAGIC and VERSION (ring indices 0, no answer yet).
 */
export function initMailbox(u32: Uint32Array): void {
  u32.fill(0, 0, RING_OFFSET / 4);
  writeFormat(u32, MAILBOX_FORMAT);
}
