/**
 * Errors of the simulated machine and its device models: one class, one closed set of codes.
 * What each code means and how to fix it is in sim/README.md.
 */
import { DmaboxError } from '../common/errors.js';

export type SimCode =
  | 'ERR_SIM_ARG'
  | 'ERR_SIM_BAR'
  | 'ERR_SIM_CONFIG'
  | 'ERR_SIM_IOMMU'
  | 'ERR_SIM_IRQ'
  | 'ERR_SIM_STATE';

export class SimError extends DmaboxError<SimCode> {}
