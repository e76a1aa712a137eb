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
 *
 * A spare container may first be sent one PREPARE message (the manager sends it at launch):
 *
 *   u32 magic PREPARE_MAGIC, u16 version HANDOVER_VERSION, u16 count (1), u64 reserved (zero),
 *   char profile[16] (the seccomp profile, printable ASCII, NUL-padded)
 *
 * with one fd, a memfd holding its sandbox's driver code image (code.ts). The spare reads the code,
 * closes the fd, confines itself with that profile, evaluates the code confined (as a container
 * launched cold does after its own confinement), then waits for HANDOVER as above
 * (sandbox/container/prepare.ts). A device process spare is never sent one and refuses it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MSG_DONTWAIT, MSG_NOSIGNAL, type Sys } from 'linux-sys';
import { paddedAscii } from './ascii.js';
import { AbiError } from './errors.js';

export const HANDOVER_MAGIC = 0x766f6448; // 'Hdov' little-endian
export const PREPARE_MAGIC = 0x70726448; // 'Hdrp' little-endian
export const HANDOVER_VERSION = 1;
export const HANDOVER_BYTES = 16;
/** A PREPARE message: the HANDOVER layout, then the profile's name in 16 bytes. */
export const PREPARE_BYTES = HANDOVER_BYTES + 16;
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

const SAME_BUILD = { fix: 'the manager and its spares must come from the same build' };

/** A PREPARE message naming seccomp profile `profile` (1 to 16 printable ASCII characters; its one fd travels beside it). */
export function encodePrepare(profile: string): Uint8Array {
  if (!/^[!-~]{1,16}$/.test(profile)) {
    throw new AbiError(
      'ERR_ABI_HANDOVER',
      `a spare's seccomp profile name must be 1 to 16 printable ASCII characters, not ${JSON.stringify(profile.slice(0, 40))}`,
      {
        fix: 'name a profile of sandbox/seccomp/profiles.ts',
      },
    );
  }
  const b = new Uint8Array(PREPARE_BYTES);
  b.set(encodeHandover(1));
  new DataView(b.buffer).setUint32(0, PREPARE_MAGIC, true);
  for (let i = 0; i < profile.length; i++) b[HANDOVER_BYTES + i] = profile.charCodeAt(i);
  return b;
}

/** The profile a PREPARE message names; throws ERR_ABI_HANDOVER for anything else. */
export function decodePrepare(b: Uint8Array, bytes: number): string {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (bytes !== PREPARE_BYTES || v.getUint32(0, true) !== PREPARE_MAGIC) {
    throw new AbiError('ERR_ABI_HANDOVER', `not a prepare message (${bytes} bytes)`, SAME_BUILD);
  }
  checkHeader(v);
  if (v.getUint16(6, true) !== 1) throw new AbiError('ERR_ABI_HANDOVER', `a prepare message passes 1 fd, not ${v.getUint16(6, true)}`, SAME_BUILD);
  // No spaces in a profile's name: printable from 0x21.
  const profile = paddedAscii(b.subarray(HANDOVER_BYTES, PREPARE_BYTES), 0x21);
  if (profile === undefined) throw new AbiError('ERR_ABI_HANDOVER', "a prepare message's profile name is not printable ASCII, NUL-padded", SAME_BUILD);
  if (!profile) throw new AbiError('ERR_ABI_HANDOVER', "a prepare message's profile name is empty", SAME_BUILD);
  return profile;
}

function checkHeader(v: DataView): void {
  if (v.getUint16(4, true) !== HANDOVER_VERSION) {
    throw new AbiError('ERR_ABI_HANDOVER', `handover version ${v.getUint16(4, true)}, this build speaks ${HANDOVER_VERSION}`, SAME_BUILD);
  }
  if (v.getBigUint64(8, true) !== 0n) throw new AbiError('ERR_ABI_HANDOVER', 'handover reserved field not zero', SAME_BUILD);
}

/** The fd count a HANDOVER message announces; throws ERR_ABI_HANDOVER for anything else. */
export function decodeHandover(b: Uint8Array, bytes: number): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (bytes !== HANDOVER_BYTES || v.getUint32(0, true) !== HANDOVER_MAGIC) {
    throw new AbiError('ERR_ABI_HANDOVER', `not a handover message (${bytes} bytes)`, SAME_BUILD);
  }
  checkHeader(v);
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

type SpareSys = Pick<Sys, 'close' | 'recvFds'>;

/** Close slots 4 .. 3 + SPARE_SLOTS - 1 (the placeholders; a slot already closed is skipped), so received fds land on 4, 5, ... */
function dropSlots(sys: SpareSys): void {
  for (let fd = HANDOVER_FD + 1; fd < HANDOVER_FD + SPARE_SLOTS; fd++) {
    try {
      sys.close(fd);
    } catch {
      // a slot the launch did not fill, or closed already
    }
  }
}

function notNeeded(): AbiError {
  return new AbiError('ERR_ABI_HANDOVER', 'the manager closed the handover socket: the spare was not needed', { fix: '-' });
}

/** The fd count of a received HANDOVER, its fds checked to be on slots 4, 5, ... */
function landed(buf: Uint8Array, r: ReturnType<Sys['recvFds']>): number {
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

/**
 * The spare's side: drop the placeholder slots, wait for HANDOVER, check its fds landed on slots
 * 4, 5, ... Returns how many there are; throws ERR_ABI_HANDOVER otherwise (the caller exits).
 */
export function receiveHandover(sys: SpareSys): number {
  dropSlots(sys);
  const buf = new Uint8Array(HANDOVER_BYTES);
  const r = sys.recvFds(HANDOVER_FD, buf, SPARE_SLOTS - 1, 0);
  if (r.bytes === 0) throw notNeeded();
  return landed(buf, r);
}

/** What a spare container receives first: PREPARE (its code memfd on slot 4) or HANDOVER. */
export type SpareMessage = { kind: 'prepare'; profile: string; fd: number } | { kind: 'handover'; count: number };

/**
 * A spare container's first receive: drop the placeholder slots, then one PREPARE, with its fd on
 * slot 4, or one HANDOVER (a spare the manager did not prepare). Throws ERR_ABI_HANDOVER for
 * anything else (the caller exits).
 */
export function receiveSpareMessage(sys: SpareSys): SpareMessage {
  dropSlots(sys);
  const head = new Uint8Array(HANDOVER_BYTES);
  const r = sys.recvFds(HANDOVER_FD, head, SPARE_SLOTS - 1, 0);
  if (r.bytes === 0) throw notNeeded();
  if (r.bytes !== HANDOVER_BYTES || new DataView(head.buffer).getUint32(0, true) !== PREPARE_MAGIC) return { kind: 'handover', count: landed(head, r) };
  const whole = new Uint8Array(PREPARE_BYTES);
  whole.set(head);
  let got = HANDOVER_BYTES;
  try {
    while (got < PREPARE_BYTES) {
      const part = new Uint8Array(PREPARE_BYTES - got);
      const q = sys.recvFds(HANDOVER_FD, part, 0, 0);
      if (q.bytes === 0) throw notNeeded();
      whole.set(part.subarray(0, q.bytes), got);
      got += q.bytes;
    }
    const profile = decodePrepare(whole, got);
    if (r.truncated || r.fds.length !== 1 || r.fds[0] !== HANDOVER_FD + 1) {
      throw new AbiError('ERR_ABI_HANDOVER', `a prepare message's fd landed on ${r.fds.join(',') || 'none'}, not on slot 4`, SAME_BUILD);
    }
    return { kind: 'prepare', profile, fd: r.fds[0] };
  } catch (e) {
    for (const fd of r.fds) sys.close(fd);
    throw e;
  }
}

/** The manager's side: PREPARE for the spare container behind `socket`, with its driver code memfd `codeFd`. */
export function sendPrepare(sys: Pick<Sys, 'sendFds'>, socket: number, profile: string, codeFd: number): void {
  const msg = encodePrepare(profile);
  const sent = sys.sendFds(socket, msg, [codeFd], MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent !== msg.length) throw new AbiError('ERR_ABI_HANDOVER', `prepare sent ${sent} of ${msg.length} bytes`, { fix: 'the spare is gone: start cold' });
}
