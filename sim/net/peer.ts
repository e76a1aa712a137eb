/**
 * The simulated link partner of a sandboxed NIC (policy `device: { sim: e1000e, peer }`), on the
 * simulated wire (sim/wire.ts), in the sandbox's device process with the NIC model:
 * - `echo`: answers ARP for 10.0.2.2 and ICMP echo requests to it, as QEMU's slirp does for its
 *   gateway, so a host on 10.0.2.15/24 behind the NIC can ping 10.0.2.2;
 * - `none`: a cable to nothing: the link is up, every frame is dropped.
 * Replies go out after the sender's transmit run (a microtask), never inside it.
 */
import { endpoint, type Endpoint, type WirePort } from '../wire.js';
import { arpFrame, arpRequestFor, icmpEcho, icmpEchoTo, ipv4 } from './packets.js';

/** slirp's gateway address and MAC. */
export const ECHO_PEER_IP = '10.0.2.2';
export const ECHO_PEER_MAC = new Uint8Array([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);

export interface SimPeer {
  readonly kind: 'echo' | 'none';
  /** Frames the peer saw, and the replies it sent. */
  readonly counters: { seen: number; arpReplies: number; echoReplies: number };
  /** Unplug the cable (link down at the NIC). */
  unplug(): void;
}

export function attachPeer(nic: WirePort, kind: 'echo' | 'none', ip = ECHO_PEER_IP, mac = ECHO_PEER_MAC): SimPeer {
  const counters = { seen: 0, arpReplies: 0, echoReplies: 0 };
  const addr = ipv4(ip);
  let ep: Endpoint | null = null;
  const onFrame = (f: Uint8Array): void => {
    counters.seen++;
    if (kind === 'none' || ep === null) return;
    const arp = arpRequestFor(f, f.length, addr);
    if (arp !== null) {
      const reply = arpFrame('reply', mac, addr, arp.mac, arp.ip);
      queueMicrotask(() => {
        if (ep !== null && ep.send(reply)) counters.arpReplies++;
      });
      return;
    }
    const echo = icmpEchoTo(f, f.length, addr, 'request');
    if (echo !== null) {
      const reply = icmpEcho('reply', mac, echo.srcMac, addr, echo.srcIp, echo.id, echo.seq, echo.payload);
      queueMicrotask(() => {
        if (ep !== null && ep.send(reply)) counters.echoReplies++;
      });
    }
  };
  ep = endpoint(nic, onFrame);
  return {
    kind,
    counters,
    unplug() {
      ep?.unplug();
      ep = null;
    },
  };
}
