/**
 * Errors of the simulated machine. Codes are stable.
 *
 * ERR_SIM_ARG        bad argument to a simulator API (overlapping region, bad address, bad offset)
 * ERR_SIM_BAR        a BAR access out of bounds or not 4-byte aligned, or a BAR that does not exist
 * ERR_SIM_CONFIG     a config-space access out of bounds or misaligned
 * ERR_SIM_IOMMU      an IOMMU map/unmap the page tables cannot take (overlap, unmapped range)
 * ERR_SIM_IRQ        an interrupt kind or count the function does not offer
 * ERR_SIM_STATE      an operation on a closed platform or detached function
 */
import { DmaboxError } from '../common/errors.js';

export class SimError extends DmaboxError {}
