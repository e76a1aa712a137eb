/**
 * A container's own stdout/stderr into the sandbox's log, bounded two ways, because one event loop
 * serves every sandbox and a container may write as fast as a pipe takes it:
 *
 * - lines: at most `LINES_PER_SECOND` a second reach the log (cut to 512 characters, control
 *   characters replaced: no forged lines, no terminal escapes); the rest are counted, not split
 *   out, and one line says how many were dropped;
 * - work per turn: at most `BYTES_PER_TURN` bytes are looked at per event-loop turn; past that the
 *   stream is paused and resumed on the next turn (setImmediate), so the pipe fills and the
 *   container waits, not the other sandboxes.
 */
import type { Readable } from 'node:stream';
import { LogLevel } from '../abi/hypercall/index.js';

export const LINES_PER_SECOND = 50;
export const BYTES_PER_TURN = 64 * 1024;
const MAX_LINE = 512;
const NEWLINE = 0x0a;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f]/g;

/** One window of lines, shared by a container's stdout and stderr. */
export class StdioLines {
  private windowStart = -Infinity;
  private lines = 0;
  private dropped = 0;

  constructor(
    private readonly log: (level: LogLevel, text: string) => void,
    private readonly now: () => number,
  ) {}

  /** Read `stream` at `level`, at most BYTES_PER_TURN a turn. */
  attach(stream: Readable | null | undefined, level: LogLevel): void {
    if (!stream) return;
    let turnBytes = 0;
    let paused = false;
    const next = (): void => {
      turnBytes = 0;
      paused = false;
      if (!stream.destroyed) stream.resume();
    };
    stream.on('data', (chunk: Buffer) => {
      this.take(chunk, level);
      turnBytes += chunk.length;
      if (turnBytes >= BYTES_PER_TURN && !paused) {
        paused = true;
        stream.pause();
        setImmediate(next);
      }
    });
  }

  /** The lines of one chunk (a line cut by a chunk boundary counts as two, as before). */
  take(chunk: Uint8Array, level: LogLevel): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      const now = this.now();
      if (now - this.windowStart >= 1000) {
        if (this.dropped > 0) this.log(LogLevel.WARN, `[stdio] ${this.dropped} line(s) dropped (more than ${LINES_PER_SECOND} a second)`);
        this.windowStart = now;
        this.lines = 0;
        this.dropped = 0;
      }
      if (this.lines >= LINES_PER_SECOND) {
        // Over the limit for this second: count the rest of the chunk's lines, read none of them.
        this.dropped += countLines(chunk, i);
        return;
      }
      let end = chunk.indexOf(NEWLINE, i);
      if (end < 0) end = n;
      const text = Buffer.from(chunk.buffer, chunk.byteOffset + i, Math.min(end - i, 4 * MAX_LINE)).toString('utf8');
      i = end + 1;
      if (text.trim() === '') continue;
      this.lines++;
      this.log(level, `[stdio] ${text.slice(0, MAX_LINE).replace(CONTROL_CHARACTERS, '?')}`);
    }
  }
}

/** Non-empty lines in `b` from `from`: newlines, plus one for a last line without its newline. */
function countLines(b: Uint8Array, from: number): number {
  let k = 0;
  let empty = true;
  for (let i = from; i < b.length; i++) {
    if (b[i] === NEWLINE) {
      if (!empty) k++;
      empty = true;
    } else empty = false;
  }
  return empty ? k : k + 1;
}
