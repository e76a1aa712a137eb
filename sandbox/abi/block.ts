/**
 * The sandbox block ring: block I/O between the manager (`SandboxBlockClient`) and the driver in a
 * container (`BlockServer`), in one shared memfd with two eventfds (requests posted, completions
 * posted). It is the data path the linkback (NBD, issue 7) is built on.
 *
 * Header (u32 words):
 *
 * | word | name | writer | meaning |
 * |---|---|---|---|
 * | 0 | MAGIC | manager | `0x6b6c6264` ("dblk") |
 * | 1 | ENTRIES | manager | N: tags 0..N-1, N SQ and N CQ entries |
 * | 2 | SLOT_BYTES | manager | data buffer bytes per tag |
 * | 3 | BLOCK_SIZE | container | the device's logical block size, set before READY |
 * | 4, 5 | BLOCKS_LO, BLOCKS_HI | container | the device's size in blocks |
 * | 6 | SQ_TAIL | manager | requests posted (free-running) |
 * | 7 | SQ_HEAD | container | requests taken |
 * | 8 | CQ_TAIL | container | completions posted (free-running) |
 * | 9 | CQ_HEAD | manager | completions taken |
 * | 10 | SQ_POLLED | container | 1 while it looks at SQ_TAIL every turn: request kicks may be left out |
 * | 11 | CQ_POLLED | manager | 1 while it looks at CQ_TAIL every turn: completion kicks may be left out |
 * | 12 | CAPS | container | what the device does besides READ, WRITE and FLUSH (`BlockCap`), set before READY |
 *
 * SQ entry (32 bytes at 64 + 32 i): `u32 tag, u32 gen, u32 op, u32 blocks, u32 lbaLo, u32 lbaHi,
 * u32 flags, 0`. `flags` is 0 but for WRITE_ZEROES, where `BlockFlag.NO_HOLE` asks for allocated
 * zeroes (no deallocation), and WRITE, where `BlockFlag.FUA` asks for the data to be durable when
 * the request completes (only when CAPS offers it). DISCARD and WRITE_ZEROES carry no data, so their `blocks` is bounded by
 * the device, not by the slot; they are posted only when CAPS offers them.
 * CQ entry (16 bytes after the SQ): `u32 tag, u32 gen, u32 status, 0`. `gen` changes each time a
 * tag is reused, so a stale or forged completion cannot settle a newer request.
 *
 * Kicks: a side that posts (requests: the manager, completions: the container) stores its tail,
 * then kicks the other side's eventfd, except when the other side's head is behind the first
 * entry just posted (it has not yet taken the entries posted before). It may leave the kick out
 * because the taker, after storing its head, loads the tail again and goes on while it moved (a
 * store, a full fence (fence.ts), then the load, on both sides, so one of the two always sees the
 * other). A head equal to or past the first new entry gets the kick: the taker may have taken it
 * and gone to sleep. A head is only ever such a hint to the poster.
 *
 * Polling (hybrid, as NAPI busy-poll or SPDK do it): a taker that looks at the other side's tail
 * on every event-loop turn anyway sets its POLLED word, and the poster then leaves its kick out
 * (the poster stores its tail, fences, then loads POLLED). The taker stops polling by storing 0,
 * fencing, and looking at the tail once more, so one of the two always sees the other. Each kick
 * left out is an eventfd write and a wake-up saved; on a VM a sleeping process takes ~50 us to
 * wake (bench/RESULTS.md). POLLED is a hint like the heads: a container that sets SQ_POLLED and
 * does not poll only stops being kicked, and its requests time out (hang detection).
 *
 * Data is not in this memfd: it lives in the DMA windows, so the device moves it directly. Tag t
 * owns `SLOT_BYTES` at `t * SLOT_BYTES` of two areas the manager reserves at the start of the
 * largest window of each device permission: the write-data area (device-read-only: the manager
 * fills it, the device reads it for WRITE) and the read-data area (device-write-only: the device
 * fills it for READ, the manager copies it out). The container only builds the commands (PRPs
 * pointing into those areas); it never copies block data.
 */
export const BLOCK_MAGIC = 0x6b6c6264;
export const B = { MAGIC: 0, ENTRIES: 1, SLOT_BYTES: 2, BLOCK_SIZE: 3, BLOCKS_LO: 4, BLOCKS_HI: 5, SQ_TAIL: 6, SQ_HEAD: 7, CQ_TAIL: 8, CQ_HEAD: 9, SQ_POLLED: 10, CQ_POLLED: 11, CAPS: 12 } as const;
export const SQ_OFFSET = 64;
export const SQE_BYTES = 32;
export const CQE_BYTES = 16;

export const enum BlockOp {
  READ = 1,
  WRITE = 2,
  FLUSH = 3,
  /** Deallocate the blocks (NVMe Dataset Management, AD; NBD_CMD_TRIM). */
  DISCARD = 4,
  /** Zero the blocks, deallocating them unless NO_HOLE (NVMe Write Zeroes; NBD_CMD_WRITE_ZEROES). */
  WRITE_ZEROES = 5,
}

/** CAPS bits. */
export const enum BlockCap {
  DISCARD = 1,
  WRITE_ZEROES = 2,
  /** WRITE honours BlockFlag.FUA (NVMe: the FUA bit of Write, §6.15). */
  FUA = 4,
}
export const BLOCK_CAPS_KNOWN = 7;

/** SQ entry flags. */
export const enum BlockFlag {
  /** WRITE_ZEROES: the zeroed blocks must stay allocated. */
  NO_HOLE = 1,
  /** WRITE: durable when completed (Force Unit Access), offered in CAPS. */
  FUA = 2,
}

export const enum BlockStatus {
  OK = 0,
  /** A malformed request (op, tag, length). */
  BAD_REQUEST = 1,
  /** Outside the device. */
  RANGE = 2,
  /** The device reported an error. */
  IO_ERROR = 3,
}

export interface RingGeometry {
  entries: number;
  slotBytes: number;
}

export function cqOffset(g: RingGeometry): number {
  return SQ_OFFSET + g.entries * SQE_BYTES;
}

/** Bytes of the ring memfd (header, SQ and CQ), page-rounded. */
export function ringBytes(g: RingGeometry): number {
  return Math.ceil((cqOffset(g) + g.entries * CQE_BYTES) / 4096) * 4096;
}

/** Bytes of each data area (one per direction). */
export function dataAreaBytes(g: RingGeometry): number {
  return g.entries * g.slotBytes;
}

/** Where the data areas are: the manager's views (client) or the device's addresses (server). */
export interface DataAreas<T> {
  /** Device-write-only: READ data lands here. */
  read: T;
  /** Device-read-only: WRITE data is taken from here. */
  write: T;
}

export function checkGeometry(g: RingGeometry): void {
  if (!Number.isInteger(g.entries) || g.entries < 1 || g.entries > 1024) throw new RangeError(`block ring entries ${g.entries}: expected 1 to 1024`);
  if (!Number.isInteger(g.slotBytes) || g.slotBytes < 4096 || g.slotBytes > 1 << 21 || g.slotBytes % 4096 !== 0) {
    throw new RangeError(`block ring slot size ${g.slotBytes}: expected a multiple of 4096 from 4 KiB to 2 MiB`);
  }
}
