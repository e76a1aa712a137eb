/**
 * The manager <-> device-process protocol: what crosses between the trusted manager and the
 * untrusted process that runs a simulated device model (sandbox/device/). Documented in
 * sandbox/abi/README.md ("The device process"); this file is its one definition in code.
 *
 * One stream (the device process's fd 3, a unix socket), length-prefixed frames:
 *
 *   u32 length (of what follows, little-endian) | u16 magic 0x6476 ('dv') | u8 version | u8 type | payload
 *
 * The manager sends START (the device's parameters and its DMA mappings, JSON: the manager is the
 * trusted side, and the device process refuses anything malformed), QUARANTINE and RELEASE. The
 * device process sends READY, QUARANTINED, FAULT, HEARTBEAT and LOG, each a fixed binary layout
 * the manager checks field by field: everything a device process sends is hostile to the
 * manager. A frame longer than its direction's bound, another magic or version, an unknown type,
 * a bad field: a violation, and the manager kills the device process.
 */
import { DmaboxError } from '../../common/errors.js';
import { BAR0_SIZE as E1000E_BAR0_SIZE, MSIX_LAYOUT } from '../../spec/e1000e/registers.js';
import { cqHeadDoorbell as nvmeCqDoorbell } from '../../spec/nvme/registers.js';
import { MSIX_ENTRY } from '../../spec/pci/capabilities.js';

export type DeviceProtocolCode =
  /** A frame of the device protocol is malformed: magic, version, length, type or a field. */
  'ERR_DEVICE_PROTOCOL';

export class DeviceProtocolError extends DmaboxError<DeviceProtocolCode> {}

export const DEVICE_MAGIC = 0x6476;
export const DEVICE_VERSION = 1;
/** Bytes before a frame's payload: length, magic, version, type. */
export const DEVICE_HEADER = 8;
/** The largest frame the device process sends (after the length word), and the largest the manager sends. */
export const MAX_FROM_DEVICE = 1024;
export const MAX_TO_DEVICE = 64 * 1024;
/** The longest LOG text, in bytes of UTF-8. */
export const MAX_LOG_BYTES = 512;

/** The device process's inherited fds: 3 the protocol socket; the rest are named by START (slots from FIRST_DEVICE_FD). */
export const DEVICE_FD = { CHANNEL: 3 } as const;
export const FIRST_DEVICE_FD = 4;
export const MAX_DEVICE_FD = 1023;

export const enum DeviceMsg {
  /** manager -> device: parameters and mappings (JSON). */
  START = 1,
  /** device -> manager: the model is attached, every mapping made, the mailbox served, confinement on. */
  READY = 2,
  /** manager -> device: u32 seq. Bus mastering off, interrupts off, function-level reset. */
  QUARANTINE = 3,
  /** device -> manager: u32 seq, u8 done flags (QUARANTINE_DONE). */
  QUARANTINED = 4,
  /** manager -> device: stop serving and exit 0. */
  RELEASE = 5,
  /** device -> manager: an IOMMU or device fault (layout below). */
  FAULT = 6,
  /** device -> manager: u32 seq, u8 count, then count x (u8 counter id, u8 pad x3, u32 pad, f64 value). */
  HEARTBEAT = 7,
  /** device -> manager: u8 level (0 error .. 3 debug), UTF-8 text of at most MAX_LOG_BYTES. */
  LOG = 8,
  /** device -> manager: the container broke the register mailbox's ring (UTF-8 reason, at most MAX_LOG_BYTES): the manager kills the container. */
  VIOLATION = 9,
  /**
   * device -> manager: the function signalled an uncorrectable error (the simulator's AER, what
   * vfio-pci's error interrupt says on real hardware); UTF-8 cause, at most MAX_LOG_BYTES. The
   * supervisor treats it as a device error: kill, quarantine, reset, restart, replay.
   */
  ERROR = 10,
}

/** QUARANTINED flags: what the device process did. */
export const QUARANTINE_DONE = { BME_OFF: 1, IRQ_OFF: 2, FLR: 4 } as const;
export const QUARANTINE_ALL = 7;

/** Fault reasons of the simulated IOMMU (sim/iommu.ts), by code. */
export const FAULT_REASONS = ['not-present', 'no-read', 'no-write', 'no-bus-master', 'unbacked'] as const;
export type DeviceFaultReason = (typeof FAULT_REASONS)[number];

export interface DeviceFault {
  iova: bigint;
  length: number;
  access: 'read' | 'write';
  reason: DeviceFaultReason;
  /** VT-d fault reason code, or null when the reason is not an IOMMU refusal. */
  vtdReason: number | null;
  /** Faults the device process left out (its own rate limit) since the last one it sent. */
  suppressed: number;
}

/** FAULT payload: u64 iova, u32 length, u8 access (0 read, 1 write), u8 reason code, u8 VT-d reason (0xff none), u8 pad, u32 suppressed. */
const FAULT_BYTES = 20;

/**
 * Counters a device process reports in its heartbeats, by id (the manager shows them in status).
 * An id outside this table, a value that is not a finite non-negative number: a violation.
 */
export const COUNTERS = [
  'nvme.commands',
  'nvme.adminCommands',
  'nvme.dataTransferErrors',
  'nvme.badDoorbells',
  'nvme.interrupts',
  'nvme.fuaWrites',
  'nic.txFrames',
  'nic.rxDmaDropped',
  'nic.txDmaDropped',
  'nic.rxNoDescriptor',
  'nic.rxFiltered',
  'peer.seen',
  'peer.arpReplies',
  'peer.echoReplies',
  'mailbox.applied',
  'mailbox.refused',
  'iommu.faults',
  'pci.busMaster',
  'pci.resets',
  'msix.delivered',
  'msix.dropped',
  'pci.deviceFaults',
  'nvme.badPrpLists',
  'nic.irqBadVector',
] as const;
export type CounterName = (typeof COUNTERS)[number];
const COUNTER_BYTES = 16;
/** At most this many counters in one heartbeat. */
export const MAX_COUNTERS = COUNTERS.length;

/** One DMA mapping the device process makes in its IOMMU domain: window memory from an inherited memfd. */
export interface DeviceMapping {
  iova: string; // hex, a bigint does not survive JSON
  size: number;
  /** Offset into the memfd. */
  offset: number;
  /** The memfd's whole size (the device process maps all of it once). */
  memfdSize: number;
  read: boolean;
  write: boolean;
  fdSlot: number;
  label: string;
}

/** What START carries. */
export interface DeviceStart {
  name: string;
  address: string;
  model:
    | { kind: 'nvme'; serial: string; blocks: number; blockSize: number; mqes: number; maxQueues: number; storeFdSlot: number }
    | { kind: 'e1000e'; mac: string; peer: 'echo' | 'none' };
  mailbox: { fdSlot: number; bytes: number; kickFdSlot: number };
  irqFdSlots: number[];
  mappings: DeviceMapping[];
  heartbeatMs: number;
  /** Seccomp profile to confine with ('none': unconfined debug sandboxes). */
  seccomp: string;
  /** Hybrid polling window for the register mailbox, in milliseconds (0: kicks only). */
  pollMs: number;
  /**
   * A device fault plan for the model, in sim/faults' text form (`nvme.wrong-phase:on=read@7`):
   * the campaign runner's per-trial choice. Absent: the device behaves. The device process parses
   * it and refuses one that does not parse or is for the other model (ERR_DEVICE_START).
   */
  faultPlan?: string;
}

/** The longest fault plan text START may carry. */
export const MAX_FAULT_PLAN_TEXT = 512;

/** BAR sizes 0..5 and interrupt vectors of a simulated device. */
export interface DeviceShape {
  bars: number[];
  msix: number;
  intx: number;
}

/**
 * The shape a simulated device presents, from its parameters, before any device process runs (the
 * container's boot parameters need it at spawn). The NVMe model puts its doorbells (NVMe 1.4
 * §3.1.24, stride 4 << CAP.DSTRD with DSTRD 0), then its MSI-X table and PBA (one vector per I/O
 * queue and the admin queue) in BAR0, a power of two from 16 KiB; the 82574L has BAR0 of 128 KiB
 * and the MSI-X table in BAR3 (spec/e1000e). The device process refuses to start a model whose
 * shape differs (test/sandbox/device holds the models to it).
 */
export function deviceShape(model: DeviceStart['model']): DeviceShape {
  if (model.kind === 'e1000e') {
    const bars = [0, 0, 0, 0, 0, 0];
    bars[0] = E1000E_BAR0_SIZE;
    bars[MSIX_LAYOUT.BAR] = MSIX_LAYOUT.BAR_SIZE;
    return { bars, msix: MSIX_LAYOUT.VECTORS, intx: 1 };
  }
  const vectors = model.maxQueues + 1;
  const dbEnd = nvmeCqDoorbell(model.maxQueues, 0) + 4;
  const table = Math.ceil(dbEnd / 4096) * 4096;
  const pba = table + Math.ceil((vectors * MSIX_ENTRY.size) / 4096) * 4096;
  let size = 0x4000;
  while (size < pba + 4096) size *= 2;
  return { bars: [size, 0, 0, 0, 0, 0], msix: vectors, intx: 0 };
}

/** A frame that breaks the protocol (the manager kills the device process that sent it). */
export function protocolError(what: string): DeviceProtocolError {
  return bad(what);
}

function bad(what: string): DeviceProtocolError {
  return new DeviceProtocolError('ERR_DEVICE_PROTOCOL', `device protocol: ${what}`, {
    fix: 'the device process and the manager must come from the same build; a device process that writes this is killed',
  });
}

/** One frame: header and payload. */
export function frame(type: DeviceMsg, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(DEVICE_HEADER + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, payload.length + 4, true);
  v.setUint16(4, DEVICE_MAGIC, true);
  v.setUint8(6, DEVICE_VERSION);
  v.setUint8(7, type);
  out.set(payload, DEVICE_HEADER);
  return out;
}

/**
 * Splits a byte stream into frames, bounded: a length over `max`, another magic or version is
 * thrown (DeviceProtocolError) and the reader is dead from then on.
 */
export class FrameReader {
  private buf = new Uint8Array(0);
  private dead = false;
  constructor(private readonly max: number) {}

  /** Add bytes; returns every whole frame now available, as [type, payload]. */
  push(chunk: Uint8Array): [number, Uint8Array][] {
    if (this.dead) return [];
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    const out: [number, Uint8Array][] = [];
    let at = 0;
    while (joined.length - at >= 4) {
      const v = new DataView(joined.buffer, joined.byteOffset + at);
      const len = v.getUint32(0, true);
      if (len < 4 || len > this.max) {
        this.dead = true;
        throw bad(`a frame of ${len} bytes (at most ${this.max}, at least 4)`);
      }
      if (joined.length - at < 4 + len) break;
      if (v.getUint16(4, true) !== DEVICE_MAGIC) {
        this.dead = true;
        throw bad(`magic 0x${v.getUint16(4, true).toString(16)} (expected 0x${DEVICE_MAGIC.toString(16)})`);
      }
      if (v.getUint8(6) !== DEVICE_VERSION) {
        this.dead = true;
        throw bad(`version ${v.getUint8(6)} (this build speaks ${DEVICE_VERSION})`);
      }
      out.push([v.getUint8(7), joined.slice(at + DEVICE_HEADER, at + 4 + len)]);
      at += 4 + len;
    }
    this.buf = joined.slice(at);
    return out;
  }

  /** Bytes waiting for the rest of their frame. */
  get pending(): number {
    return this.buf.length;
  }
}

function need(p: Uint8Array, n: number, what: string, exact = true): DataView {
  if (exact ? p.length !== n : p.length < n) throw bad(`${what}: ${p.length} bytes of payload (expected ${exact ? '' : 'at least '}${n})`);
  return new DataView(p.buffer, p.byteOffset, p.byteLength);
}

export function encodeStart(s: DeviceStart): Uint8Array {
  return frame(DeviceMsg.START, new TextEncoder().encode(JSON.stringify(s)));
}

const isSlot = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= FIRST_DEVICE_FD && n <= MAX_DEVICE_FD;
const isCount = (n: unknown, max: number): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= max;

/** START, checked (the device process's side). */
export function decodeStart(p: Uint8Array): DeviceStart {
  let s: DeviceStart;
  try {
    s = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(p)) as DeviceStart;
  } catch {
    throw bad('START is not UTF-8 JSON');
  }
  const ok =
    s !== null &&
    typeof s === 'object' &&
    typeof s.name === 'string' &&
    typeof s.address === 'string' &&
    s.model !== null &&
    typeof s.model === 'object' &&
    (s.model.kind === 'nvme' || s.model.kind === 'e1000e') &&
    s.mailbox !== null &&
    typeof s.mailbox === 'object' &&
    isSlot(s.mailbox.fdSlot) &&
    isSlot(s.mailbox.kickFdSlot) &&
    isCount(s.mailbox.bytes, 1 << 20) &&
    Array.isArray(s.irqFdSlots) &&
    s.irqFdSlots.every(isSlot) &&
    Array.isArray(s.mappings) &&
    s.mappings.every(
      (m) =>
        typeof m === 'object' &&
        m !== null &&
        typeof m.iova === 'string' &&
        /^0x[0-9a-f]{1,16}$/.test(m.iova) &&
        isCount(m.size, 2 ** 40) &&
        isCount(m.offset, 2 ** 40) &&
        isCount(m.memfdSize, 2 ** 40) &&
        m.offset + m.size <= m.memfdSize &&
        typeof m.read === 'boolean' &&
        typeof m.write === 'boolean' &&
        isSlot(m.fdSlot) &&
        typeof m.label === 'string',
    ) &&
    isCount(s.heartbeatMs, 60_000) &&
    s.heartbeatMs > 0 &&
    typeof s.pollMs === 'number' &&
    Number.isFinite(s.pollMs) &&
    s.pollMs >= 0 &&
    s.pollMs <= 60_000 &&
    typeof s.seccomp === 'string' &&
    (s.faultPlan === undefined || (typeof s.faultPlan === 'string' && s.faultPlan.length <= MAX_FAULT_PLAN_TEXT));
  if (!ok) throw bad('START is missing a field or has one out of range');
  if (s.model.kind === 'nvme') {
    const m = s.model;
    if (!isSlot(m.storeFdSlot) || !isCount(m.blocks, 2 ** 40) || !isCount(m.blockSize, 1 << 16) || !isCount(m.mqes, 65536) || !isCount(m.maxQueues, 1023))
      throw bad('START: the NVMe parameters are out of range');
  } else if (typeof s.model.mac !== 'string' || (s.model.peer !== 'echo' && s.model.peer !== 'none')) {
    throw bad('START: the e1000e parameters are out of range');
  }
  return s;
}

export function encodeQuarantine(seq: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, seq >>> 0, true);
  return frame(DeviceMsg.QUARANTINE, p);
}

export function decodeQuarantine(p: Uint8Array): number {
  return need(p, 4, 'QUARANTINE').getUint32(0, true);
}

export function encodeQuarantined(seq: number, done: number): Uint8Array {
  const p = new Uint8Array(5);
  const v = new DataView(p.buffer);
  v.setUint32(0, seq >>> 0, true);
  v.setUint8(4, done);
  return frame(DeviceMsg.QUARANTINED, p);
}

export function decodeQuarantined(p: Uint8Array): { seq: number; done: number } {
  const v = need(p, 5, 'QUARANTINED');
  const done = v.getUint8(4);
  if ((done & ~QUARANTINE_ALL) !== 0) throw bad(`QUARANTINED: flags 0x${done.toString(16)}`);
  return { seq: v.getUint32(0, true), done };
}

export function encodeFault(f: DeviceFault): Uint8Array {
  const p = new Uint8Array(FAULT_BYTES);
  const v = new DataView(p.buffer);
  v.setBigUint64(0, f.iova, true);
  v.setUint32(8, Math.min(f.length, 0xffffffff) >>> 0, true);
  v.setUint8(12, f.access === 'write' ? 1 : 0);
  v.setUint8(13, FAULT_REASONS.indexOf(f.reason));
  v.setUint8(14, f.vtdReason === null ? 0xff : f.vtdReason);
  v.setUint32(16, Math.min(f.suppressed, 0xffffffff) >>> 0, true);
  return frame(DeviceMsg.FAULT, p);
}

export function decodeFault(p: Uint8Array): DeviceFault {
  const v = need(p, FAULT_BYTES, 'FAULT');
  const access = v.getUint8(12);
  const reason = FAULT_REASONS[v.getUint8(13)];
  const vtd = v.getUint8(14);
  if (access > 1) throw bad(`FAULT: access ${access}`);
  if (reason === undefined) throw bad(`FAULT: reason code ${v.getUint8(13)}`);
  if (vtd !== 0xff && vtd !== 0x05 && vtd !== 0x06) throw bad(`FAULT: VT-d reason 0x${vtd.toString(16)}`);
  return {
    iova: v.getBigUint64(0, true),
    length: v.getUint32(8, true),
    access: access === 1 ? 'write' : 'read',
    reason,
    vtdReason: vtd === 0xff ? null : vtd,
    suppressed: v.getUint32(16, true),
  };
}

export function encodeHeartbeat(seq: number, counters: Partial<Record<CounterName, number>>): Uint8Array {
  const entries = Object.entries(counters).filter(([k]) => COUNTERS.includes(k as CounterName));
  const p = new Uint8Array(8 + entries.length * COUNTER_BYTES);
  const v = new DataView(p.buffer);
  v.setUint32(0, seq >>> 0, true);
  v.setUint8(4, entries.length);
  entries.forEach(([k, n], i) => {
    v.setUint8(8 + i * COUNTER_BYTES, COUNTERS.indexOf(k as CounterName));
    v.setFloat64(8 + i * COUNTER_BYTES + 8, n ?? 0, true);
  });
  return frame(DeviceMsg.HEARTBEAT, p);
}

export function decodeHeartbeat(p: Uint8Array): { seq: number; counters: Partial<Record<CounterName, number>> } {
  const v = need(p, 8, 'HEARTBEAT', false);
  const n = v.getUint8(4);
  if (n > MAX_COUNTERS || p.length !== 8 + n * COUNTER_BYTES) throw bad(`HEARTBEAT: ${n} counters in ${p.length} bytes`);
  const counters: Partial<Record<CounterName, number>> = {};
  for (let i = 0; i < n; i++) {
    const name = COUNTERS[v.getUint8(8 + i * COUNTER_BYTES)];
    const value = v.getFloat64(8 + i * COUNTER_BYTES + 8, true);
    if (name === undefined) throw bad(`HEARTBEAT: counter id ${v.getUint8(8 + i * COUNTER_BYTES)}`);
    if (!Number.isFinite(value) || value < 0 || value > Number.MAX_SAFE_INTEGER) throw bad(`HEARTBEAT: ${name} = ${value}`);
    counters[name] = value;
  }
  return { seq: v.getUint32(0, true), counters };
}

export function encodeLog(level: number, text: string): Uint8Array {
  let bytes = new TextEncoder().encode(text);
  if (bytes.length > MAX_LOG_BYTES) bytes = bytes.subarray(0, MAX_LOG_BYTES);
  const p = new Uint8Array(1 + bytes.length);
  p[0] = level & 3;
  p.set(bytes, 1);
  return frame(DeviceMsg.LOG, p);
}

export function decodeLog(p: Uint8Array): { level: number; text: string } {
  if (p.length < 1 || p.length > 1 + MAX_LOG_BYTES) throw bad(`LOG: ${p.length} bytes`);
  if (p[0]! > 3) throw bad(`LOG: level ${p[0]}`);
  return { level: p[0]!, text: new TextDecoder('utf-8', { fatal: false }).decode(p.subarray(1)) };
}

export function encodeDeviceError(cause: string): Uint8Array {
  let bytes = new TextEncoder().encode(cause);
  if (bytes.length > MAX_LOG_BYTES) bytes = bytes.subarray(0, MAX_LOG_BYTES);
  return frame(DeviceMsg.ERROR, bytes);
}

export function decodeDeviceError(p: Uint8Array): string {
  if (p.length > MAX_LOG_BYTES) throw bad(`ERROR: ${p.length} bytes`);
  return new TextDecoder('utf-8', { fatal: false }).decode(p);
}

export function decodeViolation(p: Uint8Array): string {
  if (p.length > MAX_LOG_BYTES) throw bad(`VIOLATION: ${p.length} bytes`);
  return new TextDecoder('utf-8', { fatal: false }).decode(p);
}
