/**
 * A test's end of a sandboxed NIC's cable, now that the NIC model runs in a device process: one
 * socketpair per device process, its end inherited by the device-process fixture
 * (fixtures/device.ts, mode `wire:FD`; a restart reconnects). Frames as u16 length + bytes both ways.
 */
import { Socket } from 'node:net';
import { AF_UNIX, SOCK_CLOEXEC, SOCK_STREAM, defaultSys } from 'linux-sys';
import type { Launcher } from '../../../sandbox/manager/launcher.js';
import { deviceFixture } from '../helpers.js';
import { fixtureLauncher } from '../fixtures/device-launcher.js';
import { encodeWireFrame, WireFrameReader } from './wire-frames.js';

export class TestWire {
  /** Frames the NIC sent, in order (kept while `keep`). */
  readonly frames: Uint8Array[] = [];
  keep = true;
  onFrame: ((f: Uint8Array) => void) | undefined;
  /** Device processes that connected. */
  connections = 0;
  private conn: Socket | undefined;
  private closed = false;

  static async open(): Promise<TestWire> {
    return new TestWire();
  }

  /**
   * Supervisor options whose device processes cable their NIC to this wire: each device process
   * gets a fresh socketpair's end as an inherited fd (a confined device process sees no path of
   * the host's), so a restart reconnects.
   */
  options(): { deviceEntry: string; deviceEntryArgs: string[]; launcher: Launcher } {
    return {
      ...deviceFixture('wire'),
      launcher: fixtureLauncher({
        extraFd: () => {
          if (this.closed) return undefined;
          const [mine, theirs] = defaultSys().socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
          this.accept(new Socket({ fd: mine, readable: true, writable: true }));
          return theirs;
        },
      }),
    };
  }

  get connected(): boolean {
    return this.conn !== undefined && !this.conn.destroyed;
  }

  private accept(c: Socket): void {
    this.conn?.destroy();
    this.conn = c;
    this.connections++;
    const reader = new WireFrameReader((f) => {
      if (this.keep) this.frames.push(f);
      this.onFrame?.(f);
    });
    c.on('data', (chunk: Buffer) => reader.push(chunk));
    c.on('error', () => undefined);
  }

  /** Put a frame on the NIC's receive side (the device process offers it until the NIC takes it). */
  send(frame: Uint8Array): void {
    this.conn?.write(encodeWireFrame(frame));
  }

  close(): void {
    this.closed = true;
    this.conn?.destroy();
  }
}

/** Two NICs' wires back to back: what one sends, the other receives. */
export function relay(a: TestWire, b: TestWire): void {
  a.onFrame = (f) => b.send(f);
  b.onFrame = (f) => a.send(f);
}
