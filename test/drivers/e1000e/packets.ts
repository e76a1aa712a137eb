/**
 * Just enough Ethernet, ARP (RFC 826) and IPv4/ICMP (RFC 791, RFC 792) to talk to QEMU's slirp
 * (10.0.2.2, the guest being 10.0.2.15) and to a stand-in for it on the simulated wire.
 */
import { ETHERTYPE } from '../../../spec/e1000e/ethernet.js';

export const BROADCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] as const;
export const GUEST_IP = [10, 0, 2, 15] as const;
export const GATEWAY_IP = [10, 0, 2, 2] as const;

type Bytes = ArrayLike<number>;

function eq(a: Bytes, ai: number, b: Bytes): boolean {
  for (let i = 0; i < b.length; i++) if (a[ai + i] !== b[i]) return false;
  return true;
}

function ethHeader(f: Uint8Array, dst: Bytes, src: Bytes, type: number): void {
  f.set(Array.from(dst), 0);
  f.set(Array.from(src), 6);
  f[12] = type >>> 8;
  f[13] = type & 0xff;
}

/** ARP request (RFC 826): who has `targetIp`? tell `srcIp`. 42 bytes. */
export function arpRequest(srcMac: Bytes, srcIp: Bytes, targetIp: Bytes): Uint8Array {
  const f = new Uint8Array(42);
  ethHeader(f, BROADCAST, srcMac, ETHERTYPE.ARP);
  f.set([0, 1, 0x08, 0x00, 6, 4, 0, 1], 14); // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request
  f.set(Array.from(srcMac), 22);
  f.set(Array.from(srcIp), 28);
  f.set(Array.from(targetIp), 38); // target MAC (32..37) left zero
  return f;
}

export interface ArpReply {
  senderMac: Uint8Array;
  senderIp: Uint8Array;
  targetMac: Uint8Array;
  targetIp: Uint8Array;
}

/** Parse an ARP reply (op 2); null for anything else. */
export function parseArpReply(f: Uint8Array): ArpReply | null {
  if (f.length < 42 || f[12] !== 0x08 || f[13] !== 0x06) return null;
  if (f[20] !== 0 || f[21] !== 2) return null;
  return { senderMac: f.slice(22, 28), senderIp: f.slice(28, 32), targetMac: f.slice(32, 38), targetIp: f.slice(38, 42) };
}

/** The ones' complement sum of RFC 1071 over f[from, to). */
export function inetChecksum(f: Uint8Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i + 1 < to; i += 2) sum += (f[i]! << 8) | f[i + 1]!;
  if ((to - from) & 1) sum += f[to - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** IPv4 + ICMP echo request (type 8) with `payload`. */
export function icmpEchoRequest(srcMac: Bytes, dstMac: Bytes, srcIp: Bytes, dstIp: Bytes, id: number, seq: number, payload: Uint8Array): Uint8Array {
  const ipLen = 20 + 8 + payload.length;
  const f = new Uint8Array(14 + ipLen);
  ethHeader(f, dstMac, srcMac, ETHERTYPE.IPV4);
  const ip = 14;
  f.set([0x45, 0, ipLen >>> 8, ipLen & 0xff, 0, 0, 0x40, 0, 64, 1, 0, 0], ip); // v4, IHL 5, DF, TTL 64, proto ICMP
  f.set(Array.from(srcIp), ip + 12);
  f.set(Array.from(dstIp), ip + 16);
  const ipSum = inetChecksum(f, ip, ip + 20);
  f[ip + 10] = ipSum >>> 8;
  f[ip + 11] = ipSum & 0xff;
  const icmp = ip + 20;
  f.set([8, 0, 0, 0, id >>> 8, id & 0xff, seq >>> 8, seq & 0xff], icmp);
  f.set(payload, icmp + 8);
  const sum = inetChecksum(f, icmp, f.length);
  f[icmp + 2] = sum >>> 8;
  f[icmp + 3] = sum & 0xff;
  return f;
}

export interface IcmpEcho {
  type: number;
  srcIp: Uint8Array;
  dstIp: Uint8Array;
  id: number;
  seq: number;
  payload: Uint8Array;
  checksumOk: boolean;
}

/** Parse an IPv4 ICMP echo request or reply; null for anything else. */
export function parseIcmpEcho(f: Uint8Array): IcmpEcho | null {
  if (f.length < 14 + 20 + 8 || f[12] !== 0x08 || f[13] !== 0x00) return null;
  const ip = 14;
  const ihl = (f[ip]! & 0x0f) * 4;
  if (f[ip]! >>> 4 !== 4 || f[ip + 9] !== 1) return null;
  const total = (f[ip + 2]! << 8) | f[ip + 3]!;
  const icmp = ip + ihl;
  const end = ip + total;
  if (end > f.length) return null;
  const type = f[icmp]!;
  if (type !== 0 && type !== 8) return null;
  return {
    type,
    srcIp: f.slice(ip + 12, ip + 16),
    dstIp: f.slice(ip + 16, ip + 20),
    id: (f[icmp + 4]! << 8) | f[icmp + 5]!,
    seq: (f[icmp + 6]! << 8) | f[icmp + 7]!,
    payload: f.slice(icmp + 8, end),
    checksumOk: inetChecksum(f, icmp, end) === 0 && inetChecksum(f, ip, ip + ihl) === 0,
  };
}

/**
 * A stand-in for slirp's gateway on the simulated wire: answers ARP requests for 10.0.2.2 and
 * ICMP echo requests to it, as QEMU's user networking does. Returns the reply frame or null.
 */
export function gatewayReply(f: Uint8Array, gatewayMac: Bytes): Uint8Array | null {
  if (f.length >= 42 && f[12] === 0x08 && f[13] === 0x06 && f[21] === 1 && eq(f, 38, GATEWAY_IP)) {
    const r = new Uint8Array(42);
    ethHeader(r, f.subarray(22, 28), gatewayMac, ETHERTYPE.ARP);
    r.set([0, 1, 0x08, 0x00, 6, 4, 0, 2], 14);
    r.set(Array.from(gatewayMac), 22);
    r.set(GATEWAY_IP, 28);
    r.set(f.subarray(22, 32), 32); // target = the requester's MAC and IP
    return r;
  }
  const echo = parseIcmpEcho(f);
  if (echo !== null && echo.type === 8 && eq(echo.dstIp, 0, GATEWAY_IP)) {
    const r = icmpEchoRequest(gatewayMac, f.subarray(6, 12), GATEWAY_IP, echo.srcIp, echo.id, echo.seq, echo.payload);
    // Turn the request into a reply: type 0, checksum again.
    const icmp = 14 + 20;
    r[icmp] = 0;
    r[icmp + 2] = 0;
    r[icmp + 3] = 0;
    const sum = inetChecksum(r, icmp, r.length);
    r[icmp + 2] = sum >>> 8;
    r[icmp + 3] = sum & 0xff;
    return r;
  }
  return null;
}
