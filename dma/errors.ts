/**
 * Errors of the DMA layer. Codes are stable; messages say what is wrong and how to fix it.
 *
 * ERR_DMA_ARG              a caller passed a bad size, alignment, offset or permission
 * ERR_DMA_IOVA_EXHAUSTED   no free IOVA range of the requested size inside the IOMMU's ranges
 * ERR_DMA_MAPPINGS         the container's mapping budget (VFIO type1 DMA_AVAIL) would run out
 * ERR_DMA_MEMLOCK          pinning would exceed RLIMIT_MEMLOCK
 * ERR_DMA_WINDOW_STATE     a window used after free, freed twice, or not from this allocator
 * ERR_DMA_MEMORY           the memory provider could not allocate or map DMA memory
 * ERR_DMA_MAP              the IOMMU backend refused a map or unmap
 */
import { DmaboxError } from '../common/errors.js';

export class DmaError extends DmaboxError {}
