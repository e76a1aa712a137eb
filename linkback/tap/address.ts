/**
 * Give a TAP interface an IPv4 address, bring it up, and add a default route through a gateway:
 * what `ip addr add`, `ip link set up` and `ip route add default via` do, done with the classic
 * ioctls on an AF_INET socket (SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFFLAGS, SIOCADDRT) through
 * linux-sys, so a host (or an appliance image, which has no `ip`) needs no tool. Root or
 * CAP_NET_ADMIN; done while the manager is still root, before it drops privileges.
 */
import { isIPv4 } from 'node:net';
import { ipv4Bytes, maskBytes, onSubnet, parseCidr } from '../../policies/addresses.js';
import { defaultSys, errnoOf, SOCK_CLOEXEC, SOCK_DGRAM, type Sys } from 'linux-sys';
import { TapError } from './errors.js';
import { AF_INET, IFF_UP, IFNAMSIZ, IFR_ADDR, IFREQ, INET_IOCTL, RTENTRY, RTF_GATEWAY, RTF_UP, SOCKADDR_IN } from './uapi.js';

export interface InterfaceAddress {
  /** `10.0.2.15/24` */
  address: string;
  /** A gateway on that subnet: the default route goes through it. */
  gateway?: string;
}

export type AddressSys = Pick<Sys, 'socket' | 'ioctl' | 'close'>;

function sockaddrIn(into: Uint8Array, at: number, bytes: readonly number[]): void {
  into.fill(0, at, at + SOCKADDR_IN.size);
  into[at + SOCKADDR_IN.sin_family] = AF_INET & 0xff; // little-endian u16 on every Linux ABI Node runs on
  into[at + SOCKADDR_IN.sin_family + 1] = AF_INET >> 8;
  into.set(bytes, at + SOCKADDR_IN.sin_addr);
}

function ifreq(name: string): Uint8Array {
  const b = new Uint8Array(IFREQ.size);
  const n = Buffer.from(name, 'utf8');
  if (n.length >= IFNAMSIZ) throw new TapError('ERR_TAP_ARG', `interface name '${name}' is longer than ${IFNAMSIZ - 1} bytes`);
  b.set(n, IFREQ.ifr_name);
  return b;
}

/** Address, up, default route. Throws TapError naming the step and errno. */
export function configureInterface(name: string, want: InterfaceAddress, sys: AddressSys = defaultSys()): void {
  const cidr = parseCidr(want.address);
  if (!cidr) throw new TapError('ERR_TAP_ARG', `'${want.address}' is not an IPv4 address with a prefix length (10.0.2.15/24)`);
  if (want.gateway !== undefined && (!isIPv4(want.gateway) || !onSubnet(cidr, want.gateway)))
    throw new TapError('ERR_TAP_ARG', `gateway '${want.gateway}' is not an IPv4 address on ${want.address}'s subnet`);
  const fd = sys.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const step = (what: string, req: number, arg: Uint8Array): void => {
    try {
      sys.ioctl(fd, req, arg);
    } catch (e) {
      throw new TapError('ERR_TAP_IO', `${name}: ${what} failed (${errnoOf(e)})`, {
        cause: e,
        fix: errnoOf(e) === 'EPERM' ? 'configuring an interface needs root or CAP_NET_ADMIN' : 'check the address and that the interface exists',
      });
    }
  };
  try {
    const addr = ifreq(name);
    sockaddrIn(addr, IFR_ADDR, ipv4Bytes(cidr.ip));
    step(`setting address ${cidr.ip}`, INET_IOCTL.SIOCSIFADDR, addr);
    const mask = ifreq(name);
    sockaddrIn(mask, IFR_ADDR, maskBytes(cidr.prefix));
    step(`setting netmask /${cidr.prefix}`, INET_IOCTL.SIOCSIFNETMASK, mask);
    const flags = ifreq(name);
    step('reading its flags', INET_IOCTL.SIOCGIFFLAGS, flags);
    const dv = new DataView(flags.buffer);
    dv.setUint16(IFREQ.ifr_flags, dv.getUint16(IFREQ.ifr_flags, true) | IFF_UP, true);
    step('bringing it up', INET_IOCTL.SIOCSIFFLAGS, flags);
    if (want.gateway !== undefined) {
      const rt = new Uint8Array(RTENTRY.size);
      sockaddrIn(rt, RTENTRY.rt_dst, [0, 0, 0, 0]);
      sockaddrIn(rt, RTENTRY.rt_gateway, ipv4Bytes(want.gateway));
      sockaddrIn(rt, RTENTRY.rt_genmask, [0, 0, 0, 0]);
      new DataView(rt.buffer).setUint16(RTENTRY.rt_flags, RTF_UP | RTF_GATEWAY, true);
      step(`adding the default route via ${want.gateway}`, INET_IOCTL.SIOCADDRT, rt);
    }
  } finally {
    sys.close(fd);
  }
}
