/**
 * What a fault class is: a name (`device.what`), the device model it applies to, what one
 * eligible event is (the unit `probability`, `interval`, `times` and `after` count), what happens
 * when it fires, and its own parameters. Declarations only: the device models implement them
 * (sim/nvme/fault-plan.ts, sim/e1000e/fault-plan.ts, sim/e1000e/thunderclap.ts).
 */
import type { ParamSpec } from './params.js';

export type FaultDevice = 'nvme' | 'e1000e';

export interface FaultClass {
  /** `nvme.wrong-phase`, `e1000e.link-flap`, ...: lower case, the device first. */
  readonly name: string;
  readonly device: FaultDevice;
  /** What one eligible event is: the unit the common parameters count. */
  readonly event: string;
  /** What the device does when the fault fires. */
  readonly doc: string;
  /** The class's own parameters (the common ones come on top). */
  readonly params: readonly ParamSpec[];
}

/** `on=read|write|any`: which I/O commands are eligible. */
export const ON_PARAM: ParamSpec = { name: 'on', kind: 'enum', values: ['any', 'read', 'write'], default: 'any', doc: 'which I/O commands are eligible' };
