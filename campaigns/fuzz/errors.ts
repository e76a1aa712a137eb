/**
 * Errors of the coverage-guided fuzzer (campaigns/fuzz/): one class, a closed set of codes, each
 * documented in campaigns/README.md ("Errors").
 */
import { DmaboxError } from '../../common/errors.js';

export type FuzzCode = 'ERR_FUZZ_ARG' | 'ERR_FUZZ_CORPUS' | 'ERR_FUZZ_REPRODUCE' | 'ERR_FUZZ_WORKER' | 'ERR_FUZZ_COVERAGE';

export class FuzzError extends DmaboxError<FuzzCode> {}
