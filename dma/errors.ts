/**
 * Errors of the manager-side DMA code: one class, one closed set of codes. Each code's meaning and
 * fix are in dma/README.md (test/common/error-codes.test.ts holds the two together).
 */
import { DmaboxError } from '../common/errors.js';

export type DmaCode =
  'ERR_DMA_ARG' | 'ERR_DMA_IOVA_EXHAUSTED' | 'ERR_DMA_MAPPINGS' | 'ERR_DMA_MEMLOCK' | 'ERR_DMA_WINDOW_STATE' | 'ERR_DMA_MEMORY' | 'ERR_DMA_MAP';

export class DmaError extends DmaboxError<DmaCode> {}
