/** What the lab's sandbox tests share: a bounded wait, and a field of a process's /proc status. */
import { readFileSync } from 'node:fs';

/** Wait (polling every 20 ms) until `pred` holds; throws naming `what` after `ms`. */
export async function until(what: string, pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A field of /proc/PID/status (Uid, NoNewPrivs, Seccomp, ...), trimmed. */
export function field(pid: number, name: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`))!;
  return line.slice(name.length + 1).trim();
}
