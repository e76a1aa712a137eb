/**
 * What the TAP bridge counts and reports: frames and bytes each way by class (ARP, IPv4 ICMP, other IPv4,
 * IPv6, other), drops, errors, restarts. Per-frame counts go into a Float64Array per direction
 * (exact integers up to 2^53, no allocation); `snapshot()` makes the plain objects `counters()` returns.
 * Errors the bridge carries on after go to the owner's `onError`, which must not break the data path.
 */

/** Frame classes counted each way: enough to check ARP/ICMP flows and see what else passes. */
export interface ClassCounters {
  arp: number;
  /** IPv4 ICMP (protocol 1). */
  icmp: number;
  /** IPv4, ICMP excluded. */
  ipv4: number;
  ipv6: number;
  other: number;
}

export interface DirectionCounters extends ClassCounters {
  frames: number;
  bytes: number;
}

/** The bridge's event counters (everything but the per-direction ones and `queued`). */
export interface BridgeEventCounters {
  /** Frames read from the TAP and dropped because the queue was full (whenFull 'drop'). */
  queueDrops: number;
  /** Frames from the TAP shorter than an Ethernet header or longer than the NIC's largest frame. */
  malformedFromTap: number;
  /** Frames from the NIC the bridge refused: length out of range or buffer outside the port's memory. */
  malformedFromNic: number;
  /** Frames still queued when stop() was called (their buffers went back to the NIC). */
  stopDrops: number;
  /** Turns on which the NIC took fewer frames than offered (back-pressure, not loss). */
  stalls: number;
  /** Turns on which the queue was full ('wait': the TAP was paused). */
  queueFull: number;
  tapReadErrors: number;
  tapWriteErrors: number;
  portErrors: number;
  linkChanges: number;
  /** Ports replaced under the running bridge (driver restarts: suspend + resume). */
  portSwaps: number;
  /** Queued frames lost at a restart: the old port's memory was gone, or the new port had no buffer for them. */
  swapDrops: number;
}

export interface TapBridgeCounters extends BridgeEventCounters {
  /** Frames the NIC accepted from the TAP. */
  toNic: DirectionCounters;
  /** Frames written to the TAP from the NIC. */
  toTap: DirectionCounters;
  /** Frames queued now. */
  queued: number;
}

// Slots of a direction's Float64Array; ARP..OTHER are also what frameClass returns.
const FRAMES = 0,
  BYTES = 1,
  ARP = 2,
  ICMP = 3,
  IPV4 = 4,
  IPV6 = 5,
  OTHER = 6,
  SLOTS = 7;

export const ETH_HEADER = 14;
const ETHERTYPE_VLAN = 0x8100,
  ETHERTYPE_ARP = 0x0806,
  ETHERTYPE_IPV4 = 0x0800,
  ETHERTYPE_IPV6 = 0x86dd;
const IP_PROTO_ICMP = 1;

/** The class slot of a frame (ARP..OTHER, 2 to 6), looking through one 802.1Q tag. Fits in 3 bits. */
export function frameClass(b: Uint8Array, off: number, len: number): number {
  let h = off + 12;
  let type = (b[h]! << 8) | b[h + 1]!;
  if (type === ETHERTYPE_VLAN && len >= ETH_HEADER + 4) {
    h += 4;
    type = (b[h]! << 8) | b[h + 1]!;
  }
  if (type === ETHERTYPE_ARP) return ARP;
  if (type === ETHERTYPE_IPV4) {
    // IPv4 protocol field: byte 9 of the IP header, which starts after the ethertype.
    return h + 2 + 9 < off + len && b[h + 2 + 9] === IP_PROTO_ICMP ? ICMP : IPV4;
  }
  return type === ETHERTYPE_IPV6 ? IPV6 : OTHER;
}

/** A direction's counters: one frame of class `cls` and `len` bytes. */
export function countFrame(c: Float64Array, cls: number, len: number): void {
  c[FRAMES]!++;
  c[BYTES]! += len;
  c[cls]!++;
}

/** The counters of one bridge and where its errors go, shared by its parts. */
export class BridgeCounters {
  private readonly onError: ((error: unknown) => void) | undefined;

  constructor(onError: ((error: unknown) => void) | undefined) {
    this.onError = onError;
  }

  readonly toNic = new Float64Array(SLOTS);
  readonly toTap = new Float64Array(SLOTS);
  readonly events: BridgeEventCounters = {
    queueDrops: 0,
    malformedFromTap: 0,
    malformedFromNic: 0,
    stopDrops: 0,
    stalls: 0,
    queueFull: 0,
    tapReadErrors: 0,
    tapWriteErrors: 0,
    portErrors: 0,
    linkChanges: 0,
    portSwaps: 0,
    swapDrops: 0,
  };

  /** Hand an error to the owner; a throwing observer must not break the data path. */
  report(e: unknown): void {
    if (this.onError === undefined) return;
    try {
      this.onError(e);
    } catch {
      // ignored: see above
    }
  }

  /** A port call threw (a dead or dying driver): count and report. */
  portError(e: unknown): void {
    this.events.portErrors++;
    this.report(e);
  }

  snapshot(queued: number): TapBridgeCounters {
    return { toNic: direction(this.toNic), toTap: direction(this.toTap), ...this.events, queued };
  }
}

function direction(c: Float64Array): DirectionCounters {
  return { frames: c[FRAMES]!, bytes: c[BYTES]!, arp: c[ARP]!, icmp: c[ICMP]!, ipv4: c[IPV4]!, ipv6: c[IPV6]!, other: c[OTHER]! };
}
