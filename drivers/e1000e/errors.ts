/**
 * Errors of the e1000e driver: one class, one closed set of codes. What each code means and how
 * to fix it is in drivers/e1000e/README.md; messages say what the device did.
 */
import { DmaboxError } from '../../common/errors.js';

export type E1000eCode =
  | 'ERR_E1000E_OPTION'
  | 'ERR_E1000E_DEVICE'
  | 'ERR_E1000E_RESET_TIMEOUT'
  | 'ERR_E1000E_EEPROM_TIMEOUT'
  | 'ERR_E1000E_NO_MAC'
  | 'ERR_E1000E_LINK_TIMEOUT'
  | 'ERR_E1000E_IRQ'
  | 'ERR_E1000E_POOL'
  | 'ERR_E1000E_FRAME'
  | 'ERR_E1000E_GONE';

export class E1000eError extends DmaboxError<E1000eCode> {}
