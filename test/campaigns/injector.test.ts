/** The injector's Platform on its own: it passes the contract through until a point fires, and a dead incarnation touches nothing. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEVICE_READS } from '../../drivers/contract/platform.js';
import type { DriverContext, DriverModule } from '../../drivers/contract/driver.js';
import { SimMachine } from '../../sim/machine.js';
import { SimNvme } from '../../sim/nvme/controller.js';
import { Injector } from '../../campaigns/inject/injector.js';
import { startInjected } from '../../campaigns/inject/container.js';
import type { InjectionPlan } from '../../campaigns/inject/plan.js';
import { workerDeath } from '../../campaigns/runner.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const plan = (fault: string, first = 0, variants: string[] = []): InjectionPlan => ({
  fault,
  seed: 9,
  first,
  probability: 100,
  interval: 1,
  times: 1,
  variants,
  canary: 0,
  neighbour: 0,
});

function device(address = '0000:00:01.0') {
  const m = new SimMachine();
  m.attach(new SimNvme({ namespaces: [{ blocks: 64 }] }), { address });
  return m.platform(address);
}

test('passes the contract through; an injected allocation failure fires once; a killed incarnation refuses everything', () => {
  const raw = device();
  const inj = new Injector(plan('error-return', 1, ['dma-alloc']), () => 0);
  const inc = inj.wrap(raw, () => undefined);
  const p = inc.platform;
  const w = p.dma.alloc(4096, DEVICE_READS);
  assert.is(p.dma.available, undefined, 'the simulator offers no fixed grant, so neither does the wrapper');
  assert.throws(() => p.dma.alloc(4096, DEVICE_READS), /injected: DMA allocation/);
  assert.is(inj.firings.length, 1);
  p.dma.free(p.dma.alloc(4096, DEVICE_READS));
  assert.is(p.bar(0).read64(0), raw.bar(0).read64(0));
  p.reset();
  p.dma.free(w);
  inc.kill();
  assert.is(inc.state, 'killed');
  assert.throws(() => p.dma.alloc(4096, DEVICE_READS), /dead/);
  assert.is(p.bar(0).read32(0x1c), 0xffffffff, 'a dead incarnation reads like a vanished device');
  p.close();
  raw.close();
});

test('startInjected starts the driver on the wrapped platform, and says the injector is armed', async () => {
  const raw = device();
  const lines: string[] = [];
  let seen: unknown;
  const driver: DriverModule<'block', unknown, string> = {
    contract: 1,
    name: 'fake',
    kind: 'block',
    start: (ctx) => {
      seen = ctx.platform;
      return Promise.resolve('started');
    },
  };
  const ctx: DriverContext<unknown> = { platform: raw, options: { queues: 1, depth: 4, interrupts: 'polling' }, service: {}, log: (_l, t) => lines.push(t) };
  assert.is(await startInjected(driver, ctx, plan('crash', 5)), 'started');
  assert.ok(seen !== raw);
  assert.match(lines.join('\n'), /fault injector armed \(crash, first point 5\)/);
  raw.close();
});

test("a dead incarnation's sleep never resolves, and keeps nothing: the driver awaiting it and its machine are collected", async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let machineRef: WeakRef<object> | undefined;
  let resumed = false;
  (() => {
    const m = new SimMachine();
    m.attach(new SimNvme({ namespaces: [{ blocks: 64 }] }), { address: '0000:00:01.0' });
    machineRef = new WeakRef(m);
    const inj = new Injector(plan('none'), () => 0);
    const inc = inj.wrap(m.platform('0000:00:01.0'), () => undefined);
    inc.kill();
    // a driver's loop, suspended in a sleep of the dead incarnation (what a killed or hung driver leaves)
    void (async () => {
      await inc.platform.clock.sleep(1);
      resumed = true;
    })();
  })();
  for (let i = 0; i < 10 && machineRef!.deref() !== undefined; i++) {
    await new Promise((r) => setTimeout(r, 5));
    gc();
  }
  assert.is(resumed, false, 'the sleep of a dead incarnation never ends');
  assert.is(machineRef!.deref(), undefined, 'the simulated machine was collected');
});

test("a campaign worker's death is told by its stderr: V8's fatal error first, else the last line", () => {
  const oom =
    '<--- Last few GCs --->\n[123:0x1]  5000 ms: Mark-Compact\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n 1: 0xb7 node::Abort()\n';
  assert.is(workerDeath(oom), 'FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory');
  assert.is(workerDeath('some warning\nError: boom\n\n'), 'Error: boom');
  assert.is(workerDeath(''), '');
});

test.run();
