/** Helpers of the ops tests: a bound notify socket (as systemd has), a scrape over a unix socket, promtool. */
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AF_UNIX, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, defaultSys, type PollHandle } from 'linux-sys';

/** A datagram socket bound to `name` ('@...' abstract), collecting every message sent to it. */
export class NotifyListener {
  readonly messages: string[] = [];
  private readonly sys = defaultSys();
  private readonly fd: number;
  private readonly handle: PollHandle;
  private readonly buf = new Uint8Array(4096);

  constructor(readonly name: string) {
    this.fd = this.sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    this.sys.bindUnix(this.fd, name);
    this.handle = this.sys.poll(this.fd, () => this.drain());
  }

  drain(): void {
    for (;;) {
      let n: number;
      try {
        n = this.sys.recv(this.fd, this.buf, MSG_DONTWAIT);
      } catch {
        return; // EAGAIN: nothing more
      }
      this.messages.push(Buffer.from(this.buf.subarray(0, n)).toString('utf8'));
    }
  }

  /** Every `KEY=VALUE` assignment received, in order. */
  assignments(): string[] {
    return this.messages.flatMap((m) => m.split('\n'));
  }

  close(): void {
    this.handle.close();
    this.sys.close(this.fd);
  }
}

/** GET `path` over the unix socket `socket`: status and body. */
export function httpGetUnix(socket: string, path = '/metrics'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${socket} within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** promtool: on PATH, or where scripts/setup-host.sh unpacks it (.cache/prometheus), or undefined. */
export function findPromtool(): string | undefined {
  for (const d of (process.env.PATH ?? '').split(delimiter)) if (d && existsSync(join(d, 'promtool'))) return join(d, 'promtool');
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, '.cache', 'prometheus', 'usr', 'bin', 'promtool');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return undefined;
}

/** One sample's value: `name{labels}` exactly as exposed (labels in the collector's order), or undefined. */
export function sampleValue(scrape: string, series: string): number | undefined {
  for (const line of scrape.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return undefined;
}
