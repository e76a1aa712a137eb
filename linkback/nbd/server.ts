/**
 * The NBD linkback server: serves block devices as NBD exports to host clients (the kernel's nbd
 * driver, qemu, libnbd tools, fio), on unix sockets and on TCP bound to loopback.
 *
 * Remote TCP is refused unless the server requires TLS (`tls: { mode: 'require', ... }`: a PSK or
 * client certificates authenticate the client; tls.ts) or `allowRemote` is set: without TLS the
 * protocol has no authentication, and an export is a raw disk.
 *
 *   const server = new NbdServer({ exports: [{ name: 'disk0', device }] });
 *   await server.listenUnix('/run/dmabox/disk0.sock');
 *   const { port } = await server.listenTcp({ port: 10809 });
 *   ...
 *   await server.close();
 */
import { existsSync, lstatSync } from 'node:fs';
import net from 'node:net';
import { isLoopbackAddress } from '../../policies/addresses.js';
import { NbdError } from './errors.js';
import type { BlockDevice } from '../block-device.js';
import { NbdConnection, type ConnectionHost, type ConnectionLimits, type NbdEvent } from './connection.js';
import { NbdExport, type NbdExportOptions, type NbdExportStats } from './export.js';
import { NBD_DEFAULT_PORT } from './protocol.js';
import { loadNbdTls, type NbdTls, type NbdTlsOptions } from './tls.js';

export type { NbdEvent } from './connection.js';
export type { NbdExportOptions, NbdExportStats } from './export.js';
export type { NbdTlsMode, NbdTlsOptions } from './tls.js';

export interface NbdServerOptions {
  exports: NbdExportOptions[];
  /** The export served to a client asking for "" (default: the first export). */
  defaultExport?: string;
  /** Connections at once over all listeners; more are closed at once (default 64). */
  maxConnections?: number;
  /** Allow TCP listeners on non-loopback addresses without TLS (default false). */
  allowRemote?: boolean;
  /** STARTTLS (default off). With mode 'require', TCP may listen on any address. */
  tls?: NbdTlsOptions;
  /** Milliseconds to finish in-flight requests on close() before cutting connections (default 5000). */
  closeTimeoutMs?: number;
  /** Logging hook: every connection event, protocol error and device error. Must not throw. */
  onEvent?: (event: NbdEvent) => void;
  limits?: Partial<ConnectionLimits>;
}

export interface NbdServerStats {
  connectionsActive: number;
  connectionsTotal: number;
  /** Connections closed at once because `maxConnections` were open. */
  connectionsRefused: number;
  handshakeTimeouts: number;
  /** Connections dropped during the handshake for breaking the protocol. */
  handshakeProtocolErrors: number;
  /** TLS sessions set up, and TLS handshakes that failed (wrong key, plain text after STARTTLS). */
  tlsSessions: number;
  tlsFailures: number;
  exports: Record<string, NbdExportStats>;
}

export const DEFAULT_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  handshakeTimeoutMs: 10_000,
  maxOptions: 64,
  maxOptionLength: 16 * 1024,
  maxInFlight: 128,
  maxInFlightBytes: 32 * 1024 * 1024,
  maxQueuedReplyBytes: 8 * 1024 * 1024,
});

export class NbdServer {
  readonly limits: ConnectionLimits;
  private readonly exports = new Map<string, NbdExport>();
  private readonly defaultName: string | undefined;
  private readonly maxConnections: number;
  private readonly allowRemote: boolean;
  private readonly closeTimeoutMs: number;
  private readonly onEvent: ((e: NbdEvent) => void) | undefined;
  private readonly listeners: net.Server[] = [];
  private readonly connections = new Set<NbdConnection>();
  private nextId = 1;
  private closingDown = false;
  private readonly counters = { connectionsTotal: 0, connectionsRefused: 0, handshakeTimeouts: 0, handshakeProtocolErrors: 0, tlsSessions: 0, tlsFailures: 0 };
  private readonly tls: NbdTls | undefined;
  private readonly host: ConnectionHost;

  constructor(options: NbdServerOptions) {
    if (!options.exports.length) {
      throw new NbdError('ERR_NBD_CONFIG', 'an NBD server needs at least one export', { fix: 'pass exports: [{ name, device }]' });
    }
    for (const e of options.exports) this.addExport(e);
    this.defaultName = options.defaultExport ?? options.exports[0]!.name;
    if (!this.exports.has(this.defaultName)) {
      throw new NbdError('ERR_NBD_CONFIG', `default export ${JSON.stringify(this.defaultName)} is not one of the exports`, {
        fix: `name one of ${options.exports.map((e) => JSON.stringify(e.name)).join(', ')}, or leave defaultExport unset (the first export)`,
      });
    }
    this.maxConnections = options.maxConnections ?? 64;
    this.allowRemote = options.allowRemote ?? false;
    this.tls = loadNbdTls(options.tls ?? { mode: 'off' });
    this.closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    this.onEvent = options.onEvent;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(v) || v < 1) {
        throw new NbdError('ERR_NBD_CONFIG', `NBD server limit ${k} = ${v} is not a positive integer`, {
          fix: `leave ${k} unset (default ${DEFAULT_LIMITS[k as keyof ConnectionLimits]})`,
        });
      }
    }
    this.host = {
      lookup: (name) => this.exports.get(name === '' ? this.defaultName! : name),
      list: () => this.exports.values(),
      limits: this.limits,
      tls: this.tls,
      event: (e) => this.event(e),
      attached: (conn, exp) => {
        if (this.closingDown || this.exports.get(exp.name) !== exp) return false;
        exp.stats.connectionsActive++;
        exp.stats.connectionsTotal++;
        return true;
      },
      closed: (conn) => {
        this.connections.delete(conn);
        if (conn.export) conn.export.stats.connectionsActive--;
      },
    };
  }

  /** Serve another device. Names are unique. */
  addExport(options: NbdExportOptions): void {
    if (this.exports.has(options.name)) {
      throw new NbdError('ERR_NBD_CONFIG', `NBD export ${JSON.stringify(options.name)} already exists`, { fix: 'give every export its own name' });
    }
    this.exports.set(options.name, new NbdExport(options));
  }

  /** Serve an export's later requests from another, identical device (a restarted driver's). */
  replaceDevice(name: string, device: BlockDevice): void {
    const exp = this.exports.get(name);
    if (!exp)
      throw new NbdError('ERR_NBD_CONFIG', `no NBD export named ${JSON.stringify(name)}`, {
        fix: `replace the device of one of ${[...this.exports.keys()].map((n) => JSON.stringify(n)).join(', ')}`,
      });
    exp.replaceDevice(device);
  }

  /** Listen on a unix socket. The path must not exist (a stale socket is an error, not overwritten). */
  listenUnix(path: string): Promise<string> {
    if (existsSync(path)) {
      const kind = lstatSync(path).isSocket() ? 'a socket (another server, or a stale one)' : 'a file that is not a socket';
      return Promise.reject(
        new NbdError('ERR_NBD_LISTEN', `cannot listen on ${path}: it exists and is ${kind}`, {
          fix: `stop the other server, or remove ${path} if nothing is listening on it`,
        }),
      );
    }
    return this.listen({ path }, `unix:${path}`).then(() => path);
  }

  /** Listen on TCP; loopback only unless the server requires TLS or was made with `allowRemote`. */
  listenTcp(options: { host?: string; port?: number } = {}): Promise<{ host: string; port: number }> {
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? NBD_DEFAULT_PORT;
    if (!this.allowRemote && this.tls?.mode !== 'require' && !isLoopbackAddress(host)) {
      return Promise.reject(
        new NbdError(
          'ERR_NBD_NOT_LOOPBACK',
          `refusing to serve NBD on ${host} without TLS required: NBD has no other authentication and an export is a raw disk`,
          {
            fix: 'require TLS (tls: require with tls-psk or tls-certificates), or listen on 127.0.0.1 or a unix socket',
          },
        ),
      );
    }
    return this.listen({ host, port }, `tcp:${host}:${port}`).then((srv) => {
      const a = srv.address() as net.AddressInfo;
      return { host: a.address, port: a.port };
    });
  }

  private listen(where: net.ListenOptions, label: string): Promise<net.Server> {
    if (this.closingDown) return Promise.reject(new NbdError('ERR_NBD_CLOSED', 'the NBD server is closed', { fix: 'make a new NbdServer to listen again' }));
    const srv = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(
          new NbdError('ERR_NBD_LISTEN', `cannot listen on ${label}: ${err.code ?? err.message}`, {
            cause: err,
            ...(err.code === 'EADDRINUSE' ? { fix: 'another server holds it: pick another port or socket path' } : {}),
          }),
        );
      };
      srv.once('error', onError);
      srv.listen(where, () => {
        srv.off('error', onError);
        srv.on('error', () => {
          /* accept errors (EMFILE) are per connection; the listener stays up */
        });
        this.listeners.push(srv);
        resolve(srv);
      });
    });
  }

  private accept(socket: net.Socket): void {
    const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    if (this.closingDown || this.connections.size >= this.maxConnections) {
      this.counters.connectionsRefused++;
      socket.on('error', () => {});
      socket.destroy();
      this.event({ type: 'refused', peer, reason: this.closingDown ? 'server closing' : `${this.maxConnections} connections already open` });
      return;
    }
    const id = this.nextId++;
    this.counters.connectionsTotal++;
    this.event({ type: 'connect', conn: id, peer });
    this.connections.add(new NbdConnection(id, socket, this.host));
  }

  private event(e: NbdEvent): void {
    if (e.type === 'handshake-timeout') this.counters.handshakeTimeouts++;
    else if (e.type === 'tls') this.counters.tlsSessions++;
    else if (e.type === 'tls-error') this.counters.tlsFailures++;
    else if (e.type === 'protocol-error' && e.export === undefined) this.counters.handshakeProtocolErrors++;
    if (this.onEvent) {
      try {
        this.onEvent(e);
      } catch {
        // A logging hook must not take the server down.
      }
    }
  }

  /** A snapshot of every counter. */
  stats(): NbdServerStats {
    const exports: Record<string, NbdExportStats> = {};
    for (const [name, e] of this.exports) exports[name] = e.snapshot();
    return { connectionsActive: this.connections.size, ...this.counters, exports };
  }

  /** Addresses being listened on (`unix:/path`, `tcp:127.0.0.1:10809`). */
  addresses(): string[] {
    return this.listeners.map((l) => {
      const a = l.address();
      return typeof a === 'string' ? `unix:${a}` : a ? `tcp:${a.address}:${a.port}` : 'closed';
    });
  }

  /**
   * Stop listening, let transmission connections finish what is in flight (their replies are sent),
   * close every connection, and resolve once all are gone or `closeTimeoutMs` has passed (then the
   * remaining ones are cut).
   */
  async close(): Promise<void> {
    this.closingDown = true;
    // net.Server#close calls back only once its connections are gone, so start it, drain, then wait.
    const stopped = Promise.all(this.listeners.splice(0).map((l) => new Promise<void>((r) => l.close(() => r()))));
    for (const c of this.connections) c.drainAndClose('server closing');
    const deadline = Date.now() + this.closeTimeoutMs;
    while (this.connections.size > 0 && Date.now() < deadline) await sleep(10);
    for (const c of this.connections) c.hangUp('server closing: in-flight requests did not finish in time');
    const cut = Date.now() + 1000;
    while (this.connections.size > 0 && Date.now() < cut) await sleep(5);
    await stopped;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
