/** Every fault class the device models implement, by name: what a campaign spec or a CLI names. */
import type { FaultClass, FaultDevice } from './classes.js';
import { E1000E_CLASSES } from './e1000e-classes.js';
import { FaultError } from './errors.js';
import { NVME_CLASSES } from './nvme-classes.js';
import { COMMON_PARAMS, describeParam } from './params.js';

const ALL: readonly FaultClass[] = [...NVME_CLASSES, ...E1000E_CLASSES];
const BY_NAME = new Map(ALL.map((c) => [c.name, c]));

/** Every class, or those of one device, in declaration order. */
export function faultClasses(device?: FaultDevice): readonly FaultClass[] {
  return device === undefined ? ALL : ALL.filter((c) => c.device === device);
}

/** The class named `name`; ERR_FAULT_CLASS (with the names there are) when there is none. */
export function faultClass(name: string): FaultClass {
  const c = BY_NAME.get(name);
  if (c === undefined) {
    throw new FaultError('ERR_FAULT_CLASS', `no fault class is named ${JSON.stringify(name)}`, {
      fix: `name one of: ${ALL.map((k) => k.name).join(', ')}`,
    });
  }
  return c;
}

/** A listing for people (a CLI's `--list-faults`): every class, its event, what it does, its parameters. */
export function describeFaultClasses(device?: FaultDevice): string {
  const lines = [`every class takes: ${COMMON_PARAMS.map((p) => describeParam(p)).join('; ')}`, ''];
  for (const c of faultClasses(device)) {
    lines.push(`${c.name}: ${c.doc}`, `  event: ${c.event}`);
    for (const p of c.params) lines.push(`  ${describeParam(p)}`);
  }
  return lines.join('\n');
}
