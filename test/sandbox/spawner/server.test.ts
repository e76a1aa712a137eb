/**
 * The spawner refuses what a compromised manager could ask of it (sandbox/spawner/server.ts): a
 * fake manager on the other end of a real SOCK_SEQPACKET socketpair, the launch library replaced by
 * a recorder. Every refusal is answered with ERROR and launches nothing.
 */
import { existsSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AF_UNIX, EFD_CLOEXEC, MFD_CLOEXEC, O_CLOEXEC, SOCK_CLOEXEC, SOCK_SEQPACKET, SOCK_STREAM, defaultSys } from 'linux-sys';
import { encodeFrame, HDR, MAX_FRAME, MAX_LAUNCH_FDS, openChannel, SpType, type Frame, type SpawnerChannel } from '../../../sandbox/abi/spawner.js';
import { SpawnerServer } from '../../../sandbox/spawner/server.js';
import type { Launched, LaunchSpec } from '../../../sandbox/spawner/launch.js';
import { until } from '../helpers.js';

const sys = defaultSys();
const NODE = process.execPath;
const ENTRY = '/opt/dmabox/dist/sandbox/container/main.js';
const ENV = { PATH: '/usr/bin:/bin', NODE_OPTIONS: '' };
const GOOD = {
  sandbox: 'victim',
  role: 'driver',
  argv: [NODE, '--experimental-vm-modules', '--max-old-space-size=64', ENTRY],
  env: ENV,
  limits: { memoryBytes: 2 ** 28, pids: 64, cpuWeight: 100 },
  confined: true,
};

interface Fake extends Launched {
  signals: NodeJS.Signals[];
  end(code: number | null, signal: NodeJS.Signals | null): void;
}

function harness(identity = { uid: 65534, gid: 65534 }) {
  const [managerEnd, spawnerEnd] = sys.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  const launched: LaunchSpec[] = [];
  const children: Fake[] = [];
  let gone: string | undefined;
  let nextPid = 1000;
  const server = new SpawnerServer({
    sys,
    fd: spawnerEnd,
    node: NODE,
    nodeFlags: ['--experimental-vm-modules'],
    entries: [ENTRY],
    env: ENV,
    forbiddenIds: [0, 61183],
    launch: (spec) => {
      launched.push({ ...spec, fds: [...spec.fds] });
      let end!: (x: { code: number | null; signal: NodeJS.Signals | null; oom: boolean }) => void;
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; oom: boolean }>((r) => (end = r));
      const c: Fake = {
        pid: nextPid++,
        ...identity,
        cgroup: undefined,
        missing: [],
        signals: [],
        kill: (sig) => c.signals.push(sig),
        exit,
        end: (code, signal) => end({ code, signal, oom: false }),
      };
      children.push(c);
      return Promise.resolve(c);
    },
    gone: (reason) => {
      gone = reason;
    },
  });
  const frames: Frame[] = [];
  const channel: SpawnerChannel = openChannel(sys, managerEnd, {
    frame: (f, fds) => {
      for (const n of fds) sys.close(n);
      frames.push(f);
    },
    malformed: (e) => assert.unreachable(e.message),
    gone: () => undefined,
  });
  let id = 1;
  /** Send a request and wait for the frame answering it. */
  const ask = async (type: SpType, body: unknown, fds: number[] = []): Promise<Frame> => {
    const n = id++;
    channel.send(type, n, body, fds);
    await until(`an answer to request ${n}`, () => frames.some((f) => f.id === n), 5000);
    return frames.find((f) => f.id === n)!;
  };
  /** Send raw bytes and wait for an ERROR about no request (id 0). */
  const raw = async (bytes: Uint8Array, fds: number[] = []): Promise<Frame> => {
    const before = frames.filter((f) => f.type === SpType.ERROR && f.id === 0).length;
    sys.sendFds(managerEnd, bytes, fds, 0);
    await until('an ERROR for a frame', () => frames.filter((f) => f.type === SpType.ERROR && f.id === 0).length > before, 5000);
    return frames.filter((f) => f.type === SpType.ERROR && f.id === 0).at(-1)!;
  };
  return { server, channel, ask, raw, launched, children, frames, gone: () => gone };
}

/** The fds of a good LAUNCH: stdout and stderr pipes, then a unix socket, a memfd and an eventfd. */
function goodFds(): { fds: number[]; close(): void } {
  const [r1, w1] = sys.pipe2(O_CLOEXEC);
  const [r2, w2] = sys.pipe2(O_CLOEXEC);
  const [s1, s2] = sys.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const mem = sys.memfdCreate('test', MFD_CLOEXEC);
  const efd = sys.eventfd(0, EFD_CLOEXEC);
  const all = [r1, w1, r2, w2, s1, s2, mem, efd];
  return { fds: [w1, w2, s2, mem, efd], close: () => all.forEach((n) => sys.close(n)) };
}

const errorOf = (f: Frame): string =>
  f.type === SpType.ERROR ? `${(f.body as { code: string }).code}: ${(f.body as { message: string }).message}` : `type ${f.type}`;

test('a good LAUNCH: the spec reaches the launch library with its fds; the answer has pid, uid, gid; KILL only while it runs; EXIT reported', async () => {
  const h = harness();
  const f = goodFds();
  try {
    const r = await h.ask(SpType.LAUNCH, GOOD, f.fds);
    assert.is(r.type, SpType.LAUNCHED, errorOf(r));
    assert.equal(r.body, { pid: 1000, uid: 65534, gid: 65534, cgroup: null, missing: [] });
    assert.is(h.launched.length, 1);
    assert.equal(h.launched[0]!.argv, GOOD.argv);
    assert.is(h.launched[0]!.fds.length, 3, 'stdout and stderr apart, then the child fds');
    const ok = await h.ask(SpType.KILL, { pid: 1000, signal: 'SIGKILL' });
    assert.is(ok.type, SpType.OK);
    assert.equal(h.children[0]!.signals, ['SIGKILL']);
    h.children[0]!.end(null, 'SIGKILL');
    await until('the EXIT', () => h.frames.some((x) => x.type === SpType.EXIT), 5000);
    assert.equal(h.frames.find((x) => x.type === SpType.EXIT)!.body, { pid: 1000, code: null, signal: 'SIGKILL', oom: false });
    const late = await h.ask(SpType.KILL, { pid: 1000, signal: 'SIGKILL' });
    assert.match(errorOf(late), /ERR_SPAWNER_REFUSED: pid 1000 is not a process this spawner launched/);
  } finally {
    f.close();
    h.channel.close();
  }
});

test('refused: another program, another entry, a node flag, arguments, environment, a uid in the request', async () => {
  const h = harness();
  const f = goodFds();
  const cases: [unknown, RegExp][] = [
    [{ ...GOOD, argv: ['/bin/sh', '-c', 'id'] }, /program "\/bin\/sh": only/],
    [{ ...GOOD, argv: [NODE, '/tmp/evil.js'] }, /entry "\/tmp\/evil.js" is not a dmabox container or device entry/],
    [{ ...GOOD, argv: [NODE, '--require=/tmp/evil.js', ENTRY] }, /node flag "--require=\/tmp\/evil.js"/],
    [{ ...GOOD, argv: [NODE, '-e', 'x', ENTRY] }, /node flag "-e"/],
    [{ ...GOOD, argv: [...GOOD.argv, '$(reboot)'] }, /short arguments/],
    [{ ...GOOD, env: { ...ENV, LD_PRELOAD: '/tmp/evil.so' } }, /environment variable "LD_PRELOAD" is not allowed/],
    [{ ...GOOD, env: { ...ENV, NODE_OPTIONS: '--require /tmp/evil.js' } }, /NODE_OPTIONS may only have the spawner's own value/],
    [{ ...GOOD, uid: 0 }, /ERR_SPAWNER_FRAME: LAUNCH: unexpected field "uid"/],
    [{ ...GOOD, sandbox: '../etc' }, /sandbox: expected a policy name/],
    [{ ...GOOD, role: 'root' }, /role: expected/],
  ];
  try {
    for (const [body, why] of cases) {
      const r = await h.ask(SpType.LAUNCH, body, f.fds);
      assert.match(errorOf(r), why);
    }
    assert.is(h.launched.length, 0, 'nothing was launched');
  } finally {
    f.close();
    h.channel.close();
  }
});

test('refused: fds of kinds the ABI never passes, too few, too many', async () => {
  const h = harness();
  const f = goodFds();
  const file = openSync('/proc/self/status', 'r');
  const devNull = openSync('/dev/null', 'r+');
  const [, w] = f.fds;
  try {
    for (const bad of [file, devNull]) {
      const r = await h.ask(SpType.LAUNCH, GOOD, [...f.fds, bad]);
      assert.match(errorOf(r), /fd 5 of the LAUNCH is not a memfd, eventfd, unix socket, pipe or VFIO device/);
    }
    assert.match(errorOf(await h.ask(SpType.LAUNCH, GOOD, [w!])), /carries stdout, stderr and at most/);
    const many = Array.from({ length: MAX_LAUNCH_FDS + 1 }, () => sys.eventfd(0, EFD_CLOEXEC));
    try {
      const r = await h.raw(encodeFrame(SpType.LAUNCH, 77, GOOD), many);
      assert.match(errorOf(r), new RegExp(`more than ${MAX_LAUNCH_FDS} fds`));
    } finally {
      many.forEach((n) => sys.close(n));
    }
    assert.is(h.launched.length, 0);
  } finally {
    sys.close(file);
    sys.close(devNull);
    f.close();
    h.channel.close();
  }
});

test('refused: malformed and oversized frames, frames only the spawner sends, a KILL at a pid it did not launch or with another signal', async () => {
  const h = harness();
  try {
    const good = encodeFrame(SpType.KILL, 5, { pid: 1, signal: 'SIGKILL' });
    const tweak = (off: number, v: number, size: 2 | 4): Uint8Array => {
      const b = good.slice();
      const dv = new DataView(b.buffer);
      if (size === 2) dv.setUint16(off, v, true);
      else dv.setUint32(off, v, true);
      return b;
    };
    assert.match(errorOf(await h.raw(tweak(HDR.magic, 0x1234, 4))), /without the spawner magic/);
    assert.match(errorOf(await h.raw(tweak(HDR.version, 2, 2))), /protocol version 2/);
    assert.match(errorOf(await h.raw(tweak(HDR.type, 99, 2))), /unknown type 99/);
    assert.match(errorOf(await h.raw(tweak(HDR.length, 3, 4))), /header says 3 body bytes/);
    assert.match(errorOf(await h.raw(good.subarray(0, 10))), /shorter than its 16-byte header/);
    assert.match(errorOf(await h.raw(new Uint8Array(MAX_FRAME + 100).fill(1))), /more than \d+ bytes/);
    const notJson = encodeFrame(SpType.KILL, 5, {});
    notJson[notJson.length - 1] = 0x7b;
    assert.match(errorOf(await h.raw(notJson)), /not JSON/);
    assert.match(errorOf(await h.ask(SpType.LAUNCHED, { pid: 1, uid: 1, gid: 1, cgroup: null })), /only the spawner sends/);
    assert.match(errorOf(await h.ask(SpType.KILL, { pid: 1, signal: 'SIGKILL' })), /pid 1 is not a process this spawner launched/);
    assert.match(errorOf(await h.ask(SpType.KILL, { pid: process.pid, signal: 'SIGKILL' })), /is not a process this spawner launched/);
    assert.match(errorOf(await h.ask(SpType.KILL, { pid: 1000, signal: 'SIGSTOP' })), /signal: expected one of SIGKILL, SIGTERM, SIGINT/);
  } finally {
    h.channel.close();
  }
});

test('a launch that comes back as root or as the manager is killed and refused', async () => {
  for (const identity of [
    { uid: 0, gid: 65534 },
    { uid: 61183, gid: 61183 },
  ]) {
    const h = harness(identity);
    const f = goodFds();
    try {
      const r = await h.ask(SpType.LAUNCH, GOOD, f.fds);
      assert.match(errorOf(r), /root's or the manager's: killed/);
      assert.equal(h.children[0]!.signals, ['SIGKILL']);
      assert.is(h.server.running.size, 0);
    } finally {
      f.close();
      h.channel.close();
    }
  }
});

test('sockets to remove at exit: only sockets, only before SEAL', async () => {
  const h = harness();
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-spawner-'));
  const sock = join(dir, 'c.sock');
  const server = createServer();
  await new Promise<void>((r) => server.listen(sock, r));
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'x');
  try {
    assert.is((await h.ask(SpType.REMOVE_AT_EXIT, { path: sock })).type, SpType.OK);
    assert.match(errorOf(await h.ask(SpType.REMOVE_AT_EXIT, { path: file })), /is not a socket/);
    assert.match(errorOf(await h.ask(SpType.REMOVE_AT_EXIT, { path: 'relative.sock' })), /absolute path/);
    assert.is((await h.ask(SpType.SEAL, {})).type, SpType.OK);
    assert.match(errorOf(await h.ask(SpType.REMOVE_AT_EXIT, { path: sock })), /after SEAL: the manager has left root/);
    assert.equal(h.server.removeAtExit, [sock]);
    h.server.removeSockets();
    assert.not.ok(existsSync(sock), 'the socket named before SEAL is removed');
    assert.ok(existsSync(file));
  } finally {
    server.close();
    h.channel.close();
  }
});

test('the manager end closes: every launched process is sent SIGKILL and gone() runs', async () => {
  const h = harness();
  const f = goodFds();
  try {
    assert.is((await h.ask(SpType.LAUNCH, GOOD, f.fds)).type, SpType.LAUNCHED);
    assert.is((await h.ask(SpType.LAUNCH, GOOD, f.fds)).type, SpType.LAUNCHED);
    h.channel.close();
    await until('the spawner to notice', () => h.gone() !== undefined, 5000);
    assert.equal(
      h.children.map((c) => c.signals),
      [['SIGKILL'], ['SIGKILL']],
    );
  } finally {
    f.close();
  }
});

test.run();
