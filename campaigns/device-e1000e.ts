/**
 * The 82574L model's device fault classes (sim/faults/e1000e-classes.ts) as campaign classes,
 * `side: 'device'`: the spec key is the class name (`e1000e.rx-writeback`), its own parameters sit
 * beside the common ones and are checked by the schema here and again by the registry
 * (`makePlan`) when a trial builds the model with its plan (campaigns/targets/e1000e.ts).
 */
import { E1000E_CLASSES } from '../sim/faults/e1000e-classes.js';
import type { FaultClassInfo } from './fault-classes.js';

export const E1000E_DEVICE_CLASSES: readonly FaultClassInfo[] = E1000E_CLASSES.map((c) => ({
  name: c.name,
  side: 'device' as const,
  doc: `The device misbehaves at ${c.event}: ${c.doc}.`,
  params: c.params.map((p) =>
    p.kind === 'enum'
      ? { name: p.name, schema: { t: 'string' as const, enum: p.values, hint: p.values.map((v) => `'${v}'`).join(', ') }, default: p.default, doc: p.doc }
      : { name: p.name, schema: { t: 'int' as const, min: p.min, max: p.max }, default: p.default, doc: p.doc },
  ),
}));
