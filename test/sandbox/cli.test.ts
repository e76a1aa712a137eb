/**
 * `dmabox up` and `dmabox status` on the simulator: up logs events, status answers over the control
 * socket (text and JSON), SIGTERM stops everything in order, every line of an unconfined sandbox
 * says UNCONFINED, a missing manager is a clear error.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as up } from '../../cli/up.js';
import { formatStatus, run as status } from '../../cli/status.js';
import { until } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'dmabox-cli-'));

function capture() {
  const c = { out: '', err: '' };
  return {
    c,
    io: {
      out: (s: string) => {
        c.out += s;
      },
      err: (s: string) => {
        c.err += s;
      },
    },
  };
}

const POLICY = `version: 1
name: cli-a
device: { sim: nvme, capacity: 1MiB, blockSize: 512 }
driver: { name: nvme, queues: 1, depth: 16 }
windows: [ { size: 512KiB }, { size: 2MiB } ]
---
version: 1
name: cli-b
unconfined: true
container: { seccomp: none }
device: { sim: nvme, capacity: 1MiB, blockSize: 4096 }
driver: { name: nvme, queues: 1, depth: 16 }
windows: [ { size: 512KiB }, { size: 2MiB } ]
`;

test('up, status (text and --json), SIGTERM stops in order', async () => {
  const file = join(dir, 'p.yaml');
  writeFileSync(file, POLICY);
  const sock = join(dir, 'control.sock');
  const signals = new EventEmitter();
  const u = capture();
  const done = up([file, '--control', sock], u.io, signals);
  try {
    await until('both sandboxes up', () => u.c.out.includes('up: cli-a running, cli-b UNCONFINED running'), 30_000);
    assert.match(u.c.err, /WARNING .*UNCONFINED/);
    const s = capture();
    assert.is(await status(['--control', sock], s.io), 0);
    const lines = s.c.out.trim().split('\n');
    assert.match(lines[0]!, /^manager pid \d+/);
    assert.ok(
      lines.some((l) => /^cli-a: running, sim:nvme@0000:00:01\.0 driver nvme \(block\), pid \d+ uid \d+/.test(l)),
      s.c.out,
    );
    const bLines = lines.filter((l) => /^\s*cli-b[ :]/.test(l));
    assert.ok(bLines.length >= 3);
    for (const l of bLines) assert.ok(l.includes('cli-b UNCONFINED'), `every line of cli-b says UNCONFINED: ${l}`);
    assert.not.ok(lines.filter((l) => /^\s*cli-a[ :]/.test(l)).some((l) => l.includes('UNCONFINED')));
    // A client that sends garbage or too much is cut off; the manager goes on answering.
    const { createConnection } = await import('node:net');
    const rude = await new Promise<string>((resolve) => {
      const c = createConnection(sock, () => c.write('x'.repeat(100)));
      let got = '';
      c.on('data', (d) => {
        got += String(d);
      });
      c.on('close', () => resolve(got));
      c.on('error', () => resolve(got));
    });
    assert.is(rude, '', 'an over-long line is closed without an answer');
    const odd = await new Promise<string>((resolve) => {
      const c = createConnection(sock, () => c.write('reboot\n'));
      let got = '';
      c.on('data', (d) => {
        got += String(d);
      });
      c.on('close', () => resolve(got));
    });
    assert.match(odd, /unknown command 'reboot'/);
    const j = capture();
    await status(['--json', '--control', sock], j.io);
    const st = JSON.parse(j.c.out) as { sandboxes: { name: string; state: string; windows: unknown[]; unconfined: boolean }[] };
    assert.equal(
      st.sandboxes.map((x) => [x.name, x.state, x.windows.length, x.unconfined]),
      [
        ['cli-a', 'running', 4, false],
        ['cli-b', 'running', 4, true],
      ],
    );
    assert.ok(
      u.c.out
        .split('\n')
        .filter((l) => l.includes(' cli-b '))
        .every((l) => l.includes('cli-b UNCONFINED')),
      'event lines of cli-b say UNCONFINED',
    );
    signals.emit('SIGTERM', 'SIGTERM');
    assert.is(await done, 0);
    assert.match(u.c.out, /cli-a quarantine: bus mastering off/);
    assert.match(u.c.out, /stopped: containers gone, devices quarantined, windows unmapped\n$/);
  } catch (e) {
    // A failed check must not leave the manager and its containers running.
    signals.emit('SIGTERM', 'SIGTERM');
    await done.catch(() => undefined);
    throw e;
  }
  assert.not.ok(existsSync(sock), 'the control socket is removed');
});

test('up starts the linkback a policy names (NBD here) and closes it before the sandboxes; a second manager on the same control socket is refused', async () => {
  const file = join(dir, 'nbd.yaml');
  const nbdSock = join(dir, 'nbd', 'disk.sock');
  writeFileSync(
    file,
    `version: 1
name: cli-nbd
device: { sim: nvme, capacity: 1MiB, blockSize: 512 }
driver: { name: nvme, queues: 1, depth: 16 }
windows: [ { size: 512KiB }, { size: 2MiB } ]
linkback: { nbd: { socket: ${nbdSock}, export: disk } }
`,
  );
  const sock = join(dir, 'control-nbd.sock');
  const signals = new EventEmitter();
  const u = capture();
  const done = up([file, '--control', sock], u.io, signals);
  await until('the NBD linkback', () => u.c.out.includes('cli-nbd: nbd linkback at'), 30_000);
  // Asynchronously: the NBD server answers from this very event loop.
  const { execFile } = await import('node:child_process');
  const info = await new Promise<string>((resolve, reject) => {
    execFile('nbdinfo', ['--size', `nbd+unix:///disk?socket=${nbdSock}`], { encoding: 'utf8', timeout: 20_000 }, (e, out) => (e ? reject(e) : resolve(out)));
  });
  assert.is(info.trim(), String(1024 * 1024));
  // A second manager must not take (or delete) the live control socket.
  const second = capture();
  try {
    await up([file, '--control', sock], second.io, new EventEmitter());
    assert.unreachable('a second manager started on a live control socket');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_SANDBOX_CONTROL');
    assert.match((e as Error).message, /another server is listening there/);
  }
  assert.ok(existsSync(sock), "the first manager's socket is still there");
  signals.emit('SIGINT', 'SIGINT');
  assert.is(await done, 0);
  assert.match(u.c.out, /SIGINT: stopping 1 linkback\(s\), then 1 sandbox\(es\)/);
  assert.not.ok(existsSync(nbdSock), 'the NBD socket is removed');
  assert.not.ok(existsSync(sock), 'the control socket is removed');
});

test('status without a manager: a clear error with the fix', async () => {
  try {
    await status(['--control', join(dir, 'nobody.sock')], capture().io);
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_SANDBOX_CONTROL');
    assert.match((e as Error).message, /dmabox up POLICY/);
  }
});

test('up with a bad policy starts nothing and says where', async () => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, POLICY.replace('capacity: 1MiB, blockSize: 512', 'capacity: lots, blockSize: 512'));
  const u = capture();
  assert.is(await up([file, '--control', join(dir, 'x.sock')], u.io, new EventEmitter()), 1);
  assert.match(u.c.err, /bad\.yaml:3: device\.capacity/);
  assert.match(u.c.err, /nothing was started/);
});

test('formatStatus marks the invoking user when not root', () => {
  const text = formatStatus({
    manager: { pid: 1, uid: 1000, root: false, uptimeMs: 61_000, control: '/tmp/c.sock' },
    sandboxes: [
      {
        name: 'x',
        state: 'running',
        device: 'sim:nvme@0000:00:01.0',
        driver: 'nvme',
        pid: 2,
        uid: 1000,
        gid: 1000,
        uidFromPolicy: false,
        unconfined: false,
        uptimeMs: 5000,
        restarts: 1,
        crashes: 1,
        violations: 0,
        faults: 0,
        lastFault: null,
        windows: [],
        io: { completed: 1, errors: 0, bytes: 512, pending: 0, replayed: 0 },
        spares: { container: 7, deviceProcess: null, takeovers: 3 },
      },
    ],
  });
  assert.match(text, /not root: containers run as this user/);
  assert.match(text, /uid 1000 gid 1000 \(invoking user\)/);
  assert.match(text, /x spares: container pid 7, device process pid -, 3 restart\(s\) taken over/);
});

test('formatStatus shows every thread of the manager and the spawner, and whether the manager left root', () => {
  const base = { pid: 1, uid: 61183, gid: 61183, root: false, dropped: true, uptimeMs: 1000, control: '/run/dmabox/control.sock' };
  const zero = '0000000000000000';
  const thread = (tid: number, uid: number, caps: string) => ({
    tid,
    name: 'node',
    uid,
    inh: zero,
    prm: caps,
    eff: caps,
    bnd: caps,
    amb: zero,
    noNewPrivs: true,
  });
  const text = formatStatus({
    manager: { ...base, caps: { threads: [thread(1, 61183, zero), thread(2, 61183, zero)] } },
    spawner: { pid: 9, caps: { threads: [thread(9, 0, '00000000000000e0')] } },
    sandboxes: [],
  });
  assert.match(text, /^manager pid 1 uid 61183 gid 61183 \(left root after set-up\), up/);
  assert.match(text, /^ {2}manager threads 2: no capability on any thread, no_new_privs on 2$/m);
  assert.match(text, /^ {4}manager tid 2 node uid 61183 CapInh 0{16} CapPrm 0{16} CapEff 0{16} CapBnd 0{16} CapAmb 0{16} no_new_privs$/m);
  assert.match(text, /^spawner pid 9$/m);
  assert.match(text, /^ {2}spawner threads 1: 1 hold CAP_KILL,CAP_SETGID,CAP_SETUID, no_new_privs on 1$/m);
  assert.match(text, /^ {4}spawner tid 9 node uid 0 CapInh 0{16} CapPrm 0{14}e0 CapEff 0{14}e0/m);
  const kept = formatStatus({ manager: { ...base, uid: 0, root: true, dropped: false }, sandboxes: [] });
  assert.match(kept, /ROOT: --keep-privileges/);
});

test('the manager killed with SIGKILL: its containers notice (hypercall channel closed) and exit by themselves', async () => {
  const file = join(dir, 'orphan.yaml');
  writeFileSync(file, POLICY.split('---')[0]!.replace('name: cli-a', 'name: orphan'));
  const { spawn } = await import('node:child_process');
  const cliMain = fileURLToPath(new URL(`../../cli/main${extname(fileURLToPath(import.meta.url))}`, import.meta.url));
  const m = spawn(process.execPath, [...process.execArgv, cliMain, 'up', file, '--control', join(dir, 'orphan.sock')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  m.stdout!.on('data', (d) => {
    out += String(d);
  });
  await until('the sandbox up', () => out.includes('up: orphan running'), 30_000);
  const pid = Number(/container pid (\d+)/.exec(out)![1]);
  assert.ok(existsSync(`/proc/${pid}`));
  m.kill('SIGKILL');
  await until(
    'the orphaned container to exit',
    () => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z'),
    10_000,
  );
});

test.run();
