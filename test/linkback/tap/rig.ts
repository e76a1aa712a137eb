/**
 * The TAP test rig (root only): two simulated 82574L NICs cabled back to back, each driven
 * in-process by the e1000e driver on its own SimPlatform, each bridged to a TAP interface that
 * sits in its own network namespace: 10.77.0.1/24 in the first, 10.77.0.2/24 in the second.
 * Used by ping.test.ts and by measure.ts. `close()` undoes everything, in order, and never throws
 * before the namespaces are removed; `withRig` runs a test on a rig and checks nothing is left.
 */
import { E1000e, type E1000eInterruptMode } from '../../../drivers/e1000e/device.js';
import { E1000ePort } from '../../../linkback/in-process/e1000e.js';
import { linkTap, type TapDevice, type TapBridge, type TapBridgeOptions, type TapLink } from '../../../linkback/tap/index.js';
import { pair, type Pair } from '../../drivers/e1000e/harness.js';
import type { WorkMode } from '../../../sim/sched.js';
import { leftovers, NetnsLab } from './netns.js';
import { until } from './fakes.js';

export const ADDR1 = '10.77.0.1';
export const ADDR2 = '10.77.0.2';

export interface RigOptions {
  /** Interrupt mode of each NIC's driver. Default: the first by MSI-X, the second by polling. */
  interrupts?: [E1000eInterruptMode, E1000eInterruptMode];
  workMode?: WorkMode;
  bridge?: TapBridgeOptions;
}

export interface Rig {
  /** The simulated machine and the two NIC models (to unplug the wire: `sim.a.attachWire(null)`). */
  sim: Pair;
  lab: NetnsLab;
  ns: [string, string];
  nics: E1000e[];
  links: TapLink[];
  taps: TapDevice[];
  bridges: TapBridge[];
  /** Errors the bridges reported. */
  errors: unknown[];
  close(): Promise<void>;
}

export async function makeRig(o: RigOptions = {}): Promise<Rig> {
  const lab = NetnsLab.create(2);
  const p = pair(o.workMode ?? 'deferred');
  const rig: Rig = {
    sim: p,
    lab,
    ns: lab.names as [string, string],
    nics: [],
    links: [],
    taps: [],
    bridges: [],
    errors: [],
    close: async () => {
      try {
        for (const l of rig.links) await l.close();
        for (const n of rig.nics) await n.close();
        p.pa.close();
        p.pb.close();
      } finally {
        lab.cleanup();
      }
    },
  };
  try {
    const modes = o.interrupts ?? ['msix', 'poll'];
    rig.nics.push(await E1000e.open(p.pa, { interrupts: modes[0] }));
    rig.nics.push(await E1000e.open(p.pb, { interrupts: modes[1] }));
    for (const nic of rig.nics) {
      // linkTap gives the TAP the NIC's MAC, so the NIC's unicast filter accepts the host's traffic.
      const link = linkTap(new E1000ePort(nic), { name: 'dmbxt%d', ...o.bridge, onError: (e) => rig.errors.push(e) });
      rig.links.push(link);
      rig.taps.push(link.tap);
      rig.bridges.push(link.bridge);
    }
    lab.attach(rig.ns[0], rig.taps[0]!.name, `${ADDR1}/24`);
    lab.attach(rig.ns[1], rig.taps[1]!.name, `${ADDR2}/24`);
  } catch (e) {
    await rig.close();
    throw e;
  }
  return rig;
}

/**
 * Run `body` on a fresh rig, close it whatever happens, then check that no namespace is left
 * (the TAPs went with their fds, anything inside a namespace with it).
 */
export async function withRig(o: RigOptions, body: (rig: Rig) => Promise<void>): Promise<void> {
  const rig = await makeRig(o);
  try {
    await body(rig);
  } finally {
    await rig.close();
  }
  const left = leftovers();
  if (left.length > 0) throw new Error(`namespaces left behind: ${left.join(', ')}`);
}

/** Wait until each bridge wrote to its TAP every frame the other's NIC took (the simulated wire loses nothing). */
export function bothWaysSettled(a: TapBridge, b: TapBridge): Promise<void> {
  return until(
    () => b.counters().toTap.frames === a.counters().toNic.frames && a.counters().toTap.frames === b.counters().toNic.frames,
    'both directions to settle',
    2000,
  );
}
