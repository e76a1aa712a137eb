/**
 * Errors of device fault plans (sim/faults): one class, `FaultError`, with a closed code set,
 * documented in sim/faults/README.md. Only building a plan throws (a CLI's or a campaign spec's
 * text, a class name, a parameter); injecting a fault never does: it is device behaviour.
 */
import { DmaboxError } from '../../common/errors.js';

export type FaultCode = 'ERR_FAULT_SYNTAX' | 'ERR_FAULT_CLASS' | 'ERR_FAULT_PARAM';

export class FaultError extends DmaboxError<FaultCode> {}
