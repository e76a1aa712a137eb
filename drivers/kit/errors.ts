/**
 * Errors of the driver kit (buffer pools, PRP lists, free stacks): a driver's own bookkeeping gone
 * wrong. The codes are a closed set; each is explained, with its fix, in drivers/kit/README.md
 * (test/common/error-codes.test.ts holds the two together).
 */
import { DmaboxError } from '../../common/errors.js';

export type KitCode = 'ERR_KIT_ARG' | 'ERR_KIT_POOL_EXHAUSTED' | 'ERR_KIT_POOL_FREE' | 'ERR_KIT_PRP';

export class KitError extends DmaboxError<KitCode> {}
