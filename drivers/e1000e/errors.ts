/**
 * Errors of the e1000e driver. Codes are stable (`ERR_E1000E_*`); messages say what the device
 * did, and the `fix` what a user can do.
 */
import { DmaboxError } from '../../common/errors.js';

export type E1000eErrorCode =
  | 'ERR_E1000E_OPTION' // a bad option value
  | 'ERR_E1000E_DEVICE' // not an 82574L, or its BAR is not what the datasheet says
  | 'ERR_E1000E_RESET_TIMEOUT' // CTRL.RST did not self-clear
  | 'ERR_E1000E_EEPROM_TIMEOUT' // EERD.DONE never set
  | 'ERR_E1000E_LINK_TIMEOUT' // STATUS.LU did not come up
  | 'ERR_E1000E_IRQ' // the interrupt mode asked for is not available
  | 'ERR_E1000E_CLOSED'; // used after close()

export class E1000eError extends DmaboxError {
  constructor(code: E1000eErrorCode, message: string, options: { cause?: unknown; fix?: string } = {}) {
    super(code, message, options);
  }
}
