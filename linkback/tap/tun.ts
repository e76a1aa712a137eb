/**
 * A TAP interface: /dev/net/tun attached with TUNSETIFF (IFF_TAP | IFF_NO_PI), so each read() gives
 * one whole Ethernet frame the host stack sent, and each write() hands the host stack one frame as
 * if it had arrived on a cable. No packet-information header: frames are bare, without FCS.
 *
 *   const tap = TapDevice.open({ name: 'dmabox0', mac: nic.mac });
 *   tap.watch(() => { let n; while ((n = tap.read(buf, 0, buf.length)) > 0) use(buf, n); });
 *   tap.write(frame, 0, frame.length);
 *   tap.close();            // a non-persistent interface disappears with its last fd
 *
 * The fd is opened non-blocking with Node's fs and read and written with fs.readSync/writeSync
 * straight into the caller's buffers (the NIC's DMA window, through an offset: no copy, no
 * allocation per frame). The ioctls go through linux-sys, the syscall seam (the only code that
 * calls koffi), and readability is waited on with the seam's poll (inside Node's event loop).
 */
import fs from 'node:fs';
import { defaultSys, type PollHandle, type Sys } from 'linux-sys';
import { TapError } from './errors.js';
import { ARPHRD_ETHER, IFNAMSIZ, IFREQ, TUN_FLAGS, TUN_IOCTL } from './uapi.js';

export const TUN_PATH = '/dev/net/tun';

const CLOSED_FIX = 'open a new TapDevice (TapDevice.open) to use the interface again';

/** What a TAP needs from the seam (tests hand in a fake). */
export type TapSys = Pick<Sys, 'ioctl' | 'poll'>;

export interface TapOptions {
  /**
   * Interface name: 1 to 15 characters of letters, digits, `_`, `-`, `.`; it may contain one `%d`
   * for the kernel to number (`dmabox%d` gives dmabox0, dmabox1, ...). `name` then reads the result.
   */
  name: string;
  /** The interface's MAC address (6 bytes, unicast), set while it is down. Default: the kernel's random one. */
  mac?: Uint8Array | readonly number[];
  /**
   * TUNSETPERSIST: true keeps the interface when the fd closes; false clears a persistence flag an
   * earlier run left on an interface of that name. Default: no call (a new interface is not persistent).
   */
  persist?: boolean;
  /** The seam for ioctl and poll; default linux-sys' defaultSys(). */
  sys?: TapSys;
  /** For tests: open the TUN clone device at another path. */
  path?: string;
}

/** The frame I/O a bridge needs; TapDevice is one, tests use fakes. */
export interface FrameIo {
  readonly name: string;
  /** Read one frame into bytes[offset..offset+max); its length, or 0 when none is waiting. */
  read(bytes: Uint8Array, offset: number, max: number): number;
  /** Write one frame; true when the kernel took it, false (and `lastError` set) when the write failed. */
  write(bytes: Uint8Array, offset: number, len: number): boolean;
  /** The errno name of the last failed write (`EIO`), for counters and logs. */
  readonly lastError: string | undefined;
  /** Call `onReadable` each time frames are waiting (level-triggered: again while any remain). */
  watch(onReadable: () => void): void;
  /** Stop calling back; frames stay queued in the kernel. */
  unwatch(): void;
  /** Carrier on or off (the host sees NO-CARRIER and stops sending). Optional. */
  setCarrier?(up: boolean): void;
}

const NAME_RE = /^[A-Za-z0-9_.%-]{1,15}$/;

/** Check an interface name; throws ERR_TAP_ARG saying what is allowed. */
export function checkTapName(name: unknown): string {
  const percents = typeof name === 'string' ? name.split('%').length - 1 : 0;
  const template = percents === 0 || (percents === 1 && (name as string).includes('%d'));
  if (typeof name !== 'string' || !NAME_RE.test(name) || name === '.' || name === '..' || !template) {
    throw new TapError('ERR_TAP_ARG', `TAP: interface name ${JSON.stringify(name)} is not valid`, {
      fix: `use 1 to ${IFNAMSIZ - 1} characters of letters, digits, '_', '-', '.', with at most one '%d' (e.g. 'dmabox%d')`,
    });
  }
  return name;
}

/** Check a MAC address: 6 bytes, not multicast (bit 0 of byte 0), not all zero. */
export function checkMac(mac: Uint8Array | readonly number[]): Uint8Array {
  const m = Uint8Array.from(mac);
  const bytesOk = mac.length === 6 && Array.from(mac).every((b) => Number.isInteger(b) && b >= 0 && b <= 255);
  if (!bytesOk || (m[0]! & 1) !== 0 || m.every((b) => b === 0)) {
    throw new TapError('ERR_TAP_ARG', `TAP: MAC address [${Array.from(mac).join(', ')}] is not a unicast Ethernet address`, {
      fix: 'give 6 bytes from 0 to 255, the first one even (bit 0 clear), not all zero',
    });
  }
  return m;
}

export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * Turn an errno from opening the clone device or from TUNSETIFF into the error a user can act on.
 * Exported for tests: the mapping is the part worth checking without root.
 */
export function tapOpenError(op: 'open' | 'TUNSETIFF' | 'TUNSETPERSIST' | 'SIOCSIFHWADDR', errno: string, name: string, cause?: unknown): TapError {
  const o = { cause, errno };
  const where = op === 'open' ? `open ${TUN_PATH}` : `${op} ${name}`;
  if (op === 'open' && errno === 'ENOENT') {
    return new TapError('ERR_TAP_NO_TUN', `TAP: ${where}: ${TUN_PATH} does not exist`, {
      ...o,
      fix: 'load the tun module (modprobe tun) or, in a container, pass the device in (--device /dev/net/tun)',
    });
  }
  if (op === 'open' && errno === 'ENODEV') {
    return new TapError('ERR_TAP_NO_TUN', `TAP: ${where}: the kernel has no TUN/TAP driver behind ${TUN_PATH} (ENODEV)`, {
      ...o,
      fix: 'load the tun module (modprobe tun); a kernel without CONFIG_TUN cannot make TAP interfaces',
    });
  }
  if (errno === 'EPERM' || errno === 'EACCES') {
    return new TapError('ERR_TAP_PERMISSION', `TAP: ${where}: permission denied (${errno})`, {
      ...o,
      fix: 'run as root or give the process CAP_NET_ADMIN (setcap cap_net_admin+ep, or a systemd AmbientCapabilities=CAP_NET_ADMIN)',
    });
  }
  if (op === 'TUNSETIFF' && errno === 'EBUSY') {
    return new TapError('ERR_TAP_BUSY', `TAP: ${where}: interface ${name} exists and another process has it open (EBUSY)`, {
      ...o,
      fix: `choose another name, or stop the process holding ${name} (ip -d link show ${name})`,
    });
  }
  if (op === 'TUNSETIFF' && errno === 'EINVAL') {
    return new TapError('ERR_TAP_NAME_TAKEN', `TAP: ${where}: an interface named ${name} exists and is not a TAP with IFF_NO_PI (EINVAL)`, {
      ...o,
      fix: `choose another name, or remove the interface (ip link del ${name}) if it is a leftover`,
    });
  }
  if (op === 'SIOCSIFHWADDR' && errno === 'EBUSY') {
    return new TapError('ERR_TAP_BUSY', `TAP: ${where}: the MAC of a running interface cannot change (EBUSY)`, {
      ...o,
      fix: `set it down first (ip link set ${name} down), or open without { mac }`,
    });
  }
  return new TapError('ERR_TAP_IO', `TAP: ${where} failed (${errno})`, {
    ...o,
    fix: `look at the interface (ip -d link show ${name}) and the kernel log for why ${op} failed with ${errno}`,
  });
}

function errnoOf(e: unknown): string {
  const x = e as { errnoName?: string; code?: string };
  return x.errnoName ?? x.code ?? 'unknown';
}

export class TapDevice implements FrameIo {
  /** The interface name the kernel gave (the template filled in). */
  readonly name: string;
  /** The interface's MAC address as set (or as the kernel chose, read back). */
  readonly mac: Uint8Array;
  readonly fd: number;
  lastError: string | undefined;
  private readonly sys: TapSys;
  private poll: PollHandle | null = null;
  private onReadable: (() => void) | null = null;
  private readonly fireReadable = (): void => {
    if (this.onReadable !== null) this.onReadable();
  };
  private readonly carrierArg = new Uint8Array(4);
  private closed = false;

  private constructor(fd: number, name: string, mac: Uint8Array, sys: TapSys) {
    this.fd = fd;
    this.name = name;
    this.mac = mac;
    this.sys = sys;
  }

  /** Create (or attach to a detached persistent) TAP interface. Needs root or CAP_NET_ADMIN. */
  static open(options: TapOptions): TapDevice {
    const requested = checkTapName(options?.name);
    const mac = options.mac === undefined ? undefined : checkMac(options.mac);
    if (options.persist !== undefined && typeof options.persist !== 'boolean') {
      throw new TapError('ERR_TAP_ARG', `TAP: persist = ${String(options.persist)} must be true or false`, {
        fix: 'true keeps the interface after close, false clears a leftover persistence flag; leave it unset for neither',
      });
    }
    const sys = options.sys ?? defaultSys();
    const path = options.path ?? TUN_PATH;
    let fd: number;
    try {
      // libuv adds O_CLOEXEC to every open: a driver container spawned later does not inherit the TAP.
      fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    } catch (e) {
      throw tapOpenError('open', errnoOf(e), requested, e);
    }
    try {
      const ifr = new Uint8Array(IFREQ.size);
      const dv = new DataView(ifr.buffer);
      ifr.set(Buffer.from(requested, 'ascii'), IFREQ.ifr_name);
      dv.setUint16(IFREQ.ifr_flags, TUN_FLAGS.IFF_TAP | TUN_FLAGS.IFF_NO_PI, true);
      try {
        sys.ioctl(fd, TUN_IOCTL.TUNSETIFF, ifr);
      } catch (e) {
        throw tapOpenError('TUNSETIFF', errnoOf(e), requested, e);
      }
      // The kernel writes the final name back (a '%d' template numbered).
      const end = ifr.indexOf(0, IFREQ.ifr_name);
      const name = Buffer.from(ifr.subarray(IFREQ.ifr_name, end < 0 || end > IFNAMSIZ ? IFNAMSIZ : end)).toString('ascii');
      if (options.persist !== undefined) {
        try {
          sys.ioctl(fd, TUN_IOCTL.TUNSETPERSIST, options.persist ? 1 : 0);
        } catch (e) {
          throw tapOpenError('TUNSETPERSIST', errnoOf(e), name, e);
        }
      }
      const hw = new Uint8Array(IFREQ.size);
      hw.set(ifr.subarray(0, IFNAMSIZ));
      const hv = new DataView(hw.buffer);
      if (mac !== undefined) {
        hv.setUint16(IFREQ.ifr_hwaddr, ARPHRD_ETHER, true);
        hw.set(mac, IFREQ.sa_data);
        try {
          sys.ioctl(fd, TUN_IOCTL.SIOCSIFHWADDR, hw);
        } catch (e) {
          throw tapOpenError('SIOCSIFHWADDR', errnoOf(e), name, e);
        }
        return new TapDevice(fd, name, mac, sys);
      }
      try {
        sys.ioctl(fd, TUN_IOCTL.SIOCGIFHWADDR, hw);
      } catch (e) {
        throw new TapError('ERR_TAP_IO', `TAP: SIOCGIFHWADDR ${name} failed (${errnoOf(e)})`, {
          cause: e,
          errno: errnoOf(e),
          fix: "give the MAC to set ({ mac }) instead of reading the kernel's",
        });
      }
      return new TapDevice(fd, name, hw.slice(IFREQ.sa_data, IFREQ.sa_data + 6), sys);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /**
   * Read one frame into bytes[offset..offset+max); returns its length, or 0 when no frame is
   * waiting. A frame longer than `max` is cut to `max` by the kernel: give room for the MTU + 14.
   */
  read(bytes: Uint8Array, offset: number, max: number): number {
    if (this.closed) throw new TapError('ERR_TAP_CLOSED', `TAP ${this.name}: read after close`, { fix: CLOSED_FIX });
    // An empty queue is EAGAIN, which Node reports by throwing; capturing a stack for it costs
    // more than the read itself (measured: 18 us with, 12 us without, on the 2-core VM), so none
    // is captured. It happens once per drain, not once per frame.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return fs.readSync(this.fd, bytes, offset, max, null);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return 0;
      Error.stackTraceLimit = limit;
      throw new TapError('ERR_TAP_IO', `TAP ${this.name}: read failed (${code ?? String(e)})`, {
        cause: e,
        errno: code,
        fix: `is the interface still there? (ip link show ${this.name}); a bridge backs off and retries`,
      });
    } finally {
      Error.stackTraceLimit = limit;
    }
  }

  /** Hand one frame to the host stack. False when the kernel refused it (see lastError); never blocks. */
  write(bytes: Uint8Array, offset: number, len: number): boolean {
    if (this.closed) throw new TapError('ERR_TAP_CLOSED', `TAP ${this.name}: write after close`, { fix: CLOSED_FIX });
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return fs.writeSync(this.fd, bytes, offset, len) === len;
    } catch (e) {
      this.lastError = (e as { code?: string }).code ?? String(e);
      return false;
    } finally {
      Error.stackTraceLimit = limit;
    }
  }

  watch(onReadable: () => void): void {
    if (this.closed) throw new TapError('ERR_TAP_CLOSED', `TAP ${this.name}: watch after close`, { fix: CLOSED_FIX });
    this.onReadable = onReadable;
    if (this.poll === null) this.poll = this.sys.poll(this.fd, this.fireReadable);
  }

  unwatch(): void {
    this.onReadable = null;
    if (this.poll !== null) {
      this.poll.close();
      this.poll = null;
    }
  }

  /** TUNSETCARRIER: the host sees the cable plugged (true) or not (false). */
  setCarrier(up: boolean): void {
    if (this.closed) throw new TapError('ERR_TAP_CLOSED', `TAP ${this.name}: setCarrier after close`, { fix: CLOSED_FIX });
    new DataView(this.carrierArg.buffer).setInt32(0, up ? 1 : 0, true);
    try {
      this.sys.ioctl(this.fd, TUN_IOCTL.TUNSETCARRIER, this.carrierArg);
    } catch (e) {
      throw new TapError('ERR_TAP_IO', `TAP ${this.name}: TUNSETCARRIER ${up ? 1 : 0} failed (${errnoOf(e)})`, {
        cause: e,
        errno: errnoOf(e),
        fix: 'TUNSETCARRIER needs Linux 5.0 or later',
      });
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Stop watching and close the fd; a non-persistent interface is removed by the kernel. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.unwatch();
    this.closed = true;
    fs.closeSync(this.fd);
  }
}
