/**
 * A minimal QMP client (QEMU Machine Protocol, docs/interop/qmp-spec: one JSON object per line):
 * connect to QEMU's `-qmp unix:PATH,server=on,wait=off` socket, read the greeting, leave
 * capabilities negotiation with `qmp_capabilities`, then run commands one at a time. Asynchronous
 * events (`{"event": ...}`) are skipped. Every wait is bounded; a failure is an ApplianceError
 * ERR_LAB_RELAY with QEMU's own `desc` when it gave one.
 */
import { connect, type Socket } from 'node:net';
import { ApplianceError } from '../image/errors.js';

/** One QMP answer line is small; a line past this is not QEMU's (a monitor answer of ours is under 4 KiB). */
const MAX_LINE = 1 << 20;

export class QmpClient {
  private buf = '';
  private waiter: ((line: string | Error) => void) | undefined;
  private readonly lines: string[] = [];
  private closedWith: Error | undefined;

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      if (this.buf.length > MAX_LINE) {
        this.fail(new ApplianceError('ERR_LAB_RELAY', `QMP: a line longer than ${MAX_LINE} bytes`));
        return;
      }
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.push(line);
      }
    });
    sock.on('error', (e) => this.fail(new ApplianceError('ERR_LAB_RELAY', `QMP socket: ${e.message}`, { cause: e })));
    sock.on('close', () => this.fail(new ApplianceError('ERR_LAB_RELAY', 'QMP socket closed')));
  }

  /** Connect, read the greeting and negotiate capabilities, within `timeoutMs`. */
  static async connect(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    const sock = connect(path);
    const c = new QmpClient(sock);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new ApplianceError('ERR_LAB_RELAY', `QMP: no connection to ${path} within ${timeoutMs} ms`)), timeoutMs);
      sock.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
      sock.once('error', (e) => {
        clearTimeout(t);
        reject(new ApplianceError('ERR_LAB_RELAY', `QMP: cannot connect to ${path}: ${e.message}`, { cause: e }));
      });
    });
    const greeting = await c.next(timeoutMs);
    if (!('QMP' in greeting)) throw new ApplianceError('ERR_LAB_RELAY', `QMP: the first line is not a greeting: ${JSON.stringify(greeting).slice(0, 200)}`);
    await c.execute('qmp_capabilities', undefined, timeoutMs);
    return c;
  }

  /** Run one command; its `return` value, or ERR_LAB_RELAY with QEMU's error. */
  async execute(command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<unknown> {
    this.sock.write(`${JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args })}\n`);
    const end = Date.now() + timeoutMs;
    for (;;) {
      const msg = await this.next(Math.max(1, end - Date.now()));
      if ('event' in msg) continue;
      if ('error' in msg) {
        const err = msg.error as { class?: string; desc?: string };
        throw new ApplianceError('ERR_LAB_RELAY', `QMP ${command}: ${err.class ?? 'error'}: ${err.desc ?? JSON.stringify(err)}`);
      }
      if ('return' in msg) return msg.return;
    }
  }

  /** An HMP command through QMP (`human-monitor-command`); its text output. */
  async hmp(commandLine: string, timeoutMs: number): Promise<string> {
    const out = await this.execute('human-monitor-command', { 'command-line': commandLine }, timeoutMs);
    return typeof out === 'string' ? out : '';
  }

  close(): void {
    this.sock.destroy();
  }

  private push(line: string): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(line);
    } else this.lines.push(line);
  }

  private fail(e: Error): void {
    this.closedWith ??= e;
    const w = this.waiter;
    this.waiter = undefined;
    w?.(e);
  }

  private async next(timeoutMs: number): Promise<Record<string, unknown>> {
    const line =
      this.lines.shift() ??
      (await new Promise<string>((resolve, reject) => {
        if (this.closedWith) return reject(this.closedWith);
        const t = setTimeout(() => {
          this.waiter = undefined;
          reject(new ApplianceError('ERR_LAB_RELAY', `QMP: no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        this.waiter = (l) => {
          clearTimeout(t);
          if (l instanceof Error) reject(l);
          else resolve(l);
        };
      }));
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      throw new ApplianceError('ERR_LAB_RELAY', `QMP: not JSON: ${line.slice(0, 200)}`);
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new ApplianceError('ERR_LAB_RELAY', `QMP: not an object: ${line.slice(0, 200)}`);
    return msg as Record<string, unknown>;
  }
}
