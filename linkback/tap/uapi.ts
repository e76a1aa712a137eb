/**
 * The kernel numbers the TAP device uses, from <linux/if_tun.h>, <linux/if.h>, <linux/sockios.h>
 * and <linux/if_arp.h>. Every value and offset here is checked against the machine's headers by a
 * gcc probe (test/linkback/tap/uapi.test.ts); none is trusted from a table.
 */

/** ioctl direction bits and the `_IOW(type, nr, size)` encoding (asm-generic/ioctl.h). */
const IOC_WRITE = 1;
const IOC_NRSHIFT = 0;
const IOC_TYPESHIFT = 8;
const IOC_SIZESHIFT = 16;
const IOC_DIRSHIFT = 30;

export function _IOW(type: string, nr: number, size: number): number {
  return ((IOC_WRITE << IOC_DIRSHIFT) | (type.charCodeAt(0) << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT) | (size << IOC_SIZESHIFT)) >>> 0;
}

/** sizeof(int) on every Linux ABI Node runs on. */
const INT = 4;

export const TUN_IOCTL = Object.freeze({
  /** _IOW('T', 202, int): attach the fd to a new or existing TUN/TAP interface (struct ifreq). */
  TUNSETIFF: _IOW('T', 202, INT),
  /** _IOW('T', 203, int): keep (1) or drop (0) the interface when its last fd closes. */
  TUNSETPERSIST: _IOW('T', 203, INT),
  /** _IOW('T', 226, int): carrier on (1) or off (0), as a cable would (Linux 5.0+). */
  TUNSETCARRIER: _IOW('T', 226, INT),
  /** Set the interface's MAC through the TUN fd (linux/sockios.h; tun_chr_ioctl handles it). */
  SIOCSIFHWADDR: 0x8924,
  /** Read the interface's MAC through the TUN fd. */
  SIOCGIFHWADDR: 0x8927,
});

/** ifr_flags for TUNSETIFF (linux/if_tun.h). */
export const TUN_FLAGS = Object.freeze({
  /** An Ethernet (layer 2) device. */
  IFF_TAP: 0x0002,
  /** No 4-byte packet-information header before each frame: reads and writes are bare frames. */
  IFF_NO_PI: 0x1000,
});

/** Interface name buffer, terminating NUL included (linux/if.h IFNAMSIZ). */
export const IFNAMSIZ = 16;
/** ARPHRD_ETHER (linux/if_arp.h): the sa_family of an Ethernet hardware address. */
export const ARPHRD_ETHER = 1;

/**
 * struct ifreq (linux/if.h) on 64-bit Linux: the name, then a union of which we use ifr_flags
 * (short) and ifr_hwaddr (struct sockaddr: sa_family u16, then sa_data[14], the MAC in its first 6).
 */
export const IFREQ = Object.freeze({
  size: 40,
  ifr_name: 0,
  ifr_flags: 16,
  ifr_hwaddr: 16,
  /** sa_data inside ifr_hwaddr: 2 bytes after sa_family. */
  sa_data: 18,
});

/** Interface configuration through an AF_INET socket (linux/sockios.h), for an interface's address and the default route. */
export const INET_IOCTL = Object.freeze({
  SIOCGIFFLAGS: 0x8913,
  SIOCSIFFLAGS: 0x8914,
  SIOCSIFADDR: 0x8916,
  SIOCSIFNETMASK: 0x891c,
  SIOCADDRT: 0x890b,
});

/** ifr_flags IFF_UP (linux/if.h); rt_flags RTF_UP, RTF_GATEWAY (linux/route.h). */
export const IFF_UP = 0x1;
export const RTF_UP = 0x0001;
export const RTF_GATEWAY = 0x0002;
export const AF_INET = 2;

/** struct sockaddr_in (netinet/in.h): sin_family u16, sin_port u16 (big-endian), sin_addr 4 bytes, zero padding to 16. */
export const SOCKADDR_IN = Object.freeze({ size: 16, sin_family: 0, sin_port: 2, sin_addr: 4 });
/** ifr_addr / ifr_netmask: the sockaddr in ifreq's union, at the same offset as ifr_flags. */
export const IFR_ADDR = 16;

/** struct rtentry (linux/route.h) on 64-bit Linux: the fields SIOCADDRT reads for a default route. */
export const RTENTRY = Object.freeze({ size: 120, rt_dst: 8, rt_gateway: 24, rt_genmask: 40, rt_flags: 56, rt_dev: 88 });
