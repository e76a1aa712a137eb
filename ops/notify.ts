/**
 * The service manager's notify protocol (sd_notify(3)), for `dmabox up` under systemd
 * (`Type=notify`): one datagram per message to the AF_UNIX socket named by NOTIFY_SOCKET (a path,
 * or an abstract name starting with '@'), newline-separated `KEY=VALUE` assignments:
 * `READY=1` once every sandbox is up, `STATUS=...` on state changes, `WATCHDOG=1` every half
 * WATCHDOG_USEC while the manager's loop is alive, `RELOADING=1` / `READY=1` around a reload,
 * `STOPPING=1` when it stops. WATCHDOG_PID, when set, must be this process or the watchdog is not ours.
 *
 * Node has no datagram unix socket, so the socket is the syscall seam's (linux-sys: socket,
 * connect, send, sendto). It is opened and connected at construction, before the manager leaves
 * root: writing to a unix socket is checked against the socket file's permissions at connect (or
 * at each sendto by path), so the connected socket keeps reaching a notify socket only root may
 * write to. If the service manager re-executes itself (its socket is a new one), a send on the old
 * connection fails and the message goes by path instead (sendto), as sd_notify(3) does each time.
 */
import { AF_UNIX, MSG_DONTWAIT, MSG_NOSIGNAL, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, defaultSys, type Sys } from 'linux-sys';
import { OpsError } from './errors.js';

export class Notifier {
  private fd: number;
  private connected = false;
  private readonly sys: Sys;
  readonly socket: string;
  /** WATCHDOG_USEC / 2 in ms, when the service manager asked for a watchdog for this process. */
  readonly watchdogMs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Messages that could not be sent (the service manager gone): counted, never thrown at the caller. */
  failures = 0;

  private constructor(socket: string, sys: Sys, watchdogMs: number | undefined) {
    this.sys = sys;
    this.socket = socket;
    this.watchdogMs = watchdogMs;
    try {
      this.fd = sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    } catch (e) {
      throw new OpsError('ERR_OPS_NOTIFY', `cannot open a datagram socket for NOTIFY_SOCKET ${socket}: ${(e as Error).message}`, { cause: e });
    }
    try {
      sys.connectUnix(this.fd, socket);
      this.connected = true;
    } catch {
      // Nobody there yet (or not allowed): every message goes by path.
    }
  }

  /**
   * A notifier when the environment names a notify socket (NOTIFY_SOCKET), else undefined. Throws
   * ERR_OPS_NOTIFY for a malformed NOTIFY_SOCKET or WATCHDOG_USEC.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, sys: Sys = defaultSys(), pid = process.pid): Notifier | undefined {
    const socket = env.NOTIFY_SOCKET;
    if (!socket) return undefined;
    if (!socket.startsWith('/') && !socket.startsWith('@')) {
      throw new OpsError('ERR_OPS_NOTIFY', `NOTIFY_SOCKET=${socket}: neither a path nor an abstract name ('@...')`, {
        fix: 'the service manager sets it; unset it when not running under one (vsock addresses are not supported)',
      });
    }
    let watchdogMs: number | undefined;
    if (env.WATCHDOG_USEC && (!env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === pid)) {
      const us = Number(env.WATCHDOG_USEC);
      if (!Number.isSafeInteger(us) || us <= 0)
        throw new OpsError('ERR_OPS_NOTIFY', `WATCHDOG_USEC=${env.WATCHDOG_USEC} is not a positive number of microseconds`);
      watchdogMs = Math.max(1, Math.floor(us / 2000));
    }
    return new Notifier(socket, sys, watchdogMs);
  }

  /** Send one message (`KEY=VALUE` lines); false when it could not be sent. */
  send(message: string): boolean {
    if (this.fd < 0) return false;
    const data = Buffer.from(message, 'utf8');
    if (this.connected) {
      try {
        this.sys.send(this.fd, data, MSG_DONTWAIT | MSG_NOSIGNAL);
        return true;
      } catch {
        // The peer is gone (a re-executed service manager): try its path.
      }
    }
    try {
      this.sys.sendToUnix(this.fd, data, this.socket, MSG_DONTWAIT | MSG_NOSIGNAL);
      return true;
    } catch {
      this.failures++;
      return false;
    }
  }

  ready(status?: string): boolean {
    return this.send(status ? `READY=1\nSTATUS=${oneLine(status)}` : 'READY=1');
  }
  status(text: string): boolean {
    return this.send(`STATUS=${oneLine(text)}`);
  }
  reloading(): boolean {
    // systemd 253+ wants MONOTONIC_USEC with RELOADING=1 (Type=notify-reload); older ones ignore it.
    return this.send(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`);
  }
  stopping(): boolean {
    return this.send('STOPPING=1');
  }

  /**
   * Start the watchdog pings (when asked for): every WATCHDOG_USEC/2, `alive()` is asked whether
   * the manager's loop is healthy and WATCHDOG=1 sent only if it is. A stalled event loop sends
   * nothing, as it should: the timer itself runs on that loop.
   */
  startWatchdog(alive: () => boolean): void {
    if (this.watchdogMs === undefined || this.timer) return;
    this.timer = setInterval(() => {
      if (alive()) this.send('WATCHDOG=1');
    }, this.watchdogMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.fd >= 0) this.sys.close(this.fd);
    this.fd = -1;
  }
}

function oneLine(s: string): string {
  return s.replace(/\n/g, ' ');
}

function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}
