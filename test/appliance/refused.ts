import { ApplianceError, type ApplianceCode } from '../../appliance/image/errors.js';

/** An assert.throws predicate: an ApplianceError with this code whose message matches. */
export function refused(code: ApplianceCode, message: RegExp): (e: unknown) => boolean {
  return (e) => e instanceof ApplianceError && e.code === code && message.test(e.message);
}
