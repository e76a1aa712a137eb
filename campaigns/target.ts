/**
 * The target's driver module, loaded into this process (the campaign runner is trusted tooling that
 * runs a driver in-process on the simulator, like linkback/in-process; `dmabox up` never loads it).
 */
import { pathToFileURL } from 'node:url';
import { DRIVER_CONTRACT } from '../drivers/contract/driver.js';
import type { Policy } from '../policies/types.js';
import { driverRef } from '../sandbox/manager/driver-code.js';
import { CampaignError } from './errors.js';
import type { BlockDriverModule } from './trial.js';
import type { NetDriverModule } from './targets/e1000e.js';

/** The driver module of the target policy: a block driver for a simulated NVMe device, a net driver for a simulated e1000e. */
export async function loadDriver(policy: Policy): Promise<BlockDriverModule | NetDriverModule> {
  const want = 'sim' in policy.device && policy.device.sim === 'e1000e' ? 'net' : 'block';
  const ref = driverRef(policy);
  let mod: Partial<BlockDriverModule | NetDriverModule>;
  try {
    mod = (await import(pathToFileURL(ref.entry).href)) as Partial<BlockDriverModule | NetDriverModule>;
  } catch (e) {
    throw new CampaignError('ERR_CAMPAIGN_TARGET', `driver ${ref.label}: cannot load ${ref.entry}: ${(e as Error).message.split('\n')[0]}`, {
      fix: 'run npm run build; an external module must be JavaScript',
      cause: e,
    });
  }
  if (mod.contract !== DRIVER_CONTRACT || mod.kind !== want || typeof mod.start !== 'function')
    throw new CampaignError(
      'ERR_CAMPAIGN_TARGET',
      `driver ${ref.label}: not a ${want} driver module of contract ${DRIVER_CONTRACT} (contract ${String(mod.contract)}, kind ${String(mod.kind)})`,
      {
        fix: `export contract = 1, kind = "${want}" and start(ctx) (drivers/README.md)`,
      },
    );
  return mod as BlockDriverModule | NetDriverModule;
}

/** The target's driver when the caller drives block devices only (the NVMe trial, the fuzzer). */
export async function loadBlockDriver(policy: Policy): Promise<BlockDriverModule> {
  const mod = await loadDriver(policy);
  if (mod.kind !== 'block')
    throw new CampaignError(
      'ERR_CAMPAIGN_TARGET',
      `policy ${policy.name}: its driver is a ${mod.kind} driver; this needs a block driver (a simulated NVMe target)`,
      {
        fix: 'target a policy with `device: { sim: nvme }`',
      },
    );
  return mod;
}
