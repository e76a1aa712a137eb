/**
 * The TAP bridge's options, checked once, and the check every port gets before the bridge uses it.
 */
import type { BridgeClock } from './clock.js';
import { ETH_HEADER } from './counters.js';
import { TapError } from './errors.js';
import type { NicPort } from './nic-port.js';

export interface TapBridgeOptions {
  /** Frames per turn each way, 1 to 256. Default 32. */
  batch?: number;
  /** Frames read from the TAP and waiting for the NIC, at least `batch`, at most 65536. Default 256. */
  queueFrames?: number;
  /** When the queue is full: 'wait' (stop reading the TAP, default) or 'drop' (read and drop). */
  whenFull?: 'wait' | 'drop';
  /** Interval of TX retries while frames are queued, ms, 1 to 1000. Default 1. */
  retryMs?: number;
  /** Longest single wait on the NIC's RX, ms (bounds stop() and link checks), 1 to 1000. Default 50. */
  waitMs?: number;
  /** Mirror the NIC's link to the TAP's carrier (TUNSETCARRIER). Default true. */
  mirrorLink?: boolean;
  /** Called with each port or TAP error (the bridge counts it and carries on, unless it says it stopped). */
  onError?: (error: unknown) => void;
  /** The time the bridge runs on (timers, waits, link checks). Default: real time. Tests pass a fake. */
  clock?: BridgeClock;
}

export interface BridgeSettings {
  readonly batch: number;
  readonly queueFrames: number;
  readonly whenFull: 'wait' | 'drop';
  readonly retryMs: number;
  readonly waitMs: number;
  readonly mirrorLink: boolean;
}

function intOption(name: string, v: number | undefined, dflt: number, min: number, max: number): number {
  const n = v ?? dflt;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new TapError('ERR_TAP_ARG', `TAP bridge: ${name} = ${String(v)} must be an integer from ${min} to ${max} (default ${dflt})`, {
      fix: `leave ${name} unset, or give an integer from ${min} to ${max}`,
    });
  }
  return n;
}

export function bridgeSettings(options: TapBridgeOptions): BridgeSettings {
  const batch = intOption('batch', options.batch, 32, 1, 256);
  const whenFull = options.whenFull ?? 'wait';
  if (whenFull !== 'wait' && whenFull !== 'drop') {
    throw new TapError('ERR_TAP_ARG', `TAP bridge: whenFull = ${String(whenFull)} must be 'wait' or 'drop'`, {
      fix: "'wait' (default) keeps frames in the host's queue; 'drop' reads and counts them",
    });
  }
  return {
    batch,
    queueFrames: intOption('queueFrames', options.queueFrames, 256, batch, 65536),
    whenFull,
    retryMs: intOption('retryMs', options.retryMs, 1, 1, 1000),
    waitMs: intOption('waitMs', options.waitMs, 50, 1, 1000),
    mirrorLink: options.mirrorLink ?? true,
  };
}

/** A port whose buffers cannot hold its own largest frame would have the bridge write past them. */
export function checkPort(port: NicPort): void {
  if (!Number.isInteger(port.bufferSize) || port.bufferSize < port.maxFrame || port.maxFrame < ETH_HEADER) {
    throw new TapError(
      'ERR_TAP_PORT',
      `TAP bridge: port ${port.name} has bufferSize ${port.bufferSize} and maxFrame ${port.maxFrame}; buffers must hold a whole frame`,
      {
        fix: `a NicPort's bufferSize must be at least its maxFrame, and maxFrame at least ${ETH_HEADER}`,
      },
    );
  }
}
