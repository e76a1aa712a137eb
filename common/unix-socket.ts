/**
 * Claiming a path for a unix socket server (the manager's control socket, NBD exports).
 *
 * The folder is made 0700 when we create it, and refused when another user owns it or others may
 * write to it (they could swap the socket for their own: an NBD export is a raw disk, the control
 * socket reports on every sandbox). A path that exists is taken over only when it is a stale
 * socket, i.e. nothing answers a connect; a live one, or a file that is not a socket, is an error.
 */
import { lstatSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';

/** Resolves true when something accepts a connection on the unix socket `path` within `ms`. */
export function socketAnswers(path: string, ms = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    const t = setTimeout(() => {
      c.destroy();
      resolve(true);
    }, ms); // a listener too busy to accept is still alive
    c.once('connect', () => {
      clearTimeout(t);
      c.destroy();
      resolve(true);
    });
    c.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

export interface ClaimOptions {
  /**
   * Makes the error thrown when the path cannot be claimed, of the caller's own class and code:
   * `(message, fix) => new SandboxError('ERR_SANDBOX_CONTROL', message, { fix })`.
   */
  error: (message: string, fix: string) => Error;
  /** What would be served, for messages: `NBD`, `the control socket`. */
  what: string;
  /** The fix when another server is listening there. */
  busyFix: string;
  /** The fix when the path is some other file. */
  notSocketFix: string;
}

export async function claimSocketPath(path: string, o: ClaimOptions): Promise<void> {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const d = lstatSync(dir);
  const uid = process.getuid?.();
  if (!d.isDirectory() || (uid !== undefined && d.uid !== uid) || (d.mode & 0o022) !== 0) {
    throw o.error(
      `cannot serve ${o.what} in ${dir}: it is ${!d.isDirectory() ? 'not a plain directory' : d.uid !== uid ? `owned by uid ${d.uid}, not this user (${uid})` : `writable by others (mode ${(d.mode & 0o777).toString(8)})`}`,
      `use a socket in a directory only this user can write (remove ${dir} and let dmabox create it, or chmod go-w it)`,
    );
  }
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw o.error(`cannot serve ${o.what} on ${path}: it exists and is not a socket`, o.notSocketFix);
  if (await socketAnswers(path)) throw o.error(`cannot serve ${o.what} on ${path}: another server is listening there`, o.busyFix);
  rmSync(path, { force: true });
}
