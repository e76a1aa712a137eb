/**
 * The packet rings between the manager and a NIC driver container: one memfd the device cannot
 * reach (the manager never maps it in any IOMMU domain), two eventfds.
 *
 * Frames live in fixed slots of the memfd: `txSlots` TX slots (the manager writes a frame the
 * host sends, the container copies it into a driver TX buffer inside its DMA window) and
 * `rxSlots` RX slots (the container copies a received frame out of the driver's RX buffer into
 * one). Each slot is, at every moment, owned by exactly one side; four rings of 4-byte entries
 * pass ownership:
 *
 * | ring | producer | consumer | entry | meaning |
 * |---|---|---|---|---|
 * | TXS (submit) | manager | container | slot \| len << 16 | "send the frame in this TX slot" |
 * | TXC (complete) | container | manager | slot | "TX slot copied out, yours again" |
 * | RXF (free) | manager | container | slot | "RX slot empty, fill it" |
 * | RXC (complete) | container | manager | slot \| len << 16 | "a frame of len bytes is in this RX slot" |
 *
 * Every ring has as many entries as its slots, so a producer that only posts slots it owns can
 * never overrun it. Indices are free-running u32 counters (`tail - head`, modulo 2^32, is the fill).
 * The producer writes entries, then its tail with Atomics.store; the consumer reads the tail with
 * Atomics.load, then the entries (release/acquire through the atomics). After a batch the producer
 * writes 1 to the other side's eventfd: `kick` (manager -> container) or `notify` (container ->
 * manager).
 *
 * Header (u32 words): the manager writes MAGIC, VERSION and the geometry before the container
 * starts; the container writes the MAC, LINK and its counters. The manager trusts nothing the
 * container writes: see port.ts.
 */

export const NET_MAGIC = 0x6e657472; // 'netr'
/** Bump on any change of this layout (the container refuses a ring of another version). */
export const NET_VERSION = 1;
/** Frames per turn each way (issue 7: batching up to 32). */
export const NET_BATCH = 32;
/** Bytes per slot: one untagged frame of up to 2048 bytes (the e1000e driver's buffer size). */
export const NET_SLOT_BYTES = 2048;
/** Largest frame either side may post: 1514 (1500-byte MTU + Ethernet header), no FCS (RCTL.SECRC strips it). */
export const NET_MAX_FRAME = 1514;
/** Smallest: an Ethernet header. */
export const NET_MIN_FRAME = 14;

/** Header word indices. */
export const N = {
  MAGIC: 0,
  VERSION: 1,
  TX_SLOTS: 2,
  RX_SLOTS: 3,
  SLOT_BYTES: 4,
  MAX_FRAME: 5,
  // ring indices (free-running)
  TXS_TAIL: 8, // manager
  TXS_HEAD: 9, // container
  TXC_TAIL: 10, // container
  TXC_HEAD: 11, // manager
  RXF_TAIL: 12, // manager
  RXF_HEAD: 13, // container
  RXC_TAIL: 14, // container
  RXC_HEAD: 15, // manager
  // written by the container (untrusted)
  MAC_LO: 16, // bytes 0..3
  MAC_HI: 17, // bytes 4..5
  LINK: 18, // 1: link up
  SERVING: 19, // 1: the container's server runs
  TX_FRAMES: 20,
  RX_FRAMES: 21,
  RX_NO_SLOT: 22, // frames the driver received while every RX slot was in the manager's hands (kept in the NIC until a slot came back)
} as const;

export const HEADER_BYTES = 128;

export interface NetGeometry {
  txSlots: number;
  rxSlots: number;
}

/** Byte offsets of the four rings and the two slot areas. */
export interface NetLayout extends NetGeometry {
  txs: number;
  txc: number;
  rxf: number;
  rxc: number;
  txArea: number;
  rxArea: number;
  bytes: number;
}

const pageUp = (n: number): number => Math.ceil(n / 4096) * 4096;

export function checkGeometry(g: NetGeometry): void {
  for (const [k, v] of [['txSlots', g.txSlots], ['rxSlots', g.rxSlots]] as const) {
    if (!Number.isInteger(v) || v < NET_BATCH || v > 4096) {
      throw new RangeError(`net ring: ${k} ${v} must be an integer from ${NET_BATCH} to 4096`);
    }
  }
}

export function netLayout(g: NetGeometry): NetLayout {
  checkGeometry(g);
  const txs = HEADER_BYTES;
  const txc = txs + 4 * g.txSlots;
  const rxf = txc + 4 * g.txSlots;
  const rxc = rxf + 4 * g.rxSlots;
  const txArea = pageUp(rxc + 4 * g.rxSlots);
  const rxArea = txArea + g.txSlots * NET_SLOT_BYTES;
  return { ...g, txs, txc, rxf, rxc, txArea, rxArea, bytes: pageUp(rxArea + g.rxSlots * NET_SLOT_BYTES) };
}

/** Pack a ring entry: slot in bits 0..15, frame length in bits 16..31. */
export function entry(slot: number, len: number): number {
  return (slot | (len << 16)) >>> 0;
}
