/**
 * The injector's entry in a driver container: a campaign's code image (built by the manager only
 * for a Supervisor given `campaign`, sandbox/manager/driver-code.ts) has a generated entry module
 * that calls `startInjected` with the driver module and the plan. Here a crash is a real one (the
 * exception is uncaught: the container exits and the supervisor restarts it) and a hang is an
 * endless loop (heartbeats stop). The container-only classes `hostile-abi` and `exhaustion` arm
 * hostile.ts on the device the driver returns instead of wrapping its Platform.
 */
import type { DriverContext, DriverModule } from '../../drivers/contract/driver.js';
import type { BlockDevice } from '../../drivers/contract/block.js';
import { armHostile } from './hostile.js';
import { Injector } from './injector.js';
import type { InjectionPlan } from './plan.js';

/** The log line of a firing in a container: this prefix, then the Firing as JSON. */
export const FIRED_PREFIX = 'campaign: fired ';

/** Fault classes whose attack runs at the driver's block requests, in its container (hostile.ts). */
const HOSTILE_CLASSES: readonly string[] = ['hostile-abi', 'exhaustion'];

/** Fallback for a plan without `hypercallFd`: sandbox/abi/boot.ts FD.HYPERCALL. */
const HYPERCALL_FD = 3;

export async function startInjected<P, D>(driver: DriverModule<'block' | 'net', P, D>, ctx: DriverContext<P>, plan: InjectionPlan): Promise<D> {
  const fired = (f: unknown) => ctx.log('warn', `${FIRED_PREFIX}${JSON.stringify(f)}`);
  if (HOSTILE_CLASSES.includes(plan.fault)) {
    const device = await driver.start(ctx);
    if (driver.kind !== 'block') {
      ctx.log('error', `campaign: ${plan.fault} needs a block driver; ${driver.name} is ${driver.kind}: nothing armed`);
      return device;
    }
    armHostile(device as BlockDevice, ctx, plan, { hypercallFd: plan.hypercallFd ?? HYPERCALL_FD, onFire: fired });
    ctx.log('warn', `campaign: ${plan.fault} armed (first request ${plan.first})`);
    return device;
  }
  // Each firing is logged before it takes effect (a hang spins right after): `campaign: fired {json}`,
  // which the campaign reads back from the sandbox's events (campaigns/container/trial.ts).
  const injector = new Injector(plan, () => ctx.platform.clock.now(), { process: true, onFire: fired });
  const inc = injector.wrap(ctx.platform, (why) => ctx.log('error', `campaign: ${why}`));
  ctx.log('warn', `campaign: fault injector armed (${plan.fault}, first point ${plan.first})`);
  return driver.start({ ...ctx, platform: inc.platform });
}
