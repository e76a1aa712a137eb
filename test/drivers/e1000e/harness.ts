/**
 * Test harness: a simulated machine with two 82574L models cabled back to back (or one on a
 * loopback / a caller-held endpoint), each opened through its own SimPlatform.
 */
import { SimMachine } from '../../../sim/machine.js';
import { E1000eModel } from '../../../sim/e1000e/model.js';
import { backToBack, loopback, endpoint, type Endpoint } from '../../../sim/wire.js';
import type { WorkMode } from '../../../sim/sched.js';
import type { SimPlatform } from '../../../sim/platform.js';

export const ADDR_A = '0000:00:02.0';
export const ADDR_B = '0000:00:03.0';
export const MAC_A = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
export const MAC_B = [0x52, 0x54, 0x00, 0x65, 0x43, 0x21];

export interface Pair {
  machine: SimMachine;
  a: E1000eModel;
  b: E1000eModel;
  pa: SimPlatform;
  pb: SimPlatform;
}

export function pair(workMode: WorkMode = 'sync'): Pair {
  const machine = new SimMachine();
  const a = new E1000eModel({ mac: MAC_A });
  const b = new E1000eModel({ mac: MAC_B });
  machine.attach(a, { address: ADDR_A, workMode });
  machine.attach(b, { address: ADDR_B, workMode });
  backToBack(a, b);
  return { machine, a, b, pa: machine.platform(ADDR_A), pb: machine.platform(ADDR_B) };
}

export interface Single {
  machine: SimMachine;
  nic: E1000eModel;
  p: SimPlatform;
}

export function single(wire: 'loopback' | 'none' = 'loopback', workMode: WorkMode = 'sync'): Single {
  const machine = new SimMachine();
  const nic = new E1000eModel({ mac: MAC_A });
  machine.attach(nic, { address: ADDR_A, workMode });
  if (wire === 'loopback') loopback(nic);
  return { machine, nic, p: machine.platform(ADDR_A) };
}

export function withEndpoint(onFrame: (f: Uint8Array) => void, workMode: WorkMode = 'sync'): Single & { ep: Endpoint } {
  const s = single('none', workMode);
  const ep = endpoint(s.nic, onFrame);
  return { ...s, ep };
}

/** An Ethernet frame: dst, src, ethertype 0x88b5 (local experimental), payload of `len - 14` bytes from `seed`. */
export function frame(dst: readonly number[], src: readonly number[], len: number, seed: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  let x = seed >>> 0 || 1;
  for (let i = 14; i < len; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    f[i] = x & 0xff;
  }
  return f;
}
