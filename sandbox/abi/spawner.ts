/**
 * The spawner protocol: what crosses between the manager (unprivileged after set-up, and exposed to
 * container data) and the privileged spawner that starts and kills containers for it
 * (sandbox/spawner/; sandbox/abi/README.md, "The spawner protocol").
 *
 * One AF_UNIX SOCK_SEQPACKET socketpair: each datagram is one frame, so no stream reassembly and
 * fds travel with the frame they belong to (SCM_RIGHTS). A frame is a 16-byte header (magic,
 * version, type, request id, body length) and a UTF-8 JSON body of at most MAX_BODY bytes. Both
 * sides check every frame with the readers below; the spawner then checks what a request asks for
 * (sandbox/spawner/server.ts).
 */
import { DmaboxError } from '../../common/errors.js';
import { MSG_DONTWAIT, MSG_NOSIGNAL, type Sys } from 'linux-sys';

export type SpawnerProtocolCode =
  | 'ERR_SPAWNER_FRAME' // a frame that is not one of this protocol's (magic, version, type, size, body)
  | 'ERR_SPAWNER_REFUSED' // the spawner refused a request (not a program, identity, fd, signal or pid it serves)
  | 'ERR_SPAWNER_GONE' // the other end of the spawner socket closed (manager or spawner died)
  | 'ERR_SPAWNER_START'; // the spawner could not be started or did not say hello in time

export class SpawnerProtocolError extends DmaboxError<SpawnerProtocolCode> {}

/** 'DMSP' read as a little-endian u32. */
export const SPAWNER_MAGIC = 0x50534d44;
export const SPAWNER_VERSION = 1;
export const HEADER_BYTES = 16;
/** Largest JSON body; a LAUNCH with its argv and env fits in a few hundred bytes. */
export const MAX_BODY = 8192;
export const MAX_FRAME = HEADER_BYTES + MAX_BODY;
/**
 * At most this many fds in one LAUNCH: stdout, stderr and the child's fds from 3 on. The most a
 * policy can need: 2 + hypercall and code 2 + the device 2 + 64 windows + 65 interrupt eventfds +
 * a service's few = about 140.
 */
export const MAX_LAUNCH_FDS = 160;
/** Bounds on a LAUNCH's strings. */
export const MAX_ARGS = 32;
export const MAX_ARG_BYTES = 1024;

/** Header offsets. */
export const HDR = Object.freeze({ magic: 0, version: 4, type: 6, id: 8, length: 12 });

export enum SpType {
  /** spawner -> manager, id 0, once at start: { pid, uid } */
  HELLO = 1,
  /** manager -> spawner: LaunchRequest; fds [stdout, stderr, ...fds] */
  LAUNCH = 2,
  /** spawner -> manager, the LAUNCH's id: { pid, uid, gid, cgroup, missing } */
  LAUNCHED = 3,
  /** manager -> spawner: { pid, signal } */
  KILL = 4,
  /** spawner -> manager, the KILL's id: {} */
  OK = 5,
  /** spawner -> manager, the request's id (0: about no request): { code, message } */
  ERROR = 6,
  /** spawner -> manager, id 0: { pid, code, signal, oom } when a launched process has gone */
  EXIT = 7,
  /** manager -> spawner, only before SEAL: { path } a unix socket the manager serves, removed when the spawner exits */
  REMOVE_AT_EXIT = 8,
  /** manager -> spawner: {} set-up is over (the manager leaves root next): no more REMOVE_AT_EXIT */
  SEAL = 9,
}

/** Signals the manager may have sent to a process the spawner launched. */
export const SIGNALS: readonly NodeJS.Signals[] = Object.freeze(['SIGKILL', 'SIGTERM', 'SIGINT']);

export interface LaunchRequest {
  sandbox: string;
  role: 'driver' | 'device';
  argv: string[];
  env: Record<string, string>;
  limits: { memoryBytes: number; pids: number; cpuWeight: number };
  confined: boolean;
}
export interface LaunchedReply {
  pid: number;
  uid: number;
  gid: number;
  cgroup: string | null;
  /** The confinement the process lacks, in words (empty: none missing). */
  missing: string[];
}
export interface KillRequest {
  pid: number;
  signal: NodeJS.Signals;
}
export interface ExitNotice {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  oom: boolean;
}
export interface Frame {
  type: SpType;
  id: number;
  body: unknown;
}

function bad(message: string): SpawnerProtocolError {
  return new SpawnerProtocolError('ERR_SPAWNER_FRAME', message, {
    fix: 'both ends must be of one dmabox build; a manager that sends this is not to be trusted',
  });
}

/** One frame as bytes; refused when the body exceeds MAX_BODY. */
export function encodeFrame(type: SpType, id: number, body: unknown): Uint8Array {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  if (json.length > MAX_BODY) throw bad(`a ${type} frame's body of ${json.length} bytes exceeds ${MAX_BODY}`);
  const out = new Uint8Array(HEADER_BYTES + json.length);
  const v = new DataView(out.buffer);
  v.setUint32(HDR.magic, SPAWNER_MAGIC, true);
  v.setUint16(HDR.version, SPAWNER_VERSION, true);
  v.setUint16(HDR.type, type, true);
  v.setUint32(HDR.id, id >>> 0, true);
  v.setUint32(HDR.length, json.length, true);
  out.set(json, HEADER_BYTES);
  return out;
}

/** Check and read one received datagram of `bytes` bytes (`truncated`: it did not fit MAX_FRAME). */
export function decodeFrame(data: Uint8Array, bytes: number): Frame {
  if (bytes > MAX_FRAME || bytes > data.byteLength) throw bad(`a frame of more than ${MAX_FRAME} bytes`);
  if (bytes < HEADER_BYTES) throw bad(`a frame of ${bytes} bytes, shorter than its ${HEADER_BYTES}-byte header`);
  const v = new DataView(data.buffer, data.byteOffset, bytes);
  if (v.getUint32(HDR.magic, true) !== SPAWNER_MAGIC) throw bad('a frame without the spawner magic');
  const version = v.getUint16(HDR.version, true);
  if (version !== SPAWNER_VERSION) throw bad(`a frame of protocol version ${version}; this end speaks ${SPAWNER_VERSION}`);
  const type = v.getUint16(HDR.type, true);
  if (type < SpType.HELLO || type > SpType.SEAL) throw bad(`a frame of unknown type ${type}`);
  const length = v.getUint32(HDR.length, true);
  if (length !== bytes - HEADER_BYTES) throw bad(`a frame whose header says ${length} body bytes and carries ${bytes - HEADER_BYTES}`);
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(data.buffer, data.byteOffset + HEADER_BYTES, length).toString('utf8'));
  } catch {
    throw bad(`a type ${type} frame whose body is not JSON`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad(`a type ${type} frame whose body is not an object`);
  return { type: type as SpType, id: v.getUint32(HDR.id, true), body };
}

// Field readers: each returns the value or throws ERR_SPAWNER_FRAME naming the field.
type Obj = Record<string, unknown>;
function only(o: Obj, keys: readonly string[], what: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw bad(`${what}: unexpected field ${JSON.stringify(k.slice(0, 32))}`);
}
function int(o: Obj, k: string, min: number, max: number): number {
  const n = o[k];
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) throw bad(`${k}: expected an integer ${min}..${max}`);
  return n;
}
function str(o: Obj, k: string, max: number): string {
  const s = o[k];
  if (typeof s !== 'string' || s.length > max) throw bad(`${k}: expected a string of at most ${max} characters`);
  return s;
}
function signalOf(v: unknown, k: string): NodeJS.Signals {
  if (typeof v !== 'string' || !(SIGNALS as readonly string[]).includes(v)) throw bad(`${k}: expected one of ${SIGNALS.join(', ')}`);
  return v as NodeJS.Signals;
}

export function readLaunch(body: unknown): LaunchRequest {
  const o = body as Obj;
  only(o, ['sandbox', 'role', 'argv', 'env', 'limits', 'confined'], 'LAUNCH');
  const sandbox = str(o, 'sandbox', 32);
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(sandbox)) throw bad('sandbox: expected a policy name (lower-case letters, digits, dashes)');
  if (o.role !== 'driver' && o.role !== 'device') throw bad("role: expected 'driver' or 'device'");
  const argv = o.argv;
  if (!Array.isArray(argv) || argv.length < 2 || argv.length > MAX_ARGS) throw bad(`argv: expected 2 to ${MAX_ARGS} strings`);
  for (const a of argv)
    if (typeof a !== 'string' || a.length > MAX_ARG_BYTES || a.includes('\0')) throw bad(`argv: each a string of at most ${MAX_ARG_BYTES} characters`);
  const env = o.env;
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw bad('env: expected an object of strings');
  for (const [k, v] of Object.entries(env as Obj))
    if (typeof v !== 'string' || v.length > MAX_ARG_BYTES || k.length > 64) throw bad(`env: ${k.slice(0, 64)} is not a short string`);
  const limits = o.limits as Obj;
  if (typeof limits !== 'object' || limits === null) throw bad('limits: expected an object');
  only(limits, ['memoryBytes', 'pids', 'cpuWeight'], 'limits');
  if (typeof o.confined !== 'boolean') throw bad('confined: expected a boolean');
  return {
    sandbox,
    role: o.role,
    argv: argv as string[],
    env: env as Record<string, string>,
    limits: { memoryBytes: int(limits, 'memoryBytes', 1, 2 ** 50), pids: int(limits, 'pids', 1, 1 << 22), cpuWeight: int(limits, 'cpuWeight', 1, 10_000) },
    confined: o.confined,
  };
}

export function readKill(body: unknown): KillRequest {
  const o = body as Obj;
  only(o, ['pid', 'signal'], 'KILL');
  return { pid: int(o, 'pid', 1, 2 ** 22), signal: signalOf(o.signal, 'signal') };
}

export function readRemoveAtExit(body: unknown): { path: string } {
  const o = body as Obj;
  only(o, ['path'], 'REMOVE_AT_EXIT');
  const path = str(o, 'path', 4096);
  if (!path.startsWith('/') || path.includes('\0')) throw bad('path: expected an absolute path');
  return { path };
}

export function readLaunched(body: unknown): LaunchedReply {
  const o = body as Obj;
  const cgroup = o.cgroup === null ? null : str(o, 'cgroup', 4096);
  const list = o.missing;
  if (!Array.isArray(list) || list.length > 8 || !list.every((m) => typeof m === 'string' && m.length <= 512)) {
    throw new SpawnerProtocolError('ERR_SPAWNER_FRAME', 'LAUNCHED: missing must be a list of at most 8 strings of at most 512 characters');
  }
  return { pid: int(o, 'pid', 1, 2 ** 22), uid: int(o, 'uid', 1, 2 ** 32 - 2), gid: int(o, 'gid', 1, 2 ** 32 - 2), cgroup, missing: list as string[] };
}

export function readExit(body: unknown): ExitNotice {
  const o = body as Obj;
  return {
    pid: int(o, 'pid', 1, 2 ** 22),
    code: o.code === null ? null : int(o, 'code', 0, 255),
    signal: o.signal === null ? null : (str(o, 'signal', 16) as NodeJS.Signals),
    oom: o.oom === true,
  };
}

export function readError(body: unknown): { code: string; message: string } {
  const o = body as Obj;
  return { code: str(o, 'code', 64), message: str(o, 'message', 2048) };
}

/** One end of the spawner socket: frames in (with their fds) and out, inside Node's event loop. */
export interface SpawnerChannel {
  /** Send one frame; `fds` go with it (SCM_RIGHTS). Throws ERR_SPAWNER_GONE when the peer has closed. */
  send(type: SpType, id: number, body: unknown, fds?: readonly number[]): void;
  /** Stop reading and close the fd; idempotent. */
  close(): void;
  readonly closed: boolean;
}

export interface ChannelHandlers {
  /** A well-formed frame and the fds that came with it (the handler owns them). */
  frame(f: Frame, fds: number[]): void;
  /** A frame that is not one (its fds already closed): the peer cannot be trusted to speak this protocol. */
  malformed(e: SpawnerProtocolError): void;
  /** The peer closed its end (or the socket failed); called once, after which the channel is closed. */
  gone(reason: string): void;
}

/** The part of the syscall seam the channel uses. */
export type ChannelSys = Pick<Sys, 'poll' | 'recvFds' | 'sendFds' | 'close'>;

/** Serve `fd`, an AF_UNIX SOCK_SEQPACKET socket, with the spawner protocol. */
export function openChannel(sys: ChannelSys, fd: number, h: ChannelHandlers): SpawnerChannel {
  // One byte more than a frame may have: a datagram that fills it was longer (SEQPACKET cuts it).
  const buf = new Uint8Array(MAX_FRAME + 1);
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    poller.close();
    sys.close(fd);
  };
  const gone = (reason: string): void => {
    if (closed) return;
    close();
    h.gone(reason);
  };
  const poller = sys.poll(fd, () => {
    // A bounded number of frames per wake-up, so a flood cannot hold the event loop.
    for (let i = 0; i < 64 && !closed; i++) {
      let r: { bytes: number; fds: number[]; truncated: boolean };
      try {
        r = sys.recvFds(fd, buf, MAX_LAUNCH_FDS, MSG_DONTWAIT);
      } catch (e) {
        const errno = (e as { errnoName?: string }).errnoName;
        if (errno === 'EAGAIN' || errno === 'EWOULDBLOCK' || errno === 'EINTR') return;
        gone(`receiving failed: ${(e as Error).message}`);
        return;
      }
      if (r.bytes === 0 && r.fds.length === 0) {
        gone('the peer closed the spawner socket');
        return;
      }
      let f: Frame;
      try {
        if (r.truncated) throw bad(`a frame with more than ${MAX_LAUNCH_FDS} fds`);
        f = decodeFrame(buf, r.bytes);
      } catch (e) {
        for (const n of r.fds) sys.close(n);
        h.malformed(e as SpawnerProtocolError);
        continue;
      }
      h.frame(f, r.fds);
    }
  });
  return {
    send(type, id, body, fds = []) {
      if (closed)
        throw new SpawnerProtocolError('ERR_SPAWNER_GONE', 'the spawner socket is closed', { fix: 'the other end died: see the log before this line' });
      try {
        sys.sendFds(fd, encodeFrame(type, id, body), fds, MSG_DONTWAIT | MSG_NOSIGNAL);
      } catch (e) {
        if (e instanceof SpawnerProtocolError) throw e;
        gone(`sending failed: ${(e as Error).message}`);
        throw new SpawnerProtocolError('ERR_SPAWNER_GONE', `sending to the spawner socket failed: ${(e as Error).message}`, { cause: e });
      }
    },
    close,
    get closed() {
      return closed;
    },
  };
}
