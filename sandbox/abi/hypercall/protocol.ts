/**
 * The hypercall wire protocol: the one interface between a driver container and the manager.
 * Every number on the wire is defined here, once; sandbox/abi/README.md documents each call.
 *
 * A frame is a 16-byte header followed by a payload of fixed layout per type (LOG alone carries a
 * bounded text). All integers are little-endian.
 *
 *   offset 0  u16 magic    'h' 'c' (0x6368): catches a stream that is not ours, or desynchronised
 *   offset 2  u8  version  HC_VERSION
 *   offset 3  u8  type     HcType
 *   offset 4  u32 seq      sender's frame number: 1, 2, 3, ... with no gaps or repeats
 *   offset 8  u32 ref      REPLY only: the seq of the request it answers; 0 otherwise
 *   offset 12 u32 length   payload bytes (at most the receiver's maximum, HC_MAX_PAYLOAD by default)
 */

/**
 * The protocol version. Bumping it hurts: every driver container image carries its own copy of the
 * guest side, and a manager and a container of different versions refuse each other at HELLO, so
 * every deployed driver must be rebuilt and redeployed in lock-step with the manager. Extend by
 * using reserved fields (they must be zero today, so a zero means "not used") or by adding a call
 * type an old peer rejects with a drop; bump only when an existing layout must change.
 */
export const HC_VERSION = 1;
/** The oldest version this code still speaks (negotiated at HELLO). */
export const HC_MIN_VERSION = 1;

export const HC_MAGIC = 0x6368;
export const HEADER_SIZE = 16;
export const HDR = { magic: 0, version: 2, type: 3, seq: 4, ref: 8, length: 12 } as const;

/** Largest payload either side accepts by default: LOG at its largest is 4 + 512 bytes. */
export const HC_MAX_PAYLOAD = 1024;
/** Longest LOG text in bytes (UTF-8); longer text is cut by the guest before sending. */
export const HC_MAX_LOG_TEXT = 512;

export enum HcType {
  // guest -> host requests (answered by REPLY)
  HELLO = 1,
  MAP_WINDOW = 2,
  IRQ_SETUP = 3,
  CLOCK = 4,
  GETPARAM = 5,
  // guest -> host notifications (no reply)
  LOG = 16,
  HEARTBEAT = 17,
  FAULT = 18,
  READY = 19,
  // host -> guest requests (answered by REPLY)
  SHUTDOWN = 32,
  QUIESCE = 33,
  // either way
  REPLY = 64,
}

export const GUEST_REQUESTS: readonly HcType[] = [HcType.HELLO, HcType.MAP_WINDOW, HcType.IRQ_SETUP, HcType.CLOCK, HcType.GETPARAM];
export const GUEST_NOTIFICATIONS: readonly HcType[] = [HcType.LOG, HcType.HEARTBEAT, HcType.FAULT, HcType.READY];
export const HOST_REQUESTS: readonly HcType[] = [HcType.SHUTDOWN, HcType.QUIESCE];

/** The status a REPLY carries (u16), like an errno: 0 is success and the result is valid. */
export enum HcStatus {
  OK = 0,
  /** A field was out of range or a reserved field was not zero. */
  BAD_REQUEST = 1,
  /** The policy does not grant it (an unknown window id, more vectors than allowed). */
  DENIED = 2,
  /** Granted in principle, but nothing left (memory, vectors). */
  EXHAUSTED = 3,
  /** This side does not implement the call. */
  UNSUPPORTED = 4,
  /** Not now: the call is not valid in the current state (before HELLO, after shutdown). */
  STATE = 5,
  /** The peer failed while serving the call (a bug on its side, logged there). */
  INTERNAL = 6,
  /** GETPARAM: no parameter of that key (an answer, not an error of the caller's). */
  NOT_FOUND = 7,
}

/** Payload layouts: byte offsets and sizes (the `size` of each is the exact payload length). */
export const HELLO = { size: 24, minVersion: 0, maxVersion: 2, pid: 4, name: 8, nameLength: 16 } as const;
export const HELLO_RESULT = { size: 16, version: 0, windowCount: 2, maxPayload: 4, heartbeatMs: 8, reserved: 12 } as const;
export const MAP_WINDOW = { size: 8, windowId: 0, reserved: 4 } as const;
export const MAP_WINDOW_RESULT = { size: 32, iova: 0, length: 8, offset: 16, fdSlot: 24, perm: 28, flags: 29, reserved: 30 } as const;
export const IRQ_SETUP = { size: 4, kind: 0, reserved: 1, vectors: 2 } as const;
export const IRQ_SETUP_RESULT = { size: 4, granted: 0, firstFdSlot: 2 } as const;
export const CLOCK = { size: 0 } as const;
export const CLOCK_RESULT = { size: 16, monotonicNs: 0, realtimeNs: 8 } as const;
/** GETPARAM: `u16 keyLength, u16 reserved`, then the key (printable ASCII, 1..HC_MAX_PARAM_KEY bytes). */
export const GETPARAM = { headerSize: 4, keyLength: 0, reserved: 2, key: 4 } as const;
/** Longest GETPARAM key in bytes, and longest value in bytes of UTF-8. */
export const HC_MAX_PARAM_KEY = 64;
export const HC_MAX_PARAM_VALUE = 256;
/** GETPARAM's result: `u16 valueLength, u16 reserved`, then the value, zero-padded to HC_MAX_PARAM_VALUE. */
export const GETPARAM_RESULT = { size: 4 + HC_MAX_PARAM_VALUE, valueLength: 0, reserved: 2, value: 4 } as const;
export const LOG = { headerSize: 4, level: 0, reserved: 1, textLength: 2, text: 4 } as const;
export const HEARTBEAT = { size: 32, completed: 0, errors: 8, bytes: 16, inflight: 24, reserved: 28 } as const;
export const FAULT = { size: 16, kind: 0, reserved: 1, code: 4, iova: 8 } as const;
export const READY = { size: 4, queues: 0, reserved: 2 } as const;
export const SHUTDOWN = { size: 8, deadlineMs: 0, reason: 4, reserved: 5 } as const;
export const SHUTDOWN_RESULT = { size: 0 } as const;
export const QUIESCE = { size: 4, deadlineMs: 0 } as const;
export const QUIESCE_RESULT = { size: 4, inflight: 0 } as const;
export const REPLY = { headerSize: 4, call: 0, reserved: 1, status: 2, result: 4 } as const;

/** The result size of each request type, which fixes the length of its REPLY. */
export const RESULT_SIZE: Partial<Record<HcType, number>> = {
  [HcType.HELLO]: HELLO_RESULT.size,
  [HcType.MAP_WINDOW]: MAP_WINDOW_RESULT.size,
  [HcType.IRQ_SETUP]: IRQ_SETUP_RESULT.size,
  [HcType.CLOCK]: CLOCK_RESULT.size,
  [HcType.GETPARAM]: GETPARAM_RESULT.size,
  [HcType.SHUTDOWN]: SHUTDOWN_RESULT.size,
  [HcType.QUIESCE]: QUIESCE_RESULT.size,
};

export enum LogLevel {
  ERROR = 0,
  WARN = 1,
  INFO = 2,
  DEBUG = 3,
}
/** Interrupt kinds, as in drivers/platform.ts IrqKind. */
export enum IrqKindCode {
  MSIX = 1,
  MSI = 2,
  INTX = 3,
}
/** Largest vector count: an MSI-X table holds at most 2048 entries (PCI Local Bus 3.0 §6.8.2.3). */
export const MAX_VECTORS = 2048;
export enum FaultKind {
  /** The device reported a DMA or data transfer error the driver saw (NVMe status 0x04). */
  DMA = 1,
  /** The device reported a fatal state (NVMe CSTS.CFS, e1000e STATUS). */
  DEVICE = 2,
  /** A hardware wait ran out its bound. */
  TIMEOUT = 3,
  /** The driver caught an error of its own. */
  DRIVER = 4,
}
export enum ShutdownReason {
  STOP = 1,
  RESTART = 2,
  POLICY = 3,
  FAULT = 4,
}
/** MAP_WINDOW_RESULT.perm bits: what the device may do (drivers/platform.ts DmaPerm). */
export const PERM_DEVICE_READ = 1;
export const PERM_DEVICE_WRITE = 2;
/** MAP_WINDOW_RESULT.flags bits. */
export const WINDOW_HUGE_PAGES = 1;
/** The first fd a container inherits beyond stdio (spawn's stdio[3]). */
export const FIRST_FD_SLOT = 3;

export function typeName(t: number): string {
  return HcType[t] ?? `type ${t}`;
}
