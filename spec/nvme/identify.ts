/**
 * Identify data structures (NVMe 1.4 §5.15.2): Identify Controller (CNS 01h), Identify Namespace
 * (CNS 00h) and the Active Namespace ID list (CNS 02h), as `struct`s in the style of
 * spec/field.ts (the members dmabox uses; the rest of each 4096-byte page is left undeclared),
 * with a decoder and an encoder for each. The driver decodes; the simulated controller encodes;
 * so both sides agree by construction, and test/spec/nvme checks the offsets against the spec.
 */
import { bit, bits, bytes, getField, setField, struct, u16, u32, u64, u8, type Member } from '../field.js';

/** Identify data is one 4096-byte page for every CNS value used here (§5.15.2). */
export const IDENTIFY_SIZE = 4096;

/** Identify Controller data structure (§5.15.2.2). */
export const ID_CTRL = struct(IDENTIFY_SIZE, 'NVMe 1.4 §5.15.2.2', {
  /** PCI Vendor ID. */
  VID: u16(0),
  /** PCI Subsystem Vendor ID. */
  SSVID: u16(2),
  /** Serial Number, ASCII, space padded. */
  SN: bytes(4, 20),
  /** Model Number, ASCII, space padded. */
  MN: bytes(24, 40),
  /** Firmware Revision, ASCII, space padded. */
  FR: bytes(64, 8),
  /** Maximum Data Transfer Size: 2 ^ MDTS units of CAP.MPSMIN; 0 = no limit. */
  MDTS: u8(77),
  /** Controller ID. */
  CNTLID: u16(78),
  /** Version, in VS's format. */
  VER: u32(80),
  /** Abort Command Limit, 0's based. */
  ACL: u8(258),
  /** Submission Queue Entry Size (fields in QUEUE_ENTRY_SIZES). */
  SQES: u8(512),
  /** Completion Queue Entry Size (fields in QUEUE_ENTRY_SIZES). */
  CQES: u8(513),
  /** Number of Namespaces: the largest NSID. */
  NN: u32(516),
  /** Optional NVM Command Support (fields in ONCS). */
  ONCS: u16(520),
  /** Volatile Write Cache (fields in VWC). */
  VWC: u8(525),
});

/** Identify Controller SQES and CQES: log2 of entry sizes (§5.15.2.2). */
export const QUEUE_ENTRY_SIZES = Object.freeze({
  /** The required (smallest) entry size. */
  REQUIRED: bits(3, 0, 'NVMe 1.4 §5.15.2.2'),
  /** The largest entry size supported. */
  MAXIMUM: bits(7, 4, 'NVMe 1.4 §5.15.2.2'),
});

/** Identify Controller ONCS, Optional NVM Command Support (§5.15.2.2). */
export const ONCS = Object.freeze({
  COMPARE: bit(0, 'NVMe 1.4 §5.15.2.2'),
  WRITE_UNCORRECTABLE: bit(1, 'NVMe 1.4 §5.15.2.2'),
  /** Dataset Management (deallocate, §6.7). */
  DSM: bit(2, 'NVMe 1.4 §5.15.2.2'),
  /** Write Zeroes (§6.17). */
  WRITE_ZEROES: bit(3, 'NVMe 1.4 §5.15.2.2'),
  /** Set Features Save and Select in Get Features. */
  SAVE_SELECT: bit(4, 'NVMe 1.4 §5.15.2.2'),
  RESERVATIONS: bit(5, 'NVMe 1.4 §5.15.2.2'),
  TIMESTAMP: bit(6, 'NVMe 1.4 §5.15.2.2'),
  VERIFY: bit(7, 'NVMe 1.4 §5.15.2.2'),
});

/** The ONCS bits the block exports test, as masks (`oncs & ONCS_DSM`). */
export const ONCS_DSM = ONCS.DSM.mask;
export const ONCS_WRITE_ZEROES = ONCS.WRITE_ZEROES.mask;

/** Identify Controller VWC, Volatile Write Cache (§5.15.2.2). */
export const VWC = Object.freeze({
  /** A volatile write cache is present: Flush (§6.8) makes writes durable. */
  PRESENT: bit(0, 'NVMe 1.4 §5.15.2.2'),
});

/** Identify Namespace data structure (§5.15.2.1). */
export const ID_NS = struct(IDENTIFY_SIZE, 'NVMe 1.4 §5.15.2.1', {
  /** Namespace Size, in logical blocks. */
  NSZE: u64(0),
  /** Namespace Capacity, in logical blocks. */
  NCAP: u64(8),
  /** Namespace Utilization, in logical blocks. */
  NUSE: u64(16),
  /** Namespace Features. */
  NSFEAT: u8(24),
  /** Number of LBA Formats, 0's based. */
  NLBAF: u8(25),
  /** Formatted LBA Size (fields in FLBAS). */
  FLBAS: u8(26),
  /** LBA Format 0 to 15 Support, 4 bytes each (fields in LBAF). */
  LBAF: bytes(128, 64),
});

/** Identify Namespace FLBAS (§5.15.2.1). */
export const FLBAS = Object.freeze({
  /** The LBA format in use (index into LBAF). */
  FORMAT: bits(3, 0, 'NVMe 1.4 §5.15.2.1'),
  /** Metadata at the end of each block's data (extended LBA). */
  EXTENDED: bit(4, 'NVMe 1.4 §5.15.2.1'),
});

/** One LBA Format entry of Identify Namespace (§5.15.2.1). */
export const LBAF = Object.freeze({
  /** Metadata Size, bytes per block. */
  MS: bits(15, 0, 'NVMe 1.4 §5.15.2.1'),
  /** LBA Data Size: log2 of the block size; below 9 the format is not supported. */
  LBADS: bits(23, 16, 'NVMe 1.4 §5.15.2.1'),
  /** Relative Performance. */
  RP: bits(25, 24, 'NVMe 1.4 §5.15.2.1'),
});
/** Bytes of one LBAF entry; there are 16. */
export const LBAF_BYTES = 4;
/** The smallest LBADS of a usable format: 512-byte blocks. */
export const LBADS_MIN = 9;

/** Active Namespace ID list (CNS 02h, §5.15.2): NSIDs ascending, zero terminated. */
export const NS_LIST = struct(IDENTIFY_SIZE, 'NVMe 1.4 §5.15.2', {
  /** Up to 1024 NSIDs of 4 bytes each. */
  IDS: bytes(0, IDENTIFY_SIZE),
});
/** NSIDs one list holds. */
export const NS_LIST_MAX = IDENTIFY_SIZE / 4;

export interface IdentifyController {
  vid: number;
  ssvid: number;
  serial: string;
  model: string;
  firmware: string;
  /** Raw MDTS (log2 of units of the minimum page size; 0 = no limit). */
  mdts: number;
  cntlid: number;
  version: number;
  /** Abort Command Limit, as a count (ACL + 1). */
  abortLimit: number;
  sqes: number;
  cqes: number;
  nn: number;
  oncs: number;
  vwc: number;
}

export interface LbaFormat {
  /** Metadata size per block, bytes. */
  ms: number;
  /** LBA data size, log2 of bytes. */
  lbads: number;
  /** Relative performance. */
  rp: number;
}

export interface IdentifyNamespace {
  nsze: bigint;
  ncap: bigint;
  nuse: bigint;
  nlbaf: number;
  flbas: number;
  lbaf: LbaFormat[];
  /** Block size in bytes, from the LBA format FLBAS selects; 0 when that format is unusable. */
  blockSize: number;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, IDENTIFY_SIZE);
}

function ascii(b: Uint8Array, m: Member): string {
  let s = '';
  for (let i = 0; i < m.size; i++) s += String.fromCharCode(b[m.offset + i]!);
  return s.replace(/[\0 ]+$/, '');
}

function putAscii(b: Uint8Array, m: Member, s: string): void {
  for (let i = 0; i < m.size; i++) b[m.offset + i] = i < s.length ? s.charCodeAt(i) & 0x7f : 0x20;
}

export function parseIdentifyController(b: Uint8Array): IdentifyController {
  const v = view(b);
  return {
    vid: v.getUint16(ID_CTRL.VID.offset, true),
    ssvid: v.getUint16(ID_CTRL.SSVID.offset, true),
    serial: ascii(b, ID_CTRL.SN),
    model: ascii(b, ID_CTRL.MN),
    firmware: ascii(b, ID_CTRL.FR),
    mdts: b[ID_CTRL.MDTS.offset]!,
    cntlid: v.getUint16(ID_CTRL.CNTLID.offset, true),
    version: v.getUint32(ID_CTRL.VER.offset, true),
    abortLimit: b[ID_CTRL.ACL.offset]! + 1,
    sqes: b[ID_CTRL.SQES.offset]!,
    cqes: b[ID_CTRL.CQES.offset]!,
    nn: v.getUint32(ID_CTRL.NN.offset, true),
    oncs: v.getUint16(ID_CTRL.ONCS.offset, true),
    vwc: b[ID_CTRL.VWC.offset]!,
  };
}

export function encodeIdentifyController(c: IdentifyController, b: Uint8Array): void {
  const v = view(b);
  b.fill(0, 0, IDENTIFY_SIZE);
  v.setUint16(ID_CTRL.VID.offset, c.vid, true);
  v.setUint16(ID_CTRL.SSVID.offset, c.ssvid, true);
  putAscii(b, ID_CTRL.SN, c.serial);
  putAscii(b, ID_CTRL.MN, c.model);
  putAscii(b, ID_CTRL.FR, c.firmware);
  b[ID_CTRL.MDTS.offset] = c.mdts;
  v.setUint16(ID_CTRL.CNTLID.offset, c.cntlid, true);
  v.setUint32(ID_CTRL.VER.offset, c.version, true);
  b[ID_CTRL.ACL.offset] = Math.max(0, c.abortLimit - 1);
  b[ID_CTRL.SQES.offset] = c.sqes;
  b[ID_CTRL.CQES.offset] = c.cqes;
  v.setUint32(ID_CTRL.NN.offset, c.nn, true);
  v.setUint16(ID_CTRL.ONCS.offset, c.oncs, true);
  b[ID_CTRL.VWC.offset] = c.vwc;
}

export function parseIdentifyNamespace(b: Uint8Array): IdentifyNamespace {
  const v = view(b);
  const nlbaf = b[ID_NS.NLBAF.offset]!;
  const flbas = b[ID_NS.FLBAS.offset]!;
  const lbaf: LbaFormat[] = [];
  for (let i = 0; i <= nlbaf && i < ID_NS.LBAF.size / LBAF_BYTES; i++) {
    const d = v.getUint32(ID_NS.LBAF.offset + LBAF_BYTES * i, true);
    lbaf.push({ ms: getField(d, LBAF.MS), lbads: getField(d, LBAF.LBADS), rp: getField(d, LBAF.RP) });
  }
  const fmt = lbaf[getField(flbas, FLBAS.FORMAT)];
  return {
    nsze: v.getBigUint64(ID_NS.NSZE.offset, true),
    ncap: v.getBigUint64(ID_NS.NCAP.offset, true),
    nuse: v.getBigUint64(ID_NS.NUSE.offset, true),
    nlbaf,
    flbas,
    lbaf,
    // An LBADS below 9 means "not supported" (§5.15.2.1): 0 marks an unusable namespace.
    blockSize: fmt && fmt.lbads >= LBADS_MIN ? 2 ** fmt.lbads : 0,
  };
}

export function encodeIdentifyNamespace(n: Omit<IdentifyNamespace, 'blockSize'>, b: Uint8Array): void {
  const v = view(b);
  b.fill(0, 0, IDENTIFY_SIZE);
  v.setBigUint64(ID_NS.NSZE.offset, n.nsze, true);
  v.setBigUint64(ID_NS.NCAP.offset, n.ncap, true);
  v.setBigUint64(ID_NS.NUSE.offset, n.nuse, true);
  b[ID_NS.NLBAF.offset] = n.nlbaf;
  b[ID_NS.FLBAS.offset] = n.flbas;
  n.lbaf.forEach((f, i) => {
    const d = setField(setField(setField(0, LBAF.MS, f.ms), LBAF.LBADS, f.lbads), LBAF.RP, f.rp);
    v.setUint32(ID_NS.LBAF.offset + LBAF_BYTES * i, d, true);
  });
}

/** The NSIDs of an Active Namespace ID list, up to the first 0 (§5.15.2). */
export function parseNamespaceList(b: Uint8Array): number[] {
  const v = view(b);
  const out: number[] = [];
  for (let i = 0; i < NS_LIST_MAX; i++) {
    const id = v.getUint32(NS_LIST.IDS.offset + 4 * i, true);
    if (id === 0) break;
    out.push(id);
  }
  return out;
}

/** Write an Active Namespace ID list: the NSIDs above `after`, ascending, at most NS_LIST_MAX, then zeroes. */
export function encodeNamespaceList(nsids: readonly number[], after: number, b: Uint8Array): void {
  const v = view(b);
  b.fill(0, 0, IDENTIFY_SIZE);
  let i = 0;
  for (const id of [...nsids].sort((x, y) => x - y)) {
    if (id > after && i < NS_LIST_MAX) v.setUint32(NS_LIST.IDS.offset + 4 * i++, id, true);
  }
}
