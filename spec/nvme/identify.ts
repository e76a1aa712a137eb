/**
 * Identify data structures (NVMe 1.4 §5.15.2): the fields of the Identify Controller (CNS 01h,
 * Figure 247), Identify Namespace (CNS 00h, Figure 245) and Active Namespace ID list (CNS 02h)
 * that dmabox uses, as byte offsets, with a parser and an encoder (the simulator uses the encoder,
 * so both sides agree by construction and the tests check the offsets against the spec).
 */

/** Identify data is one 4096-byte page for every CNS value used here (§5.15.2). */
export const IDENTIFY_SIZE = 4096;

/** Identify Controller data structure offsets (§5.15.2.2, Figure 247). */
export const IdCtrl = Object.freeze({
  /** PCI Vendor ID, 2 bytes. */
  VID: 0,
  /** PCI Subsystem Vendor ID, 2 bytes. */
  SSVID: 2,
  /** Serial Number, 20 bytes ASCII, space padded. */
  SN: 4,
  SN_LEN: 20,
  /** Model Number, 40 bytes ASCII, space padded. */
  MN: 24,
  MN_LEN: 40,
  /** Firmware Revision, 8 bytes ASCII. */
  FR: 64,
  FR_LEN: 8,
  /** Maximum Data Transfer Size: 2^MDTS units of CAP.MPSMIN; 0 = no limit. */
  MDTS: 77,
  /** Controller ID, 2 bytes. */
  CNTLID: 78,
  /** Version, 4 bytes (same format as VS). */
  VER: 80,
  /** Abort Command Limit, 0's based. */
  ACL: 258,
  /** Submission Queue Entry Size: bits 3:0 required, 7:4 maximum (log2). */
  SQES: 512,
  /** Completion Queue Entry Size. */
  CQES: 513,
  /** Number of Namespaces, 4 bytes. */
  NN: 516,
  /** Optional NVM Command Support, 2 bytes: bit 2 DSM, bit 3 Write Zeroes. */
  ONCS: 520,
  /** Volatile Write Cache, bit 0 present. */
  VWC: 525,
});

/** ONCS bits (Figure 247). */
export const ONCS_DSM = 1 << 2;
export const ONCS_WRITE_ZEROES = 1 << 3;

/** Identify Namespace data structure offsets (§5.15.2.1, Figure 245). */
export const IdNs = Object.freeze({
  /** Namespace Size, in logical blocks, 8 bytes. */
  NSZE: 0,
  /** Namespace Capacity, 8 bytes. */
  NCAP: 8,
  /** Namespace Utilization, 8 bytes. */
  NUSE: 16,
  NSFEAT: 24,
  /** Number of LBA Formats, 0's based. */
  NLBAF: 25,
  /** Formatted LBA Size: bits 3:0 select the LBA format in use. */
  FLBAS: 26,
  /** LBA Format 0 Support, 4 bytes each, 16 entries (Figure 246: MS 15:0, LBADS 23:16, RP 25:24). */
  LBAF0: 128,
});

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
  /** Block size in bytes, from the LBA format FLBAS selects. */
  blockSize: number;
}

function ascii(b: Uint8Array, off: number, len: number): string {
  let s = '';
  for (let i = 0; i < len; i++) s += String.fromCharCode(b[off + i]!);
  return s.replace(/[\0 ]+$/, '');
}

function putAscii(b: Uint8Array, off: number, len: number, s: string): void {
  for (let i = 0; i < len; i++) b[off + i] = i < s.length ? s.charCodeAt(i) & 0x7f : 0x20;
}

export function parseIdentifyController(b: Uint8Array): IdentifyController {
  const v = new DataView(b.buffer, b.byteOffset, IDENTIFY_SIZE);
  return {
    vid: v.getUint16(IdCtrl.VID, true),
    ssvid: v.getUint16(IdCtrl.SSVID, true),
    serial: ascii(b, IdCtrl.SN, IdCtrl.SN_LEN),
    model: ascii(b, IdCtrl.MN, IdCtrl.MN_LEN),
    firmware: ascii(b, IdCtrl.FR, IdCtrl.FR_LEN),
    mdts: b[IdCtrl.MDTS]!,
    cntlid: v.getUint16(IdCtrl.CNTLID, true),
    version: v.getUint32(IdCtrl.VER, true),
    abortLimit: b[IdCtrl.ACL]! + 1,
    sqes: b[IdCtrl.SQES]!,
    cqes: b[IdCtrl.CQES]!,
    nn: v.getUint32(IdCtrl.NN, true),
    oncs: v.getUint16(IdCtrl.ONCS, true),
    vwc: b[IdCtrl.VWC]!,
  };
}

export function encodeIdentifyController(c: IdentifyController, b: Uint8Array): void {
  const v = new DataView(b.buffer, b.byteOffset, IDENTIFY_SIZE);
  b.fill(0, 0, IDENTIFY_SIZE);
  v.setUint16(IdCtrl.VID, c.vid, true);
  v.setUint16(IdCtrl.SSVID, c.ssvid, true);
  putAscii(b, IdCtrl.SN, IdCtrl.SN_LEN, c.serial);
  putAscii(b, IdCtrl.MN, IdCtrl.MN_LEN, c.model);
  putAscii(b, IdCtrl.FR, IdCtrl.FR_LEN, c.firmware);
  b[IdCtrl.MDTS] = c.mdts;
  v.setUint16(IdCtrl.CNTLID, c.cntlid, true);
  v.setUint32(IdCtrl.VER, c.version, true);
  b[IdCtrl.ACL] = Math.max(0, c.abortLimit - 1);
  b[IdCtrl.SQES] = c.sqes;
  b[IdCtrl.CQES] = c.cqes;
  v.setUint32(IdCtrl.NN, c.nn, true);
  v.setUint16(IdCtrl.ONCS, c.oncs, true);
  b[IdCtrl.VWC] = c.vwc;
}

export function parseIdentifyNamespace(b: Uint8Array): IdentifyNamespace {
  const v = new DataView(b.buffer, b.byteOffset, IDENTIFY_SIZE);
  const nlbaf = b[IdNs.NLBAF]!;
  const flbas = b[IdNs.FLBAS]!;
  const lbaf: LbaFormat[] = [];
  for (let i = 0; i <= nlbaf && i < 16; i++) {
    const d = v.getUint32(IdNs.LBAF0 + 4 * i, true);
    lbaf.push({ ms: d & 0xffff, lbads: (d >>> 16) & 0xff, rp: (d >>> 24) & 3 });
  }
  const fmt = lbaf[flbas & 0xf];
  return {
    nsze: v.getBigUint64(IdNs.NSZE, true),
    ncap: v.getBigUint64(IdNs.NCAP, true),
    nuse: v.getBigUint64(IdNs.NUSE, true),
    nlbaf,
    flbas,
    lbaf,
    // An LBADS below 9 means "not supported" (§5.15.2.1): 0 marks an unusable namespace.
    blockSize: fmt && fmt.lbads >= 9 ? 2 ** fmt.lbads : 0,
  };
}

export function encodeIdentifyNamespace(n: Omit<IdentifyNamespace, 'blockSize'>, b: Uint8Array): void {
  const v = new DataView(b.buffer, b.byteOffset, IDENTIFY_SIZE);
  b.fill(0, 0, IDENTIFY_SIZE);
  v.setBigUint64(IdNs.NSZE, n.nsze, true);
  v.setBigUint64(IdNs.NCAP, n.ncap, true);
  v.setBigUint64(IdNs.NUSE, n.nuse, true);
  b[IdNs.NLBAF] = n.nlbaf;
  b[IdNs.FLBAS] = n.flbas;
  n.lbaf.forEach((f, i) => v.setUint32(IdNs.LBAF0 + 4 * i, (f.ms & 0xffff) | ((f.lbads & 0xff) << 16) | ((f.rp & 3) << 24), true));
}

/** Active Namespace ID list (CNS 02h, §5.15.2.3): up to 1024 NSIDs ascending, zero-terminated. */
export function parseNamespaceList(b: Uint8Array): number[] {
  const v = new DataView(b.buffer, b.byteOffset, IDENTIFY_SIZE);
  const out: number[] = [];
  for (let i = 0; i < 1024; i++) {
    const id = v.getUint32(4 * i, true);
    if (id === 0) break;
    out.push(id);
  }
  return out;
}
