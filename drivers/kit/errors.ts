/**
 * Errors of the driver kit (buffer pools, PRP lists): a driver's own bookkeeping gone wrong.
 *
 * ERR_KIT_ARG             a pool or list space built with a bad size, offset, alignment or window
 * ERR_KIT_POOL_EXHAUSTED  no free buffer in a pool (when the caller asked for a throw, not -1)
 * ERR_KIT_POOL_FREE       a buffer or list slot freed twice, or an index that is not the pool's
 * ERR_KIT_PRP             a transfer the PRP rules cannot describe (outside the window, too long for a list slot)
 */
import { DmaboxError } from '../../common/errors.js';

export class KitError extends DmaboxError {}
