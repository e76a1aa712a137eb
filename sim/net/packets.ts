/**
 * The few frames the simulated peers speak: ARP (RFC 826) over Ethernet II and ICMP echo (RFC 792)
 * over IPv4 (RFC 791). Control path only (a peer answering pings), so plain allocation is fine.
 */

import { ETHERTYPE } from '../../spec/e1000e/ethernet.js';
import { SimError } from '../errors.js';

const ARP_REQUEST = 1,
  ARP_REPLY = 2;
const IPPROTO_ICMP = 1;
const ICMP_ECHO_REPLY = 0,
  ICMP_ECHO_REQUEST = 8;
export const BROADCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** `10.0.2.2` -> 4 bytes. */
export function ipv4(text: string): Uint8Array {
  const p = text.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new SimError('ERR_SIM_ARG', `not an IPv4 address: ${text}`, { fix: 'write four decimal bytes with dots, e.g. 10.0.2.2' });
  return Uint8Array.from(p);
}

/** `52:54:00:12:34:56` -> 6 bytes. */
export function parseMac(text: string): Uint8Array {
  const p = text.split(':');
  if (p.length !== 6 || p.some((x) => !/^[0-9a-fA-F]{2}$/.test(x)))
    throw new SimError('ERR_SIM_ARG', `not a MAC address: ${text}`, { fix: 'write six hexadecimal bytes with colons, e.g. 52:54:00:12:34:56' });
  return Uint8Array.from(p.map((x) => parseInt(x, 16)));
}

const eq = (a: Uint8Array, aOff: number, b: Uint8Array): boolean => b.every((v, i) => a[aOff + i] === v);

/** The Internet checksum (RFC 1071) of `len` bytes at `off`. */
export function inetChecksum(b: Uint8Array, off: number, len: number): number {
  let sum = 0;
  for (let i = 0; i + 1 < len; i += 2) sum += (b[off + i]! << 8) | b[off + i + 1]!;
  if (len & 1) sum += b[off + len - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The EtherType of frame `f` (bytes 12..13, big-endian). */
function etherType(f: Uint8Array): number {
  return (f[12]! << 8) | f[13]!;
}

function etherHeader(f: Uint8Array, dst: Uint8Array, src: Uint8Array, type: number): void {
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = type >>> 8;
  f[13] = type & 0xff;
}

/** An ARP request or reply (42 bytes; the NIC pads it to 60). */
export function arpFrame(op: 'request' | 'reply', srcMac: Uint8Array, srcIp: Uint8Array, dstMac: Uint8Array, dstIp: Uint8Array): Uint8Array {
  const f = new Uint8Array(42);
  etherHeader(f, op === 'request' ? BROADCAST : dstMac, srcMac, ETHERTYPE.ARP);
  f.set([0, 1, ETHERTYPE.IPV4 >>> 8, ETHERTYPE.IPV4 & 0xff, 6, 4, 0, op === 'request' ? ARP_REQUEST : ARP_REPLY], 14); // htype Ethernet, ptype IPv4, hlen, plen, op
  f.set(srcMac, 22);
  f.set(srcIp, 28);
  if (op === 'reply') f.set(dstMac, 32);
  f.set(dstIp, 38);
  return f;
}

/** An ICMP echo request or reply with `payload`. */
export function icmpEcho(
  type: 'request' | 'reply',
  srcMac: Uint8Array,
  dstMac: Uint8Array,
  srcIp: Uint8Array,
  dstIp: Uint8Array,
  id: number,
  seq: number,
  payload: Uint8Array,
): Uint8Array {
  const ipLen = 20 + 8 + payload.length;
  const f = new Uint8Array(14 + ipLen);
  etherHeader(f, dstMac, srcMac, ETHERTYPE.IPV4);
  const ip = 14;
  f[ip] = 0x45;
  f[ip + 2] = ipLen >>> 8;
  f[ip + 3] = ipLen & 0xff;
  f[ip + 8] = 64; // TTL
  f[ip + 9] = IPPROTO_ICMP;
  f.set(srcIp, ip + 12);
  f.set(dstIp, ip + 16);
  const c = inetChecksum(f, ip, 20);
  f[ip + 10] = c >>> 8;
  f[ip + 11] = c & 0xff;
  const icmp = ip + 20;
  f[icmp] = type === 'request' ? ICMP_ECHO_REQUEST : ICMP_ECHO_REPLY;
  f[icmp + 4] = (id >>> 8) & 0xff;
  f[icmp + 5] = id & 0xff;
  f[icmp + 6] = (seq >>> 8) & 0xff;
  f[icmp + 7] = seq & 0xff;
  f.set(payload, icmp + 8);
  const ic = inetChecksum(f, icmp, 8 + payload.length);
  f[icmp + 2] = ic >>> 8;
  f[icmp + 3] = ic & 0xff;
  return f;
}

/** An ARP request for `ip` in `f` (of `len` bytes): the sender's MAC and IP, or null. */
export function arpRequestFor(f: Uint8Array, len: number, ip: Uint8Array): { mac: Uint8Array; ip: Uint8Array } | null {
  if (len < 42 || etherType(f) !== ETHERTYPE.ARP || f[20] !== 0 || f[21] !== ARP_REQUEST || !eq(f, 38, ip)) return null;
  return { mac: f.slice(22, 28), ip: f.slice(28, 32) };
}

/** An ARP reply from `ip` in `f`: the sender's MAC, or null. */
export function arpReplyFrom(f: Uint8Array, len: number, ip: Uint8Array): Uint8Array | null {
  if (len < 42 || etherType(f) !== ETHERTYPE.ARP || f[20] !== 0 || f[21] !== ARP_REPLY || !eq(f, 28, ip)) return null;
  return f.slice(22, 28);
}

export interface IcmpEcho {
  srcMac: Uint8Array;
  srcIp: Uint8Array;
  dstIp: Uint8Array;
  id: number;
  seq: number;
  payload: Uint8Array;
}

/** An ICMP echo (request or reply, as asked) to `ip`, with a correct IPv4 header checksum, or null. */
export function icmpEchoTo(f: Uint8Array, len: number, ip: Uint8Array, type: 'request' | 'reply'): IcmpEcho | null {
  if (len < 42 || etherType(f) !== ETHERTYPE.IPV4 || f[14] !== 0x45 || f[23] !== IPPROTO_ICMP || !eq(f, 30, ip)) return null;
  const ipLen = (f[16]! << 8) | f[17]!;
  if (ipLen < 28 || 14 + ipLen > len || inetChecksum(f, 14, 20) !== 0) return null;
  if (f[34] !== (type === 'request' ? ICMP_ECHO_REQUEST : ICMP_ECHO_REPLY)) return null;
  return {
    srcMac: f.slice(6, 12),
    srcIp: f.slice(26, 30),
    dstIp: f.slice(30, 34),
    id: (f[38]! << 8) | f[39]!,
    seq: (f[40]! << 8) | f[41]!,
    payload: f.slice(42, 14 + ipLen),
  };
}
