/**
 * Payloads: one writer and one checked reader per layout of protocol.ts. Readers trust nothing:
 * each checks the exact length, every range and that reserved fields are zero, and throws a
 * HypercallError ('drop') the endpoint turns into a violation report.
 */
import { paddedAscii } from '../ascii.js';
import { HypercallError } from './errors.js';
import {
  CLOCK_RESULT,
  FAULT,
  FaultKind,
  FIRST_FD_SLOT,
  GETPARAM,
  GETPARAM_RESULT,
  HC_MAX_PARAM_KEY,
  HC_MAX_PARAM_VALUE,
  HEARTBEAT,
  HELLO,
  HELLO_RESULT,
  HC_MAX_LOG_TEXT,
  HcStatus,
  HcType,
  IRQ_SETUP,
  IRQ_SETUP_RESULT,
  IrqKindCode,
  LOG,
  LogLevel,
  MAP_WINDOW,
  MAP_WINDOW_RESULT,
  MAX_VECTORS,
  PERM_DEVICE_READ,
  PERM_DEVICE_WRITE,
  QUIESCE,
  QUIESCE_RESULT,
  READY,
  REPLY,
  RESULT_SIZE,
  SHUTDOWN,
  ShutdownReason,
  WINDOW_HUGE_PAGES,
  typeName,
} from './protocol.js';
import { HEADER_SIZE } from './protocol.js';

export interface Hello {
  minVersion: number;
  maxVersion: number;
  pid: number;
  name: string;
}
export interface HelloResult {
  version: number;
  windowCount: number;
  maxPayload: number;
  heartbeatMs: number;
}
export interface WindowMapping {
  iova: bigint;
  length: bigint;
  offset: bigint;
  fdSlot: number;
  deviceRead: boolean;
  deviceWrite: boolean;
  hugePages: boolean;
}
export type IrqKindName = 'msix' | 'msi' | 'intx';
export interface IrqRequest {
  kind: IrqKindName;
  vectors: number;
}
export interface IrqGrant {
  granted: number;
  firstFdSlot: number;
}
export interface ClockResult {
  monotonicNs: bigint;
  realtimeNs: bigint;
}
export interface LogRecord {
  level: LogLevel;
  text: string;
}
export interface Heartbeat {
  completed: bigint;
  errors: bigint;
  bytes: bigint;
  inflight: number;
}
export interface FaultReport {
  kind: FaultKind;
  code: number;
  iova: bigint;
}
export interface Ready {
  queues: number;
}
export interface ShutdownRequest {
  deadlineMs: number;
  reason: ShutdownReason;
}
export interface QuiesceRequest {
  deadlineMs: number;
}
export interface QuiesceResult {
  inflight: number;
}
export interface Reply {
  call: HcType;
  status: HcStatus;
}

/** Longest deadline a host request may carry (10 minutes). */
export const MAX_DEADLINE_MS = 600_000;
/** Largest pid Linux hands out (PID_MAX_LIMIT on 64-bit). */
const MAX_PID = 4_194_304;

const IRQ_KINDS: Record<IrqKindName, IrqKindCode> = { msix: IrqKindCode.MSIX, msi: IrqKindCode.MSI, intx: IrqKindCode.INTX };
const IRQ_NAMES: Record<number, IrqKindName> = { [IrqKindCode.MSIX]: 'msix', [IrqKindCode.MSI]: 'msi', [IrqKindCode.INTX]: 'intx' };
const P = HEADER_SIZE;
const utf8 = new TextDecoder('utf-8', { fatal: false });

function bad(type: HcType, what: string): HypercallError {
  return new HypercallError('ERR_HC_BAD_FIELD', 'drop', `${typeName(type)}: ${what}; dropped`);
}

export function checkLength(type: HcType, length: number, expected: number): void {
  if (length !== expected)
    throw new HypercallError('ERR_HC_BAD_LENGTH', 'drop', `${typeName(type)} payload is ${length} bytes; its layout is ${expected}; dropped`);
}

function zero(type: HcType, v: DataView, offset: number, bytes: number): void {
  for (let i = 0; i < bytes; i++) if (v.getUint8(P + offset + i) !== 0) throw bad(type, `reserved byte at payload offset ${offset + i} is not zero`);
}

function range(type: HcType, field: string, value: number | bigint, min: number | bigint, max: number | bigint): void {
  if (value < min || value > max) throw bad(type, `${field} ${value} is outside ${min}..${max}`);
}

// ---- HELLO
export function writeHello(v: DataView, b: Buffer, h: Hello): void {
  v.setUint16(P + HELLO.minVersion, h.minVersion, true);
  v.setUint16(P + HELLO.maxVersion, h.maxVersion, true);
  v.setUint32(P + HELLO.pid, h.pid, true);
  b.write(h.name, P + HELLO.name, HELLO.nameLength, 'latin1');
}
export function readHello(v: DataView, length: number): Hello {
  const t = HcType.HELLO;
  checkLength(t, length, HELLO.size);
  const minVersion = v.getUint16(P + HELLO.minVersion, true);
  const maxVersion = v.getUint16(P + HELLO.maxVersion, true);
  const pid = v.getUint32(P + HELLO.pid, true);
  range(t, 'minVersion', minVersion, 1, 255);
  range(t, 'maxVersion', maxVersion, minVersion, 255);
  range(t, 'pid', pid, 1, MAX_PID);
  const name = paddedAscii(new Uint8Array(v.buffer, v.byteOffset + P + HELLO.name, HELLO.nameLength));
  if (name === undefined) throw bad(t, 'name must be printable ASCII, NUL-padded');
  if (!name) throw bad(t, 'name is empty');
  return { minVersion, maxVersion, pid, name };
}

export function writeHelloResult(v: DataView, o: number, r: HelloResult): void {
  v.setUint16(o + HELLO_RESULT.version, r.version, true);
  v.setUint16(o + HELLO_RESULT.windowCount, r.windowCount, true);
  v.setUint32(o + HELLO_RESULT.maxPayload, r.maxPayload, true);
  v.setUint32(o + HELLO_RESULT.heartbeatMs, r.heartbeatMs, true);
}
export function readHelloResult(v: DataView, o: number): HelloResult {
  const t = HcType.HELLO;
  const r = {
    version: v.getUint16(o + HELLO_RESULT.version, true),
    windowCount: v.getUint16(o + HELLO_RESULT.windowCount, true),
    maxPayload: v.getUint32(o + HELLO_RESULT.maxPayload, true),
    heartbeatMs: v.getUint32(o + HELLO_RESULT.heartbeatMs, true),
  };
  range(t, 'version', r.version, 1, 255);
  range(t, 'windowCount', r.windowCount, 0, 64);
  range(t, 'maxPayload', r.maxPayload, LOG.headerSize + HC_MAX_LOG_TEXT, 65_536);
  range(t, 'heartbeatMs', r.heartbeatMs, 10, MAX_DEADLINE_MS);
  if (v.getUint32(o + HELLO_RESULT.reserved, true) !== 0) throw bad(t, 'reserved result field is not zero');
  return r;
}

// ---- MAP_WINDOW
export function writeMapWindow(v: DataView, windowId: number): void {
  v.setUint32(P + MAP_WINDOW.windowId, windowId, true);
}
export function readMapWindow(v: DataView, length: number): number {
  checkLength(HcType.MAP_WINDOW, length, MAP_WINDOW.size);
  zero(HcType.MAP_WINDOW, v, MAP_WINDOW.reserved, 4);
  return v.getUint32(P + MAP_WINDOW.windowId, true);
}
export function writeWindowMapping(v: DataView, o: number, m: WindowMapping): void {
  v.setBigUint64(o + MAP_WINDOW_RESULT.iova, m.iova, true);
  v.setBigUint64(o + MAP_WINDOW_RESULT.length, m.length, true);
  v.setBigUint64(o + MAP_WINDOW_RESULT.offset, m.offset, true);
  v.setUint32(o + MAP_WINDOW_RESULT.fdSlot, m.fdSlot, true);
  v.setUint8(o + MAP_WINDOW_RESULT.perm, (m.deviceRead ? PERM_DEVICE_READ : 0) | (m.deviceWrite ? PERM_DEVICE_WRITE : 0));
  v.setUint8(o + MAP_WINDOW_RESULT.flags, m.hugePages ? WINDOW_HUGE_PAGES : 0);
}
export function readWindowMapping(v: DataView, o: number): WindowMapping {
  const t = HcType.MAP_WINDOW;
  const perm = v.getUint8(o + MAP_WINDOW_RESULT.perm);
  const flags = v.getUint8(o + MAP_WINDOW_RESULT.flags);
  const m: WindowMapping = {
    iova: v.getBigUint64(o + MAP_WINDOW_RESULT.iova, true),
    length: v.getBigUint64(o + MAP_WINDOW_RESULT.length, true),
    offset: v.getBigUint64(o + MAP_WINDOW_RESULT.offset, true),
    fdSlot: v.getUint32(o + MAP_WINDOW_RESULT.fdSlot, true),
    deviceRead: (perm & PERM_DEVICE_READ) !== 0,
    deviceWrite: (perm & PERM_DEVICE_WRITE) !== 0,
    hugePages: (flags & WINDOW_HUGE_PAGES) !== 0,
  };
  if ((perm & ~(PERM_DEVICE_READ | PERM_DEVICE_WRITE)) !== 0 || perm === 0) throw bad(t, `perm ${perm} is not a non-empty set of device read/write`);
  if ((flags & ~WINDOW_HUGE_PAGES) !== 0) throw bad(t, `unknown flags ${flags}`);
  if (v.getUint16(o + MAP_WINDOW_RESULT.reserved, true) !== 0) throw bad(t, 'reserved result field is not zero');
  range(t, 'length', m.length, 4096n, 1n << 40n);
  if ((m.iova | m.length | m.offset) & 0xfffn) throw bad(t, 'iova, length and offset must be 4 KiB aligned');
  range(t, 'fdSlot', m.fdSlot, FIRST_FD_SLOT, 1023);
  return m;
}

// ---- IRQ_SETUP
export function writeIrqSetup(v: DataView, r: IrqRequest): void {
  v.setUint8(P + IRQ_SETUP.kind, IRQ_KINDS[r.kind]);
  v.setUint16(P + IRQ_SETUP.vectors, r.vectors, true);
}
export function readIrqSetup(v: DataView, length: number): IrqRequest {
  const t = HcType.IRQ_SETUP;
  checkLength(t, length, IRQ_SETUP.size);
  zero(t, v, IRQ_SETUP.reserved, 1);
  const kind = IRQ_NAMES[v.getUint8(P + IRQ_SETUP.kind)];
  if (!kind) throw bad(t, `kind ${v.getUint8(P + IRQ_SETUP.kind)} is not 1 (msix), 2 (msi) or 3 (intx)`);
  const vectors = v.getUint16(P + IRQ_SETUP.vectors, true);
  range(t, 'vectors', vectors, 1, MAX_VECTORS);
  return { kind, vectors };
}
export function writeIrqGrant(v: DataView, o: number, g: IrqGrant): void {
  v.setUint16(o + IRQ_SETUP_RESULT.granted, g.granted, true);
  v.setUint16(o + IRQ_SETUP_RESULT.firstFdSlot, g.firstFdSlot, true);
}
export function readIrqGrant(v: DataView, o: number): IrqGrant {
  const g = { granted: v.getUint16(o + IRQ_SETUP_RESULT.granted, true), firstFdSlot: v.getUint16(o + IRQ_SETUP_RESULT.firstFdSlot, true) };
  range(HcType.IRQ_SETUP, 'granted', g.granted, 0, MAX_VECTORS);
  if (g.granted > 0) range(HcType.IRQ_SETUP, 'firstFdSlot', g.firstFdSlot, FIRST_FD_SLOT, 1023);
  return g;
}

// ---- CLOCK
export function writeClockResult(v: DataView, o: number, c: ClockResult): void {
  v.setBigUint64(o + CLOCK_RESULT.monotonicNs, c.monotonicNs, true);
  v.setBigUint64(o + CLOCK_RESULT.realtimeNs, c.realtimeNs, true);
}
export function readClockResult(v: DataView, o: number): ClockResult {
  return { monotonicNs: v.getBigUint64(o + CLOCK_RESULT.monotonicNs, true), realtimeNs: v.getBigUint64(o + CLOCK_RESULT.realtimeNs, true) };
}

// ---- GETPARAM
/** The key's bytes (printable ASCII, 0x21..0x7e, 1..HC_MAX_PARAM_KEY), or null when it is not a key. */
export function paramKeyBytes(key: string): Buffer | null {
  if (key.length < 1 || key.length > HC_MAX_PARAM_KEY) return null;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return null;
  }
  return Buffer.from(key, 'latin1');
}
export function writeGetParam(v: DataView, b: Buffer, key: Buffer): void {
  v.setUint16(P + GETPARAM.keyLength, key.length, true);
  key.copy(b, P + GETPARAM.key);
}
/** The key asked for: printable ASCII without spaces, 1..HC_MAX_PARAM_KEY bytes, the payload exactly that long. */
export function readGetParam(v: DataView, length: number): string {
  const t = HcType.GETPARAM;
  if (length < GETPARAM.headerSize)
    throw new HypercallError('ERR_HC_BAD_LENGTH', 'drop', `GETPARAM payload is ${length} bytes; at least ${GETPARAM.headerSize}; dropped`);
  const n = v.getUint16(P + GETPARAM.keyLength, true);
  range(t, 'keyLength', n, 1, HC_MAX_PARAM_KEY);
  checkLength(t, length, GETPARAM.headerSize + n);
  zero(t, v, GETPARAM.reserved, 2);
  let key = '';
  for (let i = 0; i < n; i++) {
    const c = v.getUint8(P + GETPARAM.key + i);
    if (c < 0x21 || c > 0x7e) throw bad(t, 'the key must be printable ASCII without spaces');
    key += String.fromCharCode(c);
  }
  return key;
}
/** The value's UTF-8 bytes, or null when it is longer than HC_MAX_PARAM_VALUE. */
export function paramValueBytes(value: string): Buffer | null {
  const b = Buffer.from(value, 'utf8');
  return b.length <= HC_MAX_PARAM_VALUE ? b : null;
}
export function writeParamValue(v: DataView, o: number, value: Buffer): void {
  v.setUint16(o + GETPARAM_RESULT.valueLength, value.length, true);
  new Uint8Array(v.buffer, v.byteOffset + o + GETPARAM_RESULT.value, value.length).set(value);
}
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
/** The value: at most HC_MAX_PARAM_VALUE bytes of valid UTF-8, the padding after it zero. */
export function readParamValue(v: DataView, o: number): string {
  const t = HcType.GETPARAM;
  const n = v.getUint16(o + GETPARAM_RESULT.valueLength, true);
  range(t, 'valueLength', n, 0, HC_MAX_PARAM_VALUE);
  if (v.getUint16(o + GETPARAM_RESULT.reserved, true) !== 0) throw bad(t, 'reserved result field is not zero');
  for (let i = n; i < HC_MAX_PARAM_VALUE; i++) if (v.getUint8(o + GETPARAM_RESULT.value + i) !== 0) throw bad(t, "the value's padding is not zero");
  try {
    return strictUtf8.decode(new Uint8Array(v.buffer, v.byteOffset + o + GETPARAM_RESULT.value, n));
  } catch {
    throw bad(t, 'the value is not valid UTF-8');
  }
}

// ---- LOG
/** The UTF-8 bytes of `text`, cut at a character boundary to at most HC_MAX_LOG_TEXT bytes. */
export function logBytes(text: string): Buffer {
  let b = Buffer.from(text, 'utf8');
  if (b.length <= HC_MAX_LOG_TEXT) return b;
  let end = HC_MAX_LOG_TEXT;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--; // do not split a multi-byte character
  b = b.subarray(0, end);
  return b;
}
export function writeLog(v: DataView, b: Buffer, level: LogLevel, text: Buffer): void {
  v.setUint8(P + LOG.level, level);
  v.setUint16(P + LOG.textLength, text.length, true);
  text.copy(b, P + LOG.text);
}
export function readLog(v: DataView, length: number): LogRecord {
  const t = HcType.LOG;
  if (length < LOG.headerSize) throw new HypercallError('ERR_HC_BAD_LENGTH', 'drop', `LOG payload is ${length} bytes; at least ${LOG.headerSize}; dropped`);
  const level = v.getUint8(P + LOG.level);
  const n = v.getUint16(P + LOG.textLength, true);
  range(t, 'textLength', n, 0, HC_MAX_LOG_TEXT);
  checkLength(t, length, LOG.headerSize + n);
  range(t, 'level', level, LogLevel.ERROR, LogLevel.DEBUG);
  zero(t, v, LOG.reserved, 1);
  const raw = new Uint8Array(v.buffer, v.byteOffset + P + LOG.text, n);
  // Hostile text: no control characters (no forged log lines, no terminal escapes).
  // eslint-disable-next-line no-control-regex
  const text = utf8.decode(raw).replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, '?');
  return { level, text };
}

// ---- HEARTBEAT
export function writeHeartbeat(v: DataView, h: Heartbeat): void {
  v.setBigUint64(P + HEARTBEAT.completed, h.completed, true);
  v.setBigUint64(P + HEARTBEAT.errors, h.errors, true);
  v.setBigUint64(P + HEARTBEAT.bytes, h.bytes, true);
  v.setUint32(P + HEARTBEAT.inflight, h.inflight, true);
}
export function readHeartbeat(v: DataView, length: number): Heartbeat {
  checkLength(HcType.HEARTBEAT, length, HEARTBEAT.size);
  zero(HcType.HEARTBEAT, v, HEARTBEAT.reserved, 4);
  return {
    completed: v.getBigUint64(P + HEARTBEAT.completed, true),
    errors: v.getBigUint64(P + HEARTBEAT.errors, true),
    bytes: v.getBigUint64(P + HEARTBEAT.bytes, true),
    inflight: v.getUint32(P + HEARTBEAT.inflight, true),
  };
}

// ---- FAULT
export function writeFault(v: DataView, f: FaultReport): void {
  v.setUint8(P + FAULT.kind, f.kind);
  v.setUint32(P + FAULT.code, f.code, true);
  v.setBigUint64(P + FAULT.iova, f.iova, true);
}
export function readFault(v: DataView, length: number): FaultReport {
  const t = HcType.FAULT;
  checkLength(t, length, FAULT.size);
  zero(t, v, FAULT.reserved, 3);
  const kind = v.getUint8(P + FAULT.kind);
  range(t, 'kind', kind, FaultKind.DMA, FaultKind.DRIVER);
  return { kind, code: v.getUint32(P + FAULT.code, true), iova: v.getBigUint64(P + FAULT.iova, true) };
}

// ---- READY
export function writeReady(v: DataView, r: Ready): void {
  v.setUint16(P + READY.queues, r.queues, true);
}
export function readReady(v: DataView, length: number): Ready {
  checkLength(HcType.READY, length, READY.size);
  zero(HcType.READY, v, READY.reserved, 2);
  const queues = v.getUint16(P + READY.queues, true);
  range(HcType.READY, 'queues', queues, 1, 65535);
  return { queues };
}

// ---- SHUTDOWN, QUIESCE
export function writeShutdown(v: DataView, s: ShutdownRequest): void {
  v.setUint32(P + SHUTDOWN.deadlineMs, s.deadlineMs, true);
  v.setUint8(P + SHUTDOWN.reason, s.reason);
}
export function readShutdown(v: DataView, length: number): ShutdownRequest {
  const t = HcType.SHUTDOWN;
  checkLength(t, length, SHUTDOWN.size);
  zero(t, v, SHUTDOWN.reserved, 3);
  const s = { deadlineMs: v.getUint32(P + SHUTDOWN.deadlineMs, true), reason: v.getUint8(P + SHUTDOWN.reason) };
  range(t, 'deadlineMs', s.deadlineMs, 1, MAX_DEADLINE_MS);
  range(t, 'reason', s.reason, ShutdownReason.STOP, ShutdownReason.FAULT);
  return s;
}
export function writeQuiesce(v: DataView, q: QuiesceRequest): void {
  v.setUint32(P + QUIESCE.deadlineMs, q.deadlineMs, true);
}
export function readQuiesce(v: DataView, length: number): QuiesceRequest {
  checkLength(HcType.QUIESCE, length, QUIESCE.size);
  const deadlineMs = v.getUint32(P + QUIESCE.deadlineMs, true);
  range(HcType.QUIESCE, 'deadlineMs', deadlineMs, 1, MAX_DEADLINE_MS);
  return { deadlineMs };
}
export function writeQuiesceResult(v: DataView, o: number, r: QuiesceResult): void {
  v.setUint32(o + QUIESCE_RESULT.inflight, r.inflight, true);
}
export function readQuiesceResult(v: DataView, o: number): QuiesceResult {
  return { inflight: v.getUint32(o + QUIESCE_RESULT.inflight, true) };
}

// ---- REPLY
/** The reply header; the result starts at payload offset REPLY.result and its size is RESULT_SIZE[call]. */
export function readReply(v: DataView, length: number): Reply {
  const t = HcType.REPLY;
  if (length < REPLY.headerSize)
    throw new HypercallError('ERR_HC_BAD_LENGTH', 'drop', `REPLY payload is ${length} bytes; at least ${REPLY.headerSize}; dropped`);
  const call = v.getUint8(P + REPLY.call);
  const size = RESULT_SIZE[call as HcType];
  if (size === undefined) throw bad(t, `call ${call} (${typeName(call)}) is not a request type`);
  checkLength(t, length, REPLY.headerSize + size);
  zero(t, v, REPLY.reserved, 1);
  const status = v.getUint16(P + REPLY.status, true);
  range(t, 'status', status, HcStatus.OK, HcStatus.NOT_FOUND);
  return { call, status };
}
