/**
 * Errors of the simulated machine and its device models. The codes are a closed set; each is
 * explained, with its fix, in sim/README.md.
 */
import { DmaboxError } from '../common/errors.js';

export type SimErrorCode =
  | 'ERR_SIM_ARG' // bad argument to a simulator API (overlapping region, bad address, bad offset, a model option out of range)
  | 'ERR_SIM_BAR' // a BAR access out of bounds or not 4-byte aligned, or a BAR that does not exist
  | 'ERR_SIM_CONFIG' // a config-space access out of bounds or misaligned
  | 'ERR_SIM_IOMMU' // an IOMMU map/unmap the page tables cannot take (overlap, unmapped range)
  | 'ERR_SIM_IRQ' // an interrupt kind or count the function does not offer
  | 'ERR_SIM_STATE' // an operation on a closed platform or detached function
  | 'ERR_SIM_UNSUPPORTED'; // a device model that cannot run on this host (the NVMe model on a big-endian CPU)

export class SimError extends DmaboxError<SimErrorCode> {}
