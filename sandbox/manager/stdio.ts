/**
 * The stdout/stderr of an untrusted child (a driver container, a device process) into the log: at
 * most 50 lines a second reach it (a child printing in a loop must not flood the manager), each cut
 * to 512 characters, control characters replaced (no forged lines, no terminal escapes).
 */
import { LogLevel } from '../abi/hypercall/index.js';
import type { Timers } from '../../common/timers.js';

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f]/g;

/** A 'data' listener factory per stream; both streams of one child share the rate window. */
export function stdioLines(clock: Timers, log: (level: LogLevel, text: string) => void): (level: LogLevel) => (chunk: Buffer) => void {
  let windowStart = 0,
    lines = 0,
    dropped = 0;
  return (level: LogLevel) => (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      const now = clock.now();
      if (now - windowStart >= 1000) {
        if (dropped > 0) log(LogLevel.WARN, `[stdio] ${dropped} line(s) dropped (more than 50 a second)`);
        windowStart = now;
        lines = 0;
        dropped = 0;
      }
      if (++lines > 50) {
        dropped++;
        continue;
      }
      log(level, `[stdio] ${line.slice(0, 512).replace(CONTROL_CHARACTERS, '?')}`);
    }
  };
}
