/**
 * A command that times out on a controller in fatal status (CSTS.CFS) or gone (CSTS all ones):
 * the hostile-nvme campaign saw the driver send an Abort into such a controller and wait the admin
 * bound for its answer before resetting, three fatal statuses in a row stalling it past the trial's
 * hang bound. NVMe 1.4 §9.5: on a timeout the host checks CSTS.CFS first; the driver now resets at
 * once, without an Abort, and names why.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NvmeController } from '../../../drivers/nvme/controller.js';
import type { Platform } from '../../../drivers/contract/platform.js';
import { parsePlan } from '../../../sim/faults/plan.js';
import { ADDRESS, simRig } from './sim-target.js';
import { pattern } from './suite.js';

let platform: Platform | undefined;
let c: NvmeController | undefined;

test.after.each(async () => {
  await c?.close().catch(() => undefined);
  platform?.close();
  c = undefined;
  platform = undefined;
});

async function open(plan: string, logs: string[]): Promise<NvmeController> {
  const rig = simRig({ timeout: 1, faultPlan: parsePlan(plan) });
  platform = rig.machine.platform(ADDRESS);
  c = await NvmeController.open(platform, { ioTimeoutMs: 60, adminTimeoutMs: 60, shutdownTimeoutMs: 200, log: (m) => logs.push(m) });
  return c;
}

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

for (const interrupts of ['poll', 'msix'] as const) {
  test(`nvme.fatal (${interrupts}): the timed-out read resets the controller without an Abort, and I/O works again`, async () => {
    const logs: string[] = [];
    const ctrl = await open('nvme.fatal:on=read', logs);
    await ctrl.namespaces[0]!.write(1, pattern(512, 1));
    assert.is(await outcome(ctrl.namespaces[0]!.read(1, 1)), 'ERR_NVME_TIMEOUT');
    assert.is(ctrl.aborts, 0, logs.join('\n'));
    assert.is(ctrl.resets, 1);
    assert.ok(
      logs.some((l) => /CSTS\.CFS is set \(controller fatal status\); resetting the controller without an Abort/.test(l)),
      logs.join('\n'),
    );
    assert.equal(await ctrl.namespaces[0]!.read(1, 1), pattern(512, 1));
  });
}

test('nvme.removal: the timed-out read finds CSTS all ones, sends no Abort, and the controller is failed at once', async () => {
  const logs: string[] = [];
  const ctrl = await open('nvme.removal:on=read', logs);
  await ctrl.namespaces[0]!.write(1, pattern(512, 1));
  const out = await outcome(ctrl.namespaces[0]!.read(1, 1));
  assert.ok(out === 'ERR_NVME_TIMEOUT' || out === 'ERR_NVME_FATAL', out);
  assert.is(ctrl.aborts, 0, logs.join('\n'));
  assert.ok(
    logs.some((l) => /CSTS reads all ones \(the device is gone\)/.test(l)),
    logs.join('\n'),
  );
  for (let i = 0; i < 100 && ctrl.status().state !== 'failed'; i++) await new Promise((r) => setTimeout(r, 5));
  assert.is(ctrl.status().state, 'failed');
});

test.run();
