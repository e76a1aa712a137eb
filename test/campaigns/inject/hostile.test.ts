/**
 * campaigns/inject/hostile.ts in this process, on a fake container Platform (its system-call object
 * and register mailbox are the seam the attacks reach through): which request fires, what each
 * `hostile-abi` attack does to the objects it finds, what it does where it finds none, and
 * `startInjected` arming it on the device a block driver returns. The attacks' effect on the real
 * manager is test/campaigns/container-hostile.test.ts; `exhaustion` (which ends its process) runs
 * only there.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BlockDevice } from '../../../drivers/contract/block.js';
import type { DriverContext, DriverModule } from '../../../drivers/contract/driver.js';
import type { Platform } from '../../../drivers/contract/platform.js';
import { armHostile } from '../../../campaigns/inject/hostile.js';
import { FIRED_PREFIX, startInjected } from '../../../campaigns/inject/container.js';
import type { Firing, InjectionPlan } from '../../../campaigns/inject/plan.js';

const plan = (fault: string, variants: string[], first = 2, more: Partial<InjectionPlan> = {}): InjectionPlan => ({
  fault,
  seed: 5,
  first,
  probability: 100,
  interval: 1,
  times: 1,
  variants,
  canary: 0,
  neighbour: 0,
  ...more,
});

class FakeSys {
  sent: { fd: number; bytes: Uint8Array; flags: number }[] = [];
  kicks: number[] = [];
  sendError: Error | undefined;
  send(fd: number, data: Uint8Array, flags: number): number {
    if (this.sendError) throw this.sendError;
    this.sent.push({ fd, bytes: data.slice(), flags });
    return data.length;
  }
  eventfdWrite(fd: number): void {
    this.kicks.push(fd);
  }
}

/** A Platform shaped as the container's (sandbox/container/platform.ts): `mb` with its sys, words, kick fd and producer. */
function platform(sys: FakeSys | undefined, mailbox = true): { p: Platform; u32: Uint32Array } {
  const u32 = new Uint32Array(64);
  const mb = mailbox && sys ? { sys, u32, kickFd: 9, req: { tail: 31, layout: { tail: 2, entries: 256 } } } : undefined;
  return { p: { name: 'fake', mb, irq: { sys } } as unknown as Platform, u32 };
}

function blockDevice(): BlockDevice & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    blockSize: 512,
    blockCount: 64,
    read: (tag, lba, blocks) => {
      calls.push(`read ${tag} ${lba} ${blocks}`);
      return Promise.resolve();
    },
    write: (tag, lba, blocks, fua) => {
      calls.push(`write ${tag} ${lba} ${blocks} ${fua}`);
      return Promise.resolve();
    },
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
    describe: () => 'fake',
  };
}

function arm(p: Platform, pl: InjectionPlan) {
  const dev = blockDevice();
  const fired: Firing[] = [];
  const lines: string[] = [];
  const ctx: DriverContext<unknown> = { platform: p, options: { queues: 1, depth: 4, interrupts: 'polling' }, service: {}, log: (_l, t) => lines.push(t) };
  armHostile(dev, ctx, pl, { hypercallFd: 3, onFire: (f) => fired.push(f) });
  return { dev, fired, lines };
}

test('garbage-hypercall: fires once at request `first`, sends bytes without the frame magic on the hypercall fd, and the request goes on', async () => {
  const sys = new FakeSys();
  const { dev, fired } = arm(platform(sys).p, plan('hostile-abi', ['garbage-hypercall'], 2));
  await dev.read(0, 1, 1);
  await dev.write(1, 2, 1, false);
  assert.is(sys.sent.length, 0, 'nothing before the first point');
  await dev.read(2, 3, 1);
  await dev.write(3, 4, 2, true);
  assert.is(sys.sent.length, 1, 'once (times: 1)');
  const s = sys.sent[0]!;
  assert.is(s.fd, 3);
  assert.is(s.flags, 0x40 | 0x4000, 'MSG_DONTWAIT | MSG_NOSIGNAL');
  assert.ok(s.bytes.length >= 16 && s.bytes.length < 256, `${s.bytes.length} bytes`);
  assert.is.not(s.bytes[0], 0x68, 'never the magic');
  assert.equal(fired, [{ point: 2, variant: 'garbage-hypercall', detail: `${s.bytes.length} garbage bytes on hypercall fd 3` }]);
  assert.equal(dev.calls, ['read 0 1 1', 'write 1 2 1 false', 'read 2 3 1', 'write 3 4 2 true'], 'every request reached the driver');
});

test('the firing rule: interval and times as the injector has them; probability 0 never fires', async () => {
  const sys = new FakeSys();
  const { dev, fired } = arm(platform(sys).p, plan('hostile-abi', ['garbage-hypercall'], 1, { interval: 3, times: 2 }));
  for (let i = 0; i < 10; i++) await dev.read(i, i, 1);
  assert.equal(
    fired.map((f) => f.point),
    [1, 4],
  );
  const never = arm(platform(new FakeSys()).p, plan('hostile-abi', ['flood'], 0, { probability: 0 }));
  for (let i = 0; i < 5; i++) await never.dev.write(i, i, 1, false);
  assert.is(never.fired.length, 0);
});

test('ring-index: the register ring TAIL is forged far ahead of the producer and the manager kicked', async () => {
  const sys = new FakeSys();
  const { p, u32 } = platform(sys);
  const { dev, fired } = arm(p, plan('hostile-abi', ['ring-index'], 0));
  await dev.write(0, 0, 1, false);
  assert.is(u32[2], 31 + 4096 * 256);
  assert.equal(sys.kicks, [9]);
  assert.match(fired[0]!.detail!, /register ring TAIL forged from 31 to 1048607 \(256 entries\), kicked/);
});

test('flood: thousands of LOG lines at once; without a mailbox or a system-call object the attacks say they did nothing', async () => {
  const flood = arm(platform(new FakeSys()).p, plan('hostile-abi', ['flood'], 0));
  await flood.dev.read(0, 0, 1);
  assert.is(flood.lines.length, 4000);
  assert.match(flood.fired[0]!.detail!, /4000 LOG hypercalls/);

  const noMb = arm(platform(new FakeSys(), false).p, plan('hostile-abi', ['ring-index'], 0));
  await noMb.dev.read(0, 0, 1);
  assert.match(noMb.fired[0]!.detail!, /no register mailbox on this platform/);

  const noSys = arm(platform(undefined).p, plan('hostile-abi', ['garbage-hypercall'], 0));
  await noSys.dev.read(0, 0, 1);
  assert.match(noSys.fired[0]!.detail!, /no system-call object/);

  const sys = new FakeSys();
  sys.sendError = new Error('EAGAIN');
  const full = arm(platform(sys).p, plan('hostile-abi', ['garbage-hypercall'], 0));
  await full.dev.read(0, 0, 1);
  assert.match(full.lines.join('\n'), /garbage hypercall not sent: EAGAIN/);
  assert.equal(full.dev.calls, ['read 0 0 1']);
});

test('startInjected arms hostile-abi and exhaustion on the device a block driver returns; a net driver gets nothing', async () => {
  const sys = new FakeSys();
  const lines: string[] = [];
  const dev = blockDevice();
  const driver = (kind: 'block' | 'net'): DriverModule<'block' | 'net', unknown, unknown> => ({
    contract: 1,
    name: 'fake',
    kind,
    start: () => Promise.resolve(dev),
  });
  const ctx: DriverContext<unknown> = {
    platform: platform(sys).p,
    options: { queues: 1, depth: 4, interrupts: 'polling' },
    service: {},
    log: (_l, t) => lines.push(t),
  };
  const got = (await startInjected(driver('block'), ctx, plan('hostile-abi', ['garbage-hypercall'], 0))) as BlockDevice;
  assert.is(got, dev);
  assert.match(lines.join('\n'), /campaign: hostile-abi armed \(first request 0\)/);
  await got.read(0, 0, 1);
  assert.is(sys.sent.length, 1);
  assert.is(sys.sent[0]!.fd, 3, 'the fallback fd without hypercallFd in the plan');
  const line = lines.find((l) => l.startsWith(FIRED_PREFIX))!;
  assert.is((JSON.parse(line.slice(FIRED_PREFIX.length)) as Firing).variant, 'garbage-hypercall');

  lines.length = 0;
  await startInjected(driver('net'), ctx, plan('exhaustion', ['cpu'], 0));
  assert.match(lines.join('\n'), /exhaustion needs a block driver; fake is net: nothing armed/);
});

test.run();
