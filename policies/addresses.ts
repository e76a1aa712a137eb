/**
 * Network addresses as policies write them, in one place for the policy check and the code that
 * acts on them (the NBD server, the TAP linkback, the appliance manifest): `HOST:PORT` with IPv6 in
 * brackets, IPv4 CIDR, subnets, and what counts as loopback.
 */
import { isIPv4 } from 'node:net';

/** `0.0.0.0:10809` -> { host: '0.0.0.0', port: 10809 }; `[::]:10809` -> { host: '::', port: 10809 }. */
export function splitHostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(address.slice(at + 1)) };
}

/** Loopback: 127.0.0.0/8, ::1, IPv4-mapped 127.x, and the name localhost. */
export function isLoopbackAddress(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  if (isIPv4(host)) return host.startsWith('127.');
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return m !== null && m[1]!.startsWith('127.');
}

/** `10.0.2.15/24` -> { ip, prefix }; undefined when malformed. */
export function parseCidr(text: string): { ip: string; prefix: number } | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text);
  if (!m || !isIPv4(m[1]!) || Number(m[2]) > 32) return undefined;
  return { ip: m[1]!, prefix: Number(m[2]) };
}

/** An IPv4 address as its 4 bytes. */
export function ipv4Bytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

/** The netmask of a prefix length, as 4 bytes. */
export function maskBytes(prefix: number): number[] {
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [m >>> 24, (m >>> 16) & 0xff, (m >>> 8) & 0xff, m & 0xff];
}

/** Whether `ip` is on `cidr`'s subnet. */
export function onSubnet(cidr: { ip: string; prefix: number }, ip: string): boolean {
  const mask = maskBytes(cidr.prefix);
  const a = ipv4Bytes(cidr.ip);
  const b = ipv4Bytes(ip);
  return mask.every((m, i) => (a[i]! & m) === (b[i]! & m));
}
