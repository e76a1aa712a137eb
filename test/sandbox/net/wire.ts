/**
 * A test's end of a sandboxed NIC's cable, now that the NIC model runs in a device process: a unix
 * socket the device-process fixture connects to (fixtures/device.ts, mode `wire:PATH`), one
 * connection per device process (a restart reconnects). Frames as u16 length + bytes both ways.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceFixture } from '../helpers.js';

export class TestWire {
  /** Frames the NIC sent, in order (kept while `keep`). */
  readonly frames: Uint8Array[] = [];
  keep = true;
  onFrame: ((f: Uint8Array) => void) | undefined;
  /** Device processes that connected. */
  connections = 0;
  private conn: Socket | undefined;
  private constructor(
    private readonly server: Server,
    readonly path: string,
    private readonly dir: string,
  ) {}

  static async open(): Promise<TestWire> {
    const dir = mkdtempSync(join(tmpdir(), 'dmabox-wire-'));
    const path = join(dir, 'wire.sock');
    const server = createServer();
    const w = new TestWire(server, path, dir);
    server.on('connection', (c) => w.accept(c));
    await new Promise<void>((r) => server.listen(path, r));
    // The device process runs as the policy's uid when the tests run as root: let it connect.
    chmodSync(dir, 0o755);
    chmodSync(path, 0o777);
    return w;
  }

  /** Supervisor options whose device processes cable their NIC to this wire. */
  options(): { deviceEntry: string; deviceEntryArgs: string[] } {
    return deviceFixture(`wire:${this.path}`);
  }

  get connected(): boolean {
    return this.conn !== undefined && !this.conn.destroyed;
  }

  private accept(c: Socket): void {
    this.conn?.destroy();
    this.conn = c;
    this.connections++;
    let buf = new Uint8Array(0);
    c.on('data', (chunk: Buffer) => {
      const joined = new Uint8Array(buf.length + chunk.length);
      joined.set(buf);
      joined.set(chunk, buf.length);
      let at = 0;
      while (joined.length - at >= 2) {
        const len = joined[at]! | (joined[at + 1]! << 8);
        if (joined.length - at - 2 < len) break;
        const f = joined.slice(at + 2, at + 2 + len);
        if (this.keep) this.frames.push(f);
        this.onFrame?.(f);
        at += 2 + len;
      }
      buf = joined.slice(at);
    });
    c.on('error', () => undefined);
  }

  /** Put a frame on the NIC's receive side (the device process offers it until the NIC takes it). */
  send(frame: Uint8Array): void {
    const out = new Uint8Array(2 + frame.length);
    new DataView(out.buffer).setUint16(0, frame.length, true);
    out.set(frame, 2);
    this.conn?.write(out);
  }

  close(): void {
    this.conn?.destroy();
    this.server.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Two NICs' wires back to back: what one sends, the other receives. */
export function relay(a: TestWire, b: TestWire): void {
  a.onFrame = (f) => b.send(f);
  b.onFrame = (f) => a.send(f);
}
