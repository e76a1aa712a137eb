/**
 * The metrics endpoint of `dmabox up --metrics ADDR`: HTTP on a unix socket path or a loopback TCP
 * address, answering `GET /metrics` (and `/`) with the Prometheus text format (collector.ts).
 * Everything else gets 404 or 405. Metrics tell who runs what, so TCP is refused on anything but
 * loopback, the same rule as the NBD server: scrape it from this host, or put a proxy in front.
 *
 * ADDR: `unix:/path`, an absolute path, `127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`.
 * A unix path is claimed like the control socket (common/unix-socket.ts: a stale socket is taken
 * over, a live one or a file is refused) and made mode 0660.
 */
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { claimSocketPath } from '../common/unix-socket.js';
import { OpsError } from './errors.js';

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type MetricsAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

const LOOPBACK_FIX = 'listen on 127.0.0.1:PORT, [::1]:PORT or a unix socket path; scrape from another host through a proxy or an SSH tunnel';

/** Parse and check an ADDR; throws ERR_OPS_METRICS_ADDRESS with the fix. */
export function parseMetricsAddress(addr: string): MetricsAddress {
  if (addr.startsWith('unix:')) addr = addr.slice(5);
  if (addr.startsWith('/')) return { kind: 'unix', path: addr };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(addr);
  if (!m) {
    throw new OpsError('ERR_OPS_METRICS_ADDRESS', `--metrics ${JSON.stringify(addr)} is neither a unix socket path nor HOST:PORT`, {
      fix: 'give an absolute path (/run/dmabox/metrics.sock) or a loopback address (127.0.0.1:9464)',
    });
  }
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port > 65535)
    throw new OpsError('ERR_OPS_METRICS_ADDRESS', `--metrics port ${port} is not 0..65535 (0: any free port)`, { fix: 'pick a port such as 9464' });
  const loopback = host === 'localhost' || host === '::1' || (net.isIPv4(host) && host.startsWith('127.'));
  if (!loopback) {
    throw new OpsError('ERR_OPS_METRICS_ADDRESS', `--metrics ${addr}: ${host} is not a loopback address; the metrics endpoint has no authentication`, {
      fix: LOOPBACK_FIX,
    });
  }
  return { kind: 'tcp', host, port };
}

export class MetricsServer {
  private constructor(
    private readonly server: Server,
    readonly address: string,
    private readonly path: string | undefined,
  ) {}

  /** Listen on `addr` and answer each scrape with `collect()`. */
  static async listen(addr: MetricsAddress, collect: () => string): Promise<MetricsServer> {
    if (addr.kind === 'unix') {
      await claimSocketPath(addr.path, {
        error: (message, fix) => new OpsError('ERR_OPS_METRICS_LISTEN', message, { fix }),
        what: 'the metrics endpoint',
        busyFix: 'another dmabox serves metrics there: stop it, or give --metrics another path',
        notSocketFix: `remove ${addr.path}, or give --metrics another path`,
      });
    }
    const server = createServer((req, res) => {
      const url = (req.url ?? '/').split('?')[0];
      if (url !== '/metrics' && url !== '/') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('only GET\n');
        return;
      }
      let body: string;
      try {
        body = collect();
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting the metrics failed: ${(e as Error).message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    server.headersTimeout = 5000;
    server.requestTimeout = 10000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(
          new OpsError(
            'ERR_OPS_METRICS_LISTEN',
            `the metrics endpoint cannot listen on ${addr.kind === 'unix' ? addr.path : `${addr.host}:${addr.port}`}: ${e.message}`,
            {
              fix: 'the port is taken or the folder is not writable: pick another --metrics address',
            },
          ),
        ),
      );
      if (addr.kind === 'unix') server.listen(addr.path, () => resolve());
      else server.listen(addr.port, addr.host, () => resolve());
    });
    if (addr.kind === 'unix') {
      chmodSync(addr.path, 0o660);
      return new MetricsServer(server, `unix:${addr.path}`, addr.path);
    }
    const a = server.address() as net.AddressInfo;
    return new MetricsServer(server, `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics`, undefined);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => {
        try {
          if (this.path) rmSync(this.path, { force: true });
        } catch {
          // In root's folder after the manager left root: left for the next start to take over (it is stale).
        }
        resolve();
      });
    });
  }
}
