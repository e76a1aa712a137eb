/**
 * The packet rings between the manager and a NIC driver container: one memfd the device cannot
 * reach (the manager never maps it in any IOMMU domain), two eventfds (`kick`: manager ->
 * container, `notify`: container -> manager). README.md, "The packet rings", is its document.
 *
 * Frames live in fixed slots of the memfd: `txSlots` TX slots (the manager writes a frame the
 * host sends, the container copies it into a driver TX buffer inside its DMA window) and
 * `rxSlots` RX slots (the container copies a received frame out of the driver's RX buffer into
 * one). Each slot is, at every moment, owned by exactly one side; four rings (ring.ts) of 4-byte
 * entries pass ownership:
 *
 * | ring | producer | consumer | entry | meaning |
 * |---|---|---|---|---|
 * | TXS (submit) | manager | container | slot \| len << 16 | "send the frame in this TX slot" |
 * | TXC (complete) | container | manager | slot | "TX slot copied out, yours again" |
 * | RXF (free) | manager | container | slot | "RX slot empty, fill it" |
 * | RXC (complete) | container | manager | slot \| len << 16 | "a frame of len bytes is in this RX slot" |
 *
 * Every ring has as many entries as its slots, so a producer that only posts slots it owns can
 * never overrun it. The header (`N`): the manager writes MAGIC, VERSION and the geometry before
 * the container starts; the container writes the MAC, LINK and its counters.
 */
import { AbiError } from './errors.js';
import type { SharedFormat } from './format.js';
import type { RingLayout } from './ring.js';

export const NET_MAGIC = 0x6e657472; // 'netr'
/**
 * Bump on any change of this layout or of its rings' protocol (the container refuses rings of
 * another version). 2: the rings follow ring.ts (no kick while the consumer is behind or polls; a
 * consumer looks at the tail again after publishing its head; TXS_POLLED, RXF_POLLED), where 1
 * kicked after every batch.
 */
export const NET_VERSION = 2;
/** Frames per turn each way: the TAP bridge and the container move up to 32 at a time. */
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
  // 1 while the container looks at TXS / RXF every turn (ring.ts POLLED): the manager's kicks may be left out
  TXS_POLLED: 6, // container
  RXF_POLLED: 7, // container
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

export const NET_FORMAT: SharedFormat = { name: 'packet rings', magic: NET_MAGIC, version: NET_VERSION, magicWord: N.MAGIC, versionWord: N.VERSION };

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
  for (const [k, v] of [
    ['txSlots', g.txSlots],
    ['rxSlots', g.rxSlots],
  ] as const) {
    if (!Number.isInteger(v) || v < NET_BATCH || v > 4096) {
      throw new AbiError('ERR_ABI_GEOMETRY', `packet rings: ${k} ${v} must be an integer from ${NET_BATCH} to 4096`);
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

/** The four rings of a layout: the container may poll the two it consumes; the manager polls none. */
export function netRings(L: NetLayout): { txs: RingLayout; txc: RingLayout; rxf: RingLayout; rxc: RingLayout } {
  const ring = (name: string, tail: number, head: number, polled: number, offset: number, entries: number): RingLayout => ({
    name,
    tail,
    head,
    polled,
    offset,
    entries,
    entryBytes: 4,
  });
  return {
    txs: ring('TX submit ring', N.TXS_TAIL, N.TXS_HEAD, N.TXS_POLLED, L.txs, L.txSlots),
    txc: ring('TX completion ring', N.TXC_TAIL, N.TXC_HEAD, -1, L.txc, L.txSlots),
    rxf: ring('RX free ring', N.RXF_TAIL, N.RXF_HEAD, N.RXF_POLLED, L.rxf, L.rxSlots),
    rxc: ring('RX completion ring', N.RXC_TAIL, N.RXC_HEAD, -1, L.rxc, L.rxSlots),
  };
}

/** Pack a ring entry: slot in bits 0..15, frame length in bits 16..31. */
export function entry(slot: number, len: number): number {
  return (slot | (len << 16)) >>> 0;
}
