/**
 * Spares (sandbox/manager/spare.ts, sandbox/abi/handover.ts): the handover message, the checks a
 * spare makes before it takes over (sandbox, role, identity), that a spare holds nothing of its
 * sandbox before it takes over, and a supervisor whose restart a spare container and a spare
 * device process take over, serving the same data after.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { needsRoot, testIf } from '../helpers/skip.js';
import { defaultSys } from 'linux-sys';
import {
  decodeHandover,
  decodePrepare,
  encodeHandover,
  encodePrepare,
  HANDOVER_BYTES,
  PREPARE_BYTES,
  receiveHandover,
  receiveSpareMessage,
  SPARE_ARG,
  SPARE_SLOTS,
} from '../../sandbox/abi/handover.js';
import { decodeCode, encodeCode } from '../../sandbox/abi/code.js';
import { warmUp } from '../../sandbox/device/warm.js';
import { warmUp as containerWarmUp } from '../../sandbox/container/warm.js';
import { EAGER_COMPILE, Spare } from '../../sandbox/manager/spare.js';
import { containerSpec } from '../../sandbox/manager/incarnation.js';
import { directLauncher, type Launcher } from '../../sandbox/manager/launcher.js';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import type { Launched, LaunchExit, LaunchSpec } from '../../sandbox/spawner/launch.js';
import { pattern, simPolicy, until } from './helpers.js';

const sys = defaultSys();

/** The code of the error `f` throws, or undefined when it does not throw. */
function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

test('handover: encoded and decoded; a foreign message, another version, a reserved field or too many fds is ERR_ABI_HANDOVER', () => {
  const m = encodeHandover(7);
  assert.is(m.length, HANDOVER_BYTES);
  assert.is(decodeHandover(m, m.length), 7);
  assert.is(
    code(() => encodeHandover(SPARE_SLOTS)),
    'ERR_ABI_HANDOVER',
  );
  assert.is(
    code(() => encodeHandover(-1)),
    'ERR_ABI_HANDOVER',
  );
  assert.is(
    code(() => decodeHandover(m, m.length - 1)),
    'ERR_ABI_HANDOVER',
  );
  const other = m.slice();
  other[0] ^= 1;
  assert.is(
    code(() => decodeHandover(other, other.length)),
    'ERR_ABI_HANDOVER',
  );
  const version = m.slice();
  version[4] = 9;
  assert.is(
    code(() => decodeHandover(version, version.length)),
    'ERR_ABI_HANDOVER',
  );
  const reserved = m.slice();
  reserved[12] = 1;
  assert.is(
    code(() => decodeHandover(reserved, reserved.length)),
    'ERR_ABI_HANDOVER',
  );
});

test("the spare's side: slots 4 and up dropped, then the fds must land on 4, 5, ...; elsewhere, truncated or the socket closed is ERR_ABI_HANDOVER", () => {
  const fake = (fds: number[], o: { bytes?: number; truncated?: boolean } = {}) => {
    const closed: number[] = [];
    const sys = {
      close: (fd: number) => closed.push(fd),
      recvFds: (fd: number, data: Uint8Array, maxFds: number) => {
        assert.is(fd, 3);
        assert.is(maxFds, SPARE_SLOTS - 1);
        data.set(encodeHandover(fds.length));
        return { bytes: o.bytes ?? HANDOVER_BYTES, fds, truncated: o.truncated ?? false };
      },
    };
    return { sys, closed };
  };
  const ok = fake([4, 5, 6]);
  assert.is(receiveHandover(ok.sys), 3);
  assert.equal(
    ok.closed,
    Array.from({ length: SPARE_SLOTS - 1 }, (_, i) => 4 + i),
    'every placeholder slot is closed before the receive',
  );
  assert.throws(() => receiveHandover(fake([4, 9, 6]).sys), /landed on 4,9,6/);
  assert.throws(() => receiveHandover(fake([4, 5], { truncated: true }).sys), /truncated/);
  assert.throws(() => receiveHandover(fake([], { bytes: 0 }).sys), /not needed/);
});

test('prepare: encoded and decoded with its profile; a handover, another version, no profile, an unprintable one or another fd count is ERR_ABI_HANDOVER', () => {
  const m = encodePrepare('driver');
  assert.is(m.length, PREPARE_BYTES);
  assert.is(decodePrepare(m, m.length), 'driver');
  assert.is(
    code(() => encodePrepare('')),
    'ERR_ABI_HANDOVER',
  );
  assert.is(
    code(() => encodePrepare('a-profile-name-too-long')),
    'ERR_ABI_HANDOVER',
  );
  assert.is(
    code(() => decodePrepare(encodeHandover(1), HANDOVER_BYTES)),
    'ERR_ABI_HANDOVER',
  );
  assert.is(
    code(() => decodeHandover(m, m.length)),
    'ERR_ABI_HANDOVER',
    'a spare waiting for HANDOVER (a device process) refuses PREPARE',
  );
  const mutate = (at: number, v: number): Uint8Array => {
    const b = m.slice();
    b[at] = v;
    return b;
  };
  for (const [at, v, why] of [
    [4, 9, 'version'],
    [6, 2, 'fd count'],
    [12, 1, 'reserved'],
    [HANDOVER_BYTES, 0, 'empty profile'],
    [HANDOVER_BYTES + 1, 0x0a, 'unprintable profile'],
    [HANDOVER_BYTES + 8, 0x41, 'a character after the NUL padding began'],
  ] as const) {
    assert.is(
      code(() => decodePrepare(mutate(at, v), PREPARE_BYTES)),
      'ERR_ABI_HANDOVER',
      why,
    );
  }
});

test("a spare container's first receive: PREPARE with its fd on slot 4 (the message read whole even when it comes in two parts), or HANDOVER; a PREPARE fd elsewhere is ERR_ABI_HANDOVER and closed", () => {
  const fake = (chunks: { data: Uint8Array; fds: number[] }[]) => {
    const closed: number[] = [];
    const sys = {
      close: (fd: number) => closed.push(fd),
      recvFds: (fd: number, data: Uint8Array) => {
        assert.is(fd, 3);
        const c = chunks.shift()!;
        const n = Math.min(data.length, c.data.length);
        data.set(c.data.subarray(0, n));
        if (n < c.data.length) chunks.unshift({ data: c.data.subarray(n), fds: [] });
        return { bytes: n, fds: c.fds, truncated: false };
      },
    };
    return { sys, closed };
  };
  const m = encodePrepare('driver');
  const whole = fake([{ data: m, fds: [4] }]);
  assert.equal(receiveSpareMessage(whole.sys), { kind: 'prepare', profile: 'driver', fd: 4 });
  const split = fake([
    { data: m.subarray(0, 20), fds: [4] },
    { data: m.subarray(20), fds: [] },
  ]);
  assert.equal(receiveSpareMessage(split.sys), { kind: 'prepare', profile: 'driver', fd: 4 });
  assert.equal(receiveSpareMessage(fake([{ data: encodeHandover(2), fds: [4, 5] }]).sys), { kind: 'handover', count: 2 });
  const elsewhere = fake([{ data: m, fds: [9] }]);
  assert.throws(() => receiveSpareMessage(elsewhere.sys), /landed on 9/);
  assert.ok(elsewhere.closed.includes(9), 'the stray fd is closed');
  assert.throws(() => receiveSpareMessage(fake([{ data: new Uint8Array(0), fds: [] }]).sys), /not needed/);
});

test("a spare device process's warm-up builds throwaway models over plain memory and opens no fd", () => {
  const before = readdirSync('/proc/self/fd').length;
  warmUp();
  warmUp();
  assert.is(readdirSync('/proc/self/fd').length, before);
});

test("a spare container's warm-up compiles its filter and collects, opening no fd and installing nothing", () => {
  const before = readdirSync('/proc/self/fd').length;
  containerWarmUp();
  assert.is(readdirSync('/proc/self/fd').length, before);
  assert.match(readFileSync('/proc/self/status', 'utf8'), /Seccomp:\s+0/, 'no filter installed');
});

/** A launcher that starts nothing: it records the spec and answers with a process of `uid` whose exit the test decides. */
function fakeLauncher(uid: number): { launcher: Launcher; specs: LaunchSpec[]; exit: (x: LaunchExit) => void; kills: string[] } {
  const specs: LaunchSpec[] = [];
  const kills: string[] = [];
  let exit!: (x: LaunchExit) => void;
  const exited = new Promise<LaunchExit>((r) => (exit = r));
  const launcher: Launcher = {
    launch: (spec) => {
      specs.push(spec);
      const l: Launched = { pid: 4242, uid, gid: uid, cgroup: undefined, missing: [], kill: (s) => kills.push(s), exit: exited };
      return Promise.resolve(l);
    },
  };
  return { launcher, specs, exit: (x) => exit(x), kills };
}

test('a spare is launched as the process it will become, with only its socket on every slot, and the argument spare', async () => {
  const policy = simPolicy('spare-a');
  const f = fakeLauncher(61500);
  const s = new Spare(sys, f.launcher, containerSpec(policy));
  await until('launched', () => s.launched !== undefined, 5000);
  const spec = f.specs[0]!;
  const cold = containerSpec(policy);
  assert.equal(spec.argv, [cold.argv[0], EAGER_COMPILE, ...cold.argv.slice(1), SPARE_ARG]);
  assert.equal(spec.limits, cold.limits);
  assert.is(spec.sandbox, 'spare-a');
  assert.is(spec.role, 'driver');
  assert.is(spec.confined, cold.confined);
  assert.is(spec.fds.length, SPARE_SLOTS);
  assert.ok(spec.fds.every((fd) => fd === spec.fds[0]));
  assert.ok(s.usable);
  s.kill();
  assert.equal(f.kills, ['SIGKILL']);
  assert.not.ok(s.usable);
  f.exit({ code: null, signal: 'SIGKILL', oom: false });
});

test("a spare refuses to take over another sandbox's process, another role's, or as another identity (ERR_SANDBOX_SPARE); it goes to its own once", async () => {
  const f = fakeLauncher(61501);
  const s = new Spare(sys, f.launcher, containerSpec(simPolicy('spare-b')));
  await until('launched', () => s.launched !== undefined, 5000);
  const refused = (sandbox: string, role: 'driver' | 'device', uid: number): string | undefined => {
    try {
      s.take(sandbox, role, uid);
    } catch (e) {
      return (e as { code?: string }).code;
    }
    return undefined;
  };
  assert.is(refused('spare-other', 'driver', 61501), 'ERR_SANDBOX_SPARE');
  assert.is(refused('spare-b', 'device', 61501), 'ERR_SANDBOX_SPARE');
  assert.is(refused('spare-b', 'driver', 61502), 'ERR_SANDBOX_SPARE');
  assert.ok(s.usable, 'a refused take leaves the spare as it was');
  const taken = s.take('spare-b', 'driver', 61501);
  assert.is(taken.launched.pid, 4242);
  assert.is(refused('spare-b', 'driver', 61501), 'ERR_SANDBOX_SPARE');
  for (const fd of [taken.channel, taken.stdout, taken.stderr]) sys.close(fd);
  f.exit({ code: 0, signal: null, oom: false });
  await until('exited', () => s.exited, 5000);
});

test('a spare that exits before it is wanted is not usable, and its ends are closed', async () => {
  const f = fakeLauncher(61503);
  const s = new Spare(sys, f.launcher, containerSpec(simPolicy('spare-c')));
  await until('launched', () => s.launched !== undefined, 5000);
  f.exit({ code: 1, signal: null, oom: false });
  await until('exited', () => s.exited, 5000);
  assert.not.ok(s.usable);
  assert.throws(() => s.take('spare-c', 'driver', -1), /not running/);
});

/** What a process holds: its fds' targets and whether any memfd is mapped. */
function holdings(pid: number): { fds: string[]; memfdMapped: boolean } {
  const fds = readdirSync(`/proc/${pid}/fd`).flatMap((n) => {
    try {
      return [readlinkSync(`/proc/${pid}/fd/${n}`)];
    } catch {
      return [];
    }
  });
  return { fds, memfdMapped: readFileSync(`/proc/${pid}/maps`, 'utf8').includes('memfd:') };
}

test('a restart is taken over by a spare container and a spare device process, which held no window, register mailbox or device fd before; the data is the same after', async () => {
  const policy = simPolicy('spare-sup', '', '{ maxRestarts: 5, window: 60s, backoff: { initial: 1ms, max: 1ms } }');
  const s = new Supervisor(policy, { spares: true, launcher: directLauncher });
  try {
    await s.start();
    const data = pattern(4096, 5);
    await s.block.write(8, data);
    const spares = s as unknown as { spareDriver?: Spare; spareDevice?: Spare };
    await until('both spares launched', () => spares.spareDriver?.usable === true && spares.spareDevice?.usable === true, 20_000);
    const driver = spares.spareDriver!;
    assert.equal(s.status().spares, { container: driver.launched!.pid, deviceProcess: spares.spareDevice!.launched!.pid, takeovers: 0 });
    const device = spares.spareDevice!;
    const pid = driver.launched!.pid;
    const devicePid = device.launched!.pid;
    // Give each a moment to load its modules and block in the handover, then look at what it holds.
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(driver.prepared, 'the spare container was prepared (PREPARE)');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^Seccomp:\s+2$/m, 'the prepared spare container is confined by its seccomp filter before the takeover');
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    for (const p of [pid, devicePid]) {
      const h = holdings(p);
      assert.not.ok(h.memfdMapped, `spare ${p} maps no window`);
      assert.ok(!h.fds.some((t) => t.includes('memfd:')), `spare ${p} holds no memfd (window, mailbox, code, ring): ${h.fds.join(' ')}`);
      assert.ok(
        !h.fds.some((t) => t.startsWith('/dev/vfio') || t.startsWith('anon_inode:[vfio')),
        `spare ${p} holds no VFIO group or device fd: ${h.fds.join(' ')}`,
      );
    }
    if (process.getuid?.() === 0) assert.is(driver.launched!.uid, s.credentials.uid, "the spare runs as the sandbox's container identity");
    const old = s.pid!;
    s.kill('test');
    await until('serving again', () => s.state === 'running' && s.pid !== undefined && s.pid !== old, 20_000);
    assert.is(s.pid, pid, 'the spare container took over');
    assert.is(s.sim!.process!.pid, devicePid, 'the spare device process took over');
    assert.is(s.spareTakeovers, 1);
    assert.ok(holdings(pid).memfdMapped, 'after the handover the container maps its windows');
    assert.equal(await s.block.read(8, 8), data);
    await s.block.write(16, pattern(4096, 6));
    assert.equal(await s.block.read(16, 8), pattern(4096, 6));
  } finally {
    await s.stop();
  }
});

test('a prepared spare handed other code than it evaluated evaluates the code handed over, and serves', async () => {
  const policy = simPolicy('spare-code', '', '{ maxRestarts: 5, window: 60s, backoff: { initial: 1ms, max: 1ms } }');
  const s = new Supervisor(policy, { spares: true, launcher: directLauncher });
  const logs: string[] = [];
  s.on('event', (e: { text: string }) => logs.push(e.text));
  try {
    await s.start();
    const spares = s as unknown as { spareDriver?: Spare; code: Uint8Array };
    await until('the spare launched', () => spares.spareDriver?.usable === true, 20_000);
    const pid = spares.spareDriver!.launched!.pid;
    // The sandbox's code changes after the spare was prepared with the old: a comment more in one file.
    const image = decodeCode(spares.code);
    spares.code = encodeCode({ ...image, files: image.files.map((f, i) => (i === 0 ? { ...f, source: `${f.source}\n// changed\n` } : f)) });
    const old = s.pid!;
    s.kill('test');
    await until('serving again', () => s.state === 'running' && s.pid !== undefined && s.pid !== old, 20_000);
    assert.is(s.pid, pid, 'the spare took over');
    assert.ok(
      logs.some((l) => l.includes('not the code this spare evaluated: evaluating it now')),
      logs.join('\n'),
    );
    await s.block.write(0, pattern(4096, 7));
    assert.equal(await s.block.read(0, 8), pattern(4096, 7));
  } finally {
    await s.stop();
  }
});

test("spares of two sandboxes: sandbox A's spare is never taken for sandbox B, nor by B's identity", async () => {
  const a = new Supervisor(simPolicy('spare-x'), { spares: true });
  const b = new Supervisor(simPolicy('spare-y'), { spares: true });
  try {
    await Promise.all([a.start(), b.start()]);
    const spareOf = (s: Supervisor): Spare | undefined => (s as unknown as { spareDriver?: Spare }).spareDriver;
    await until('spares launched', () => spareOf(a)?.usable === true && spareOf(b)?.usable === true, 20_000);
    const sa = spareOf(a)!;
    assert.throws(() => sa.take('spare-y', 'driver', b.credentials.uid), /cannot take over sandbox spare-y/);
    if (process.getuid?.() === 0) {
      assert.is.not(a.credentials.uid, b.credentials.uid, 'each sandbox has its own identity');
      assert.throws(() => sa.take('spare-x', 'driver', b.credentials.uid), /runs as uid/);
    }
    assert.ok(sa.usable, 'refusals leave it waiting for its own sandbox');
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

const rootTest = testIf(needsRoot());
const here = fileURLToPath(import.meta.url);
const SPARE_MANAGER = fileURLToPath(new URL(`./fixtures/spare-manager${extname(here)}`, import.meta.url));

rootTest('as dmabox up runs: the manager has left root, the spawner launches the spares, and they take over restarts', async () => {
  const m = spawn(process.execPath, [...process.execArgv, SPARE_MANAGER, 'spare-spawner'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  m.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  m.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
  try {
    await until('the manager to finish', () => /^(done|error: .*)$/m.test(out), 60_000);
    assert.match(out, /^setup over: uid \d+$/m, out);
    for (const k of [1, 2]) {
      const t = new RegExp(`^takeover ${k}: pid (\\d+) spare (\\d+) takeovers (\\d+)$`, 'm').exec(out);
      assert.ok(t, out);
      assert.is(t[1], t[2], `restart ${k} was taken over by the spare: ${out}`);
      assert.is(t[3], String(k));
    }
    assert.match(out, /^data same$/m, out);
  } finally {
    m.kill('SIGKILL');
  }
});

test.run();
