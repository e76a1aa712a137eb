/**
 * Socket input into one reused buffer per connection, instead of a fresh buffer per read.
 *
 * A stream socket from `net.Server` gets each read(2)'s bytes in a new ArrayBuffer. Under load that is
 * one native allocation per read, and the external memory behind them is what V8 counts toward its
 * next major collection: the NBD server spent about a third of its time in the collector at queue
 * depth 16 (bench/RESULTS.md, 2026-12-05 13:12). Node reads into a buffer of the caller's with
 * `onread`, but offers that only for a socket it creates, not for one a server accepts. So the
 * accepted socket's handle is moved onto a socket made with `onread`: the server's socket gives up its
 * handle (it never read, the server accepts paused) and is destroyed when the new one closes, which
 * keeps the server's connection count right for `close()`.
 *
 * The bytes handed to `onChunk` are valid only until the next read overwrites them. A consumer that
 * keeps input past the call copies it (a write payload in flight), or pauses the socket (Node then
 * stops reading it) and resumes only once it is done with those bytes (input held back).
 *
 * This uses two fields Node does not document (`_handle`, read and cleared), so it checks what it
 * finds and returns null when the socket is not as expected: the caller then reads as before.
 */
import net from 'node:net';

/** Bytes read per read(2): room for several 4 KiB writes of a queue-depth-16 burst. */
export const READ_BUFFER_BYTES = 256 << 10;

interface HandleOwner {
  _handle?: { readStart?: unknown } | null;
}

/**
 * Move `socket` (accepted with `pauseOnConnect`, nothing read yet) onto a socket that reads into
 * `buffer`, calling `onChunk` with a view of each read's bytes. Returns the new socket, or null when
 * this Node's socket has no handle to move (the caller keeps `socket` and its 'data' events).
 */
export function readIntoReusedBuffer(socket: net.Socket, buffer: Buffer, onChunk: (chunk: Buffer) => void): net.Socket | null {
  const owner = socket as unknown as HandleOwner;
  const handle = owner._handle;
  if (handle === null || handle === undefined || typeof handle.readStart !== 'function' || socket.destroyed) return null;
  const options = {
    handle,
    allowHalfOpen: socket.allowHalfOpen,
    onread: {
      buffer,
      callback: (n: number, buf: Uint8Array): boolean => {
        onChunk((buf as Buffer).subarray(0, n));
        return true;
      },
    },
  };
  // `handle` is an option Node takes but does not declare.
  const moved = new net.Socket(options as net.SocketConstructorOpts);
  owner._handle = null;
  // The server counts `socket` as its connection until it is destroyed: end both together.
  moved.once('close', () => socket.destroy());
  return moved;
}
