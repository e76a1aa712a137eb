/**
 * Errors of spec/: a declaration that contradicts itself (found when the module loads, so a test
 * run finds it at once) and a value that does not fit the field it is written to.
 */
import { DmaboxError } from '../common/errors.js';

export type SpecCode = 'ERR_SPEC_DECLARATION' | 'ERR_SPEC_FIELD_VALUE';

export class SpecError extends DmaboxError<SpecCode> {}
