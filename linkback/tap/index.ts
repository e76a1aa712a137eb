/**
 * The TAP linkback's public surface, and `linkTap`, the one call a manager needs: a TAP interface
 * named after the NIC's role, carrying the NIC's MAC, bridged to its port.
 *
 *   const link = linkTap(new E1000ePort(nic), { name: 'dmabox%d' });
 *   console.log(`ip addr add 10.0.2.15/24 dev ${link.tap.name} && ip link set ${link.tap.name} up`);
 *   link.bridge.counters();
 *   await link.close();           // bridge stopped, then the interface removed
 */
import { TapBridge } from './bridge.js';
import type { TapBridgeOptions } from './options.js';
import type { NicPort } from './nic-port.js';
import { TapDevice, type TapSys } from './tun.js';

export { TapDevice, checkTapName, checkMac, formatMac, tapOpenError, TUN_PATH, type FrameIo, type TapOptions, type TapSys } from './tun.js';
export { TapBridge } from './bridge.js';
export type { TapBridgeOptions } from './options.js';
export { frameClass, type TapBridgeCounters, type DirectionCounters, type ClassCounters } from './counters.js';
export { TRANSITIONS, type BridgeState, type BridgeEvent } from './state.js';
export { realClock, type BridgeClock, type BridgeTimer } from './clock.js';
export { type NicPort } from './nic-port.js';
export { PacketBatch } from '../../drivers/contract/packet-batch.js';
export { TapError, type TapErrorCode } from './errors.js';

export interface TapLinkOptions extends TapBridgeOptions {
  /** Interface name or template (`dmabox%d`). */
  name: string;
  /** Give the TAP the NIC's MAC (default true), so the NIC's unicast filter passes the host's traffic. */
  useNicMac?: boolean;
  sys?: TapSys;
}

export interface TapLink {
  readonly tap: TapDevice;
  readonly bridge: TapBridge;
  /** Stop the bridge, then close the TAP (a non-persistent interface disappears). Idempotent. */
  close(): Promise<void>;
}

/** Create the TAP interface for `port` and start bridging. Needs root or CAP_NET_ADMIN. */
export function linkTap(port: NicPort, options: TapLinkOptions): TapLink {
  const { name, useNicMac, sys, ...bridgeOptions } = options;
  const tap = TapDevice.open({ name, ...(useNicMac === false ? {} : { mac: port.mac }), ...(sys ? { sys } : {}) });
  let bridge: TapBridge;
  try {
    bridge = new TapBridge(tap, port, bridgeOptions);
    bridge.start();
  } catch (e) {
    tap.close();
    throw e;
  }
  return {
    tap,
    bridge,
    async close() {
      try {
        await bridge.stop();
      } finally {
        tap.close();
      }
    },
  };
}
