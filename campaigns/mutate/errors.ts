/** Errors of code mutation (campaigns/README.md, "Errors"). */
import { DmaboxError } from '../../common/errors.js';

export type MutateCode = 'ERR_MUTATE_SCAN' | 'ERR_MUTATE_SITES' | 'ERR_MUTATE_LOAD';

export class MutateError extends DmaboxError<MutateCode> {}
