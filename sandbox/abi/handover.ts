/**
 * The handover of a spare: a container or device process started ahead of need, holding nothing
 * of its sandbox, is given its fds when it takes over (sandbox/manager/spare.ts).
 *
 * A spare is launched as its sandbox's own identity, in its own cgroup and namespaces, with the
 * entry's usual program and one argument, `spare`, and with fd 3 (its future hypercall or device
 * protocol socket, a fresh socketpair end) repeated on every slot from 3 to 3 + SPARE_SLOTS - 1:
 * the repeats only hold those numbers, so that Node's own fds are opened above them. It loads its
 * modules, then waits (blocking: it has nothing else to do) for one HANDOVER message on fd 3:
 *
 *   u32 magic HANDOVER_MAGIC, u16 version HANDOVER_VERSION, u16 count, u64 reserved (zero)
 *
 * with `count` fds passed with it (SCM_RIGHTS), in slot order from 4. Before it receives, the spare
 * closes slots 4 .. 3 + SPARE_SLOTS - 1, so the kernel, which installs received fds at the lowest
 * free numbers, puts them at 4, 5, ...: the slots a freshly launched process would have inherited.
 * The spare checks they did (any other numbers, a short or foreign message, the socket closed:
 * it exits with HANDOVER_EXIT and is never used). Then it runs as any process of its role.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MSG_DONTWAIT, MSG_NOSIGNAL, type Sys } from 'linux-sys';
import { AbiError } from './errors.js';

export const HANDOVER_MAGIC = 0x766f6448; // 'Hdov' little-endian
export const HANDOVER_VERSION = 1;
export const HANDOVER_BYTES = 16;
/** The argument after the entry that makes a process a spare. */
export const SPARE_ARG = 'spare';
/**
 * A spare device process's environment may name its sandbox's namespace store size in bytes: it
 * reserves that address range before it waits (sandbox/device/store-reservation.ts).
 */
export const SPARE_STORE_ENV = 'DMABOX_SPARE_STORE_BYTES';
/** The socket a spare receives on, and the first slot after it. */
export const HANDOVER_FD = 3;
/** Slots a spare holds from fd 3 (its socket and the repeats): at most SPARE_SLOTS - 1 fds can be handed over. */
export const SPARE_SLOTS = 64;
/** A spare that could not take over exits with this (EX_UNAVAILABLE). */
export const HANDOVER_EXIT = 69;

export function encodeHandover(count: number): Uint8Array {
  if (!Number.isInteger(count) || count < 0 || count > SPARE_SLOTS - 1) {
    throw new AbiError('ERR_ABI_HANDOVER', `a spare takes 0 to ${SPARE_SLOTS - 1} fds, not ${count}`, {
      fix: 'a sandbox needing more fds than a spare holds slots for starts its processes cold',
    });
  }
  const b = new Uint8Array(HANDOVER_BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(0, HANDOVER_MAGIC, true);
  v.setUint16(4, HANDOVER_VERSION, true);
  v.setUint16(6, count, true);
  return b;
}

/** The fd count a HANDOVER message announces; throws ERR_ABI_HANDOVER for anything else. */
export function decodeHandover(b: Uint8Array, bytes: number): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (bytes !== HANDOVER_BYTES || v.getUint32(0, true) !== HANDOVER_MAGIC) {
    throw new AbiError('ERR_ABI_HANDOVER', `not a handover message (${bytes} bytes)`, { fix: 'the manager and its spares must come from the same build' });
  }
  if (v.getUint16(4, true) !== HANDOVER_VERSION) {
    throw new AbiError('ERR_ABI_HANDOVER', `handover version ${v.getUint16(4, true)}, this build speaks ${HANDOVER_VERSION}`, {
      fix: 'the manager and its spares must come from the same build',
    });
  }
  if (v.getBigUint64(8, true) !== 0n)
    throw new AbiError('ERR_ABI_HANDOVER', 'handover reserved field not zero', { fix: 'the manager and its spares must come from the same build' });
  return v.getUint16(6, true);
}

/** The manager's side: `fds` (slots 4, 5, ...) to the spare behind `socket`. */
export function sendHandover(sys: Pick<Sys, 'sendFds'>, socket: number, fds: readonly number[]): void {
  const msg = encodeHandover(fds.length);
  const sent = sys.sendFds(socket, msg, fds, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent !== msg.length) throw new AbiError('ERR_ABI_HANDOVER', `handover sent ${sent} of ${msg.length} bytes`, { fix: 'the spare is gone: start cold' });
}

/**
 * A full garbage collection, for a spare that is about to block in `receiveHandover`: V8 collects
 * only while JavaScript runs, so the start-up's garbage, or a collection it began (a large view
 * made), would otherwise be collected after the takeover, on the restart's path. Needs no
 * --expose-gc on the command line.
 */
export function collectBeforeWaiting(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/**
 * The spare's side: drop the placeholder slots, wait for HANDOVER, check its fds landed on slots
 * 4, 5, ... Returns how many there are; throws ERR_ABI_HANDOVER otherwise (the caller exits).
 */
export function receiveHandover(sys: Pick<Sys, 'close' | 'recvFds'>): number {
  for (let fd = HANDOVER_FD + 1; fd < HANDOVER_FD + SPARE_SLOTS; fd++) {
    try {
      sys.close(fd);
    } catch {
      // a slot the launch did not fill
    }
  }
  const buf = new Uint8Array(HANDOVER_BYTES);
  const r = sys.recvFds(HANDOVER_FD, buf, SPARE_SLOTS - 1, 0);
  if (r.bytes === 0) throw new AbiError('ERR_ABI_HANDOVER', 'the manager closed the handover socket: the spare was not needed', { fix: '-' });
  const count = decodeHandover(buf, r.bytes);
  const expected = r.fds.every((fd, i) => fd === HANDOVER_FD + 1 + i);
  if (r.truncated || r.fds.length !== count || !expected) {
    throw new AbiError(
      'ERR_ABI_HANDOVER',
      `handover of ${count} fds landed on ${r.fds.join(',') || 'none'}${r.truncated ? ' (truncated)' : ''}, not on slots 4..${3 + count}`,
      {
        fix: 'a spare must hold every slot from 4 until it receives (SPARE_SLOTS); start cold',
      },
    );
  }
  return count;
}
