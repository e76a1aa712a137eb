/**
 * The simulated wire: what a NIC model transmits to and receives from.
 *
 * Three shapes:
 * - `backToBack(a, b)`: two NICs cabled to each other; a frame a sends is received by b, and back.
 * - `loopback(a)`: a NIC whose frames come back to itself.
 * - `endpoint(a, onFrame)`: a packet endpoint the caller holds: every frame a sends reaches
 *   `onFrame` (a copy the callback may keep), and the returned `send` puts a frame on a's RX side.
 *
 * Delivery is synchronous: a transmitted frame is in the peer's RX ring (or counted as dropped
 * there) when the sender's transmit run ends (see WirePort.burst); an endpoint's `send` completes
 * the frame before it returns. A frame is handed over as (bytes, length) in the
 * sender's own scratch buffer: a receiver must copy what it keeps. Frames carry no FCS; a model
 * that stores the CRC (e1000e with RCTL.SECRC clear) computes it.
 */
import { SimError } from './errors.js';

/** Where a NIC puts the frames it sends. */
export type FrameSink = (frame: Uint8Array, len: number) => void;

/** A NIC as the wire sees it. */
export interface WirePort {
  /**
   * Plug (sink) or unplug (null) the cable; the link goes up or down with it. `burst`, when given,
   * is called by the NIC around each run of frames it sends (true before, false after), and is
   * forwarded to the receiving NIC's `burst`.
   */
  attachWire(sink: FrameSink | null, burst?: (on: boolean) => void): void;
  /** A frame arrives. True when the NIC stored it in host memory. */
  receive(frame: Uint8Array, len: number): boolean;
  /**
   * Optional: the sender starts (true) or ends (false) a run of frames. A NIC may hold its
   * descriptor write-backs until the run ends (the e1000e model does); outside a run it must
   * complete each frame within `receive`.
   */
  burst?(on: boolean): void;
}

/** A connection that can be cut (both ends see link down). */
export interface Cable {
  unplug(): void;
}

/** Two NICs back to back. */
export function backToBack(a: WirePort, b: WirePort): Cable {
  if (a === b) throw new SimError('ERR_SIM_ARG', 'wire: backToBack needs two different NICs', { fix: 'use loopback(nic) for one NIC' });
  a.attachWire(
    (frame, len) => {
      b.receive(frame, len);
    },
    (on) => b.burst?.(on),
  );
  b.attachWire(
    (frame, len) => {
      a.receive(frame, len);
    },
    (on) => a.burst?.(on),
  );
  return {
    unplug: () => {
      a.attachWire(null);
      b.attachWire(null);
    },
  };
}

/** A NIC whose transmitted frames are received by itself. */
export function loopback(a: WirePort): Cable {
  a.attachWire(
    (frame, len) => {
      a.receive(frame, len);
    },
    (on) => a.burst?.(on),
  );
  return { unplug: () => a.attachWire(null) };
}

export interface Endpoint extends Cable {
  /** Put a frame on the NIC's receive side. True when the NIC stored it. */
  send(frame: Uint8Array, len?: number): boolean;
}

/** A packet endpoint held by the caller: frames out through `onFrame` (copies), frames in through `send`. */
export function endpoint(a: WirePort, onFrame: (frame: Uint8Array) => void): Endpoint {
  a.attachWire((frame, len) => {
    onFrame(frame.slice(0, len));
  });
  return {
    send(frame: Uint8Array, len = frame.length): boolean {
      if (!Number.isInteger(len) || len < 0 || len > frame.length) {
        throw new SimError('ERR_SIM_ARG', `wire: send length ${len} is outside the frame's ${frame.length} bytes`);
      }
      return a.receive(frame, len);
    },
    unplug: () => a.attachWire(null),
  };
}
