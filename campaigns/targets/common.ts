/** What every target's trial shares: this process's open fds (oracle 4) and a cancellable timeout. */
import { readdirSync } from 'node:fs';

export function fdCount(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

export function timeout(ms: number): { promise: Promise<'timeout'>; cancel(): void } {
  let t: NodeJS.Timeout | undefined;
  const promise = new Promise<'timeout'>((r) => (t = setTimeout(() => r('timeout'), ms)));
  return { promise, cancel: () => clearTimeout(t) };
}
