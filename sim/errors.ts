/**
 * Errors of the simulated machine: one class, `SimError`, whose code is one of a closed set.
 *
 * The set is the union of the sim core's codes (sim/*.ts, documented in sim/README.md) and the
 * codes of the device models (sim/nvme, sim/e1000e, ...): a model that needs codes of its own
 * declares its union next to `SimCoreCode` below, adds it to `SimCode` on a line of its own, and
 * documents each code in its folder's README. A code belongs to one union only.
 */
import { DmaboxError } from '../common/errors.js';

/** The sim core: memory, IOMMU, PCI functions, MSI/MSI-X, register tables, platforms, the wire. */
export type SimCoreCode = 'ERR_SIM_ARG' | 'ERR_SIM_BAR' | 'ERR_SIM_CONFIG' | 'ERR_SIM_IOMMU' | 'ERR_SIM_IRQ' | 'ERR_SIM_STATE';

/** The NVMe model (sim/nvme, documented in sim/nvme/README.md). */
export type SimNvmeCode = 'ERR_SIM_NVME_UNSUPPORTED';

export type SimCode = SimCoreCode | SimNvmeCode;

export class SimError extends DmaboxError<SimCode> {}
