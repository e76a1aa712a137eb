/**
 * The injector's entry in a driver container: a campaign's code image (built by the manager only
 * for a Supervisor given `campaign`, sandbox/manager/driver-code.ts) has a generated entry module
 * that calls `startInjected` with the driver module and the plan. Here a crash is a real one (the
 * exception is uncaught: the container exits and the supervisor restarts it) and a hang is an
 * endless loop (heartbeats stop).
 */
import type { DriverContext, DriverModule } from '../../drivers/contract/driver.js';
import { Injector } from './injector.js';
import type { InjectionPlan } from './plan.js';

/** The log line of a firing in a container: this prefix, then the Firing as JSON. */
export const FIRED_PREFIX = 'campaign: fired ';

export function startInjected<P, D>(driver: DriverModule<'block' | 'net', P, D>, ctx: DriverContext<P>, plan: InjectionPlan): Promise<D> {
  // Each firing is logged before it takes effect (a hang spins right after): `campaign: fired {json}`,
  // which the campaign reads back from the sandbox's events (campaigns/container/trial.ts).
  const injector = new Injector(plan, () => ctx.platform.clock.now(), { process: true, onFire: (f) => ctx.log('warn', `${FIRED_PREFIX}${JSON.stringify(f)}`) });
  const inc = injector.wrap(ctx.platform, (why) => ctx.log('error', `campaign: ${why}`));
  ctx.log('warn', `campaign: fault injector armed (${plan.fault}, first point ${plan.first})`);
  return driver.start({ ...ctx, platform: inc.platform });
}
