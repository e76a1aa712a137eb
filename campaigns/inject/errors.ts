/** Errors the driver-side injector raises into the driver (campaigns/README.md, "Errors"). */
import { DmaboxError } from '../../common/errors.js';

export type InjectCode = 'ERR_INJECTED_CRASH' | 'ERR_INJECTED_ERROR' | 'ERR_INJECTED_KILLED' | 'ERR_INJECTED_LOOP';

export class InjectError extends DmaboxError<InjectCode> {}
