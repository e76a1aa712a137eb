/**
 * The simulated device runs in its own process, not in the manager: the manager holds no model,
 * the device process's pid is in status and its fd table holds only what START lists; SIGKILL of
 * the device process under I/O fails over (fresh device process, fresh container, in-flight I/O
 * replayed, data intact); a device process that stops answering is killed at the heartbeat bound;
 * one that floods the manager, or speaks out of protocol, is killed; a bystander sandbox keeps
 * serving through each.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { deviceFixture, loopGapMeter, pattern, simPolicy } from './helpers.js';
import { launchHost } from '../../sandbox/spawner/host.js';
import { IDENTITY_RANGE } from '../../sandbox/spawner/identity.js';

const root = process.getuid?.() === 0;

function field(status: string, name: string): string {
  const line = status.split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no ${name} in /proc status`);
  return line.slice(name.length + 1).trim();
}

function fdTable(pid: number): Map<number, string> {
  const out = new Map<number, string>();
  for (const n of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.set(Number(n), readlinkSync(`/proc/${pid}/fd/${n}`));
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

/** A bystander doing I/O all along: every read must come back intact, and it must never restart. */
function bystander(name: string): { s: Supervisor; stop(): Promise<number> } {
  const s = new Supervisor(simPolicy(name));
  let running = true,
    done = 0;
  const loop = (async () => {
    await s.start();
    const d = pattern(4096, 77);
    await s.block.write(10, d);
    while (running) {
      assert.equal(await s.block.read(10, 8), d, 'the bystander reads its data back');
      done++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    s,
    async stop() {
      // It serves on after whatever happened to the other sandbox.
      const before = done;
      const end = Date.now() + 15_000;
      while (done < before + 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      running = false;
      await loop;
      assert.ok(done >= before + 3, `the bystander served ${done - before} reads afterwards`);
      assert.is(s.restarts, 0, 'the bystander never restarted');
      assert.is(s.state, 'running');
      await s.stop();
      return done;
    },
  };
}

test('the manager holds no model: the device process pid is in status, confined, and its fds are only those START lists', async () => {
  const s = new Supervisor(simPolicy('devproc-fds'));
  try {
    await s.start();
    assert.not.ok('machine' in s.sim!, 'no SimMachine in the manager');
    assert.not.ok('fn' in s.sim! || 'nvme' in s.sim! || 'nic' in s.sim!, 'no model in the manager');
    const st = s.status().deviceProcess as { pid: number; ready: boolean };
    assert.ok(Number.isInteger(st.pid) && st.pid !== process.pid && st.pid !== s.pid, `device process pid ${st.pid}`);
    assert.ok(st.ready);
    const status = readFileSync(`/proc/${st.pid}/status`, 'utf8');
    assert.is(field(status, 'Seccomp'), '2', 'the device process is under seccomp');
    assert.is(field(status, 'NoNewPrivs'), '1');
    if (root) {
      // Its own identity: the sandbox's `device` one, neither root nor the container's.
      const uid = Number(field(status, 'Uid').split(/\s+/)[0]);
      assert.is(uid, launchHost().identities.get('devproc-fds', 'device').uid, "the sandbox's device identity");
      assert.ok(uid >= IDENTITY_RANGE.first && uid <= IDENTITY_RANGE.last, `uid ${uid} in the documented range`);
      assert.is.not(String(uid), field(readFileSync(`/proc/${s.pid}/status`, 'utf8'), 'Uid').split(/\s+/)[0], "not the container's uid");
    }
    // PR_SET_DUMPABLE 0: the kernel gives its /proc files to root, so no process of its uid reads its memory.
    assert.is(statSync(`/proc/${st.pid}/mem`).uid, 0, 'not dumpable');
    // Every memfd it holds is one START names: the windows, the register mailbox, the namespace's store.
    const fds = fdTable(st.pid);
    const memfds = [...fds.values()].filter((l) => l.startsWith('/memfd:')).sort();
    const windows = new Set(s.device.grants.map((g) => g.window.memory.label));
    const expected = [
      `/memfd:dmabox:devproc-fds-registers (deleted)`,
      `/memfd:dmabox-devproc-fds:namespace (deleted)`,
      ...[...windows].map((l) => `/memfd:dmabox-devproc-fds:${l} (deleted)`),
    ].sort();
    assert.equal(memfds, expected);
    // No file, no device: nothing but its memfds, eventfds, its socket to the manager and Node's own pipes and epoll.
    const files = [...fds.entries()].filter(([, l]) => l.startsWith('/') && !l.startsWith('/memfd:') && l !== '/dev/null');
    assert.equal(files, [], `files open in the device process: ${JSON.stringify(files)}`);
    assert.ok(fds.get(3)!.startsWith('socket:'), 'fd 3 is the protocol socket');
    // And the container holds no model either: its memfds are the windows, the mailbox, the code and its ring.
    const cfds = [...fdTable(s.pid!).values()].filter((l) => l.includes(':namespace'));
    assert.equal(cfds, [], 'the namespace store is the device process’s alone');
  } finally {
    await s.stop();
  }
});

test('SIGKILL of the device process under I/O: the container goes too, both restart, the I/O completes, data intact; a bystander keeps serving', async () => {
  const b = bystander('devproc-bystander-kill');
  const s = new Supervisor(simPolicy('devproc-kill'));
  try {
    await s.start();
    await b.s.ready();
    const a = pattern(256 * 1024, 5);
    await s.block.write(0, a);
    const pid1 = (s.status().deviceProcess as { pid: number }).pid,
      container1 = s.pid!;
    const io: Promise<Uint8Array | void>[] = [];
    for (let i = 0; i < 64; i++) {
      io.push(s.block.read((i % 32) * 16, 16));
      io.push(s.block.write(4096 + i * 8, pattern(4096, 100 + i)));
      if (i === 8) process.kill(pid1, 'SIGKILL');
    }
    await Promise.all(io);
    assert.ok(s.restarts >= 1, `restarts ${s.restarts}`);
    assert.ok(
      s.events.some((e) => e.kind === 'device' && e.text.includes('SIGKILL')),
      s.events.map((e) => `${e.kind}: ${e.text}`).join('\n'),
    );
    assert.is.not(s.pid, container1, 'a fresh container');
    const pid2 = (s.status().deviceProcess as { pid: number }).pid;
    assert.ok(pid2 !== pid1, 'a fresh device process');
    assert.equal(await s.block.read(0, 512), a, 'the data written before survives (the store is the manager’s memfd)');
    for (let i = 0; i < 64; i += 7) assert.equal(await s.block.read(4096 + i * 8, 8), pattern(4096, 100 + i), `write ${i} landed`);
  } finally {
    await s.stop();
    assert.ok((await b.stop()) > 0);
  }
});

test('a device process that stops answering is killed at the heartbeat bound; the manager stays responsive; a bystander keeps serving', async () => {
  const b = bystander('devproc-bystander-hang');
  const s = new Supervisor(simPolicy('devproc-hang', '', '{ maxRestarts: 0, window: 60s }'), { ...deviceFixture('hang'), deviceHeartbeatMs: 100 });
  const gap = loopGapMeter();
  try {
    const failed = new Promise((r) => s.once('failed', r));
    s.start().catch(() => undefined); // the device may hang before the driver is READY
    await failed;
    const ev = s.events.find((e) => e.kind === 'device' && e.text.includes('failed'))!;
    assert.ok(ev && ev.text.includes('no heartbeat for 400 ms'), s.events.map((e) => `${e.kind}: ${e.text}`).join('\n'));
    await s.sim!.settled();
    assert.ok(s.device.quarantineLog.includes('killed'), 'a hung device process is reset by killing it');
    assert.ok(gap.maxGap < 1000, `the manager's loop never stalled (${Math.round(gap.maxGap)} ms)`);
  } finally {
    gap.stop();
    await s.stop();
    assert.ok((await b.stop()) > 0);
  }
});

for (const [mode, expect] of [
  ['flood', 'flood: more than 1000 frames in a second'],
  ['garbage', 'device protocol: magic 0x41'],
  ['exit', 'the device process exited with 1'],
] as const) {
  test(`a device process that ${mode === 'flood' ? 'floods the manager' : mode === 'garbage' ? 'speaks out of protocol' : 'dies'} is killed and fails its sandbox's device; a bystander keeps serving`, async () => {
    const b = bystander(`devproc-bystander-${mode}`);
    const s = new Supervisor(simPolicy(`devproc-${mode}`, '', '{ maxRestarts: 0, window: 60s }'), deviceFixture(mode));
    try {
      const failed = new Promise((r) => s.once('failed', r));
      s.start().catch(() => undefined); // it may misbehave before the driver is READY
      await failed;
      const texts = s.events.map((e) => `${e.kind}: ${e.text}`);
      assert.ok(
        texts.some((t) => t.startsWith('device: ') && t.includes(expect)),
        texts.join('\n'),
      );
      assert.ok(
        texts.some((t) => t.startsWith('stop: killing container') && t.includes('its device failed')),
        `the driver container went with its device:\n${texts.join('\n')}`,
      );
      assert.is(s.state, 'failed');
    } finally {
      await s.stop();
      assert.ok((await b.stop()) > 0);
    }
  });
}

test.run();
