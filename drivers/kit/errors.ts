/**
 * Errors of the driver kit (buffer pools, PRP lists, free stacks): a driver's own bookkeeping gone
 * wrong. The codes are a closed set; each is explained, with its fix, in drivers/kit/README.md.
 */
import { DmaboxError } from '../../common/errors.js';

/** Every code a KitError carries. */
export const KIT_ERROR_CODES = ['ERR_KIT_ARG', 'ERR_KIT_POOL_EXHAUSTED', 'ERR_KIT_POOL_FREE', 'ERR_KIT_PRP'] as const;
export type KitErrorCode = (typeof KIT_ERROR_CODES)[number];

export class KitError extends DmaboxError<KitErrorCode> {}
