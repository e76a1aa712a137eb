/**
 * The manager leaves root after set-up (sandbox/manager/privilege.ts). Over the fake seam: the order
 * (no_new_privs, ambient, bounding and inheritable sets emptied while CAP_SETPCAP is held, the
 * allow-all filter with TSYNC, then setgroups, setgid, setuid) and the refusals. As root, in a
 * child process (the drop cannot be undone): every thread has the manager's uid, no capability and
 * no_new_privs; root's files are out of reach but an fd opened before still writes. And `dmabox up`
 * with the default drop: the manager's every thread at uid MANAGER_ID with no capability, the
 * spawner with exactly CAP_SETUID, CAP_SETGID, CAP_KILL, kill -9 and a restart through the spawner,
 * status showing both processes' threads, an orderly stop; and a manager killed with SIGKILL takes
 * the spawner and its containers with it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PR_CAP_AMBIENT, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, SECCOMP_FILTER_FLAG_TSYNC } from 'linux-sys';
import {
  accountsWithId,
  capMask,
  capNames,
  CAP_KILL,
  CAP_SETGID,
  CAP_SETUID,
  dropRoot,
  MANAGER_ID,
  managerIdentity,
  parseStatusCaps,
  PrivilegeError,
  type TaskCaps,
} from '../../sandbox/manager/privilege.js';
import { FakeSys } from '../sys/fake-sys.js';
import { until } from './helpers.js';
import { needsRoot, testIf } from '../helpers/skip.js';

const SPAWNER_KEPT = capMask([CAP_SETUID, CAP_SETGID, CAP_KILL]);
const rootTest = testIf(needsRoot());
const dir = mkdtempSync(join(tmpdir(), 'dmabox-priv-'));
const fromSource = import.meta.url.endsWith('.ts');
const cliMain = new URL(`../../cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url).pathname;
const privilegeModule = new URL(`../../sandbox/manager/privilege.${fromSource ? 'ts' : 'js'}`, import.meta.url).pathname;

function fakeProc(sys: FakeSys, calls: string[]) {
  return {
    setgroups: (g: number[]) => calls.push(`setgroups ${g.length}`),
    setgid: (g: number) => calls.push(`setgid ${g}`),
    setuid: (u: number) => {
      calls.push(`setuid ${u}`);
      sys.caps = { effective: 0n, permitted: 0n, inheritable: 0n }; // what the kernel does when every uid leaves 0
    },
  };
}

test('fake seam: no_new_privs, ambient, bounding and inheritable emptied, no_new_privs to every thread, then setgroups, setgid, setuid', () => {
  const sys = new FakeSys();
  const calls: string[] = [];
  const r = dropRoot({ uid: MANAGER_ID, gid: MANAGER_ID, sys, proc: fakeProc(sys, calls), lastCap: 40 });
  assert.equal(r, { uid: MANAGER_ID, gid: MANAGER_ID, threads: 0, threadsWithBounding: 0 });
  assert.equal(sys.prctls[0], [PR_SET_NO_NEW_PRIVS, 1]);
  assert.is(sys.prctls[1]![0], PR_CAP_AMBIENT);
  assert.is(sys.prctls.filter(([o]) => o === PR_CAPBSET_DROP).length, 41, 'every capability leaves the bounding set');
  assert.is(sys.bounding, 0n);
  assert.is(sys.seccomps.length, 1);
  assert.is(sys.seccomps[0]!.flags, SECCOMP_FILTER_FLAG_TSYNC, 'TSYNC: no_new_privs reaches every thread');
  assert.equal([...sys.seccomps[0]!.program], [0x06, 0, 0, 0, 0, 0, 0xff, 0x7f], 'one instruction: allow');
  assert.equal(calls, [`setgroups 0`, `setgid ${MANAGER_ID}`, `setuid ${MANAGER_ID}`]);
  assert.equal(sys.caps, { effective: 0n, permitted: 0n, inheritable: 0n });
});

test('fake seam: refused without CAP_SETPCAP, for uid 0, and when capabilities survive setuid', () => {
  const noSetpcap = new FakeSys();
  noSetpcap.caps = { effective: SPAWNER_KEPT, permitted: SPAWNER_KEPT, inheritable: 0n };
  const calls: string[] = [];
  assert.throws(
    () => dropRoot({ uid: MANAGER_ID, gid: MANAGER_ID, sys: noSetpcap, proc: fakeProc(noSetpcap, calls), lastCap: 40 }),
    (e: unknown) => e instanceof PrivilegeError && /CAP_SETPCAP and CAP_SETUID.*\n {2}fix: .*--keep-privileges/s.test((e as Error).message),
  );
  assert.is(noSetpcap.prctls.length + calls.length, 0, 'nothing was changed');
  assert.throws(() => dropRoot({ uid: 0, gid: MANAGER_ID, sys: new FakeSys(), proc: fakeProc(new FakeSys(), []), lastCap: 40 }), /must not be root/);
  const stubborn = new FakeSys();
  assert.throws(
    () =>
      dropRoot({
        uid: MANAGER_ID,
        gid: MANAGER_ID,
        sys: stubborn,
        proc: { setgroups: () => undefined, setgid: () => undefined, setuid: () => undefined },
        lastCap: 40,
      }),
    /after setuid the calling thread still holds/,
  );
});

test('managerIdentity: MANAGER_ID unless another account holds it', () => {
  const etc = mkdtempSync(join(dir, 'etc-'));
  writeFileSync(join(etc, 'passwd'), 'root:x:0:0::/root:/bin/sh\ndmabox-manager:x:61183:61183::/:/usr/sbin/nologin\n');
  writeFileSync(join(etc, 'group'), 'root:x:0:\n');
  assert.equal(managerIdentity(etc), { uid: MANAGER_ID, gid: MANAGER_ID });
  writeFileSync(join(etc, 'group'), 'root:x:0:\nsomeone:x:61183:\n');
  assert.throws(() => managerIdentity(etc), /group gives 61183.*to someone/);
  assert.equal(accountsWithId('a:x:1:1\nb:x:61183:0\n', 61183), ['b']);
});

test('parseStatusCaps reads /proc status lines; capNames names a mask', () => {
  const c = parseStatusCaps(
    'Name:\tnode\nNoNewPrivs:\t1\nCapInh:\t0000000000000000\nCapPrm:\t00000000000000e0\nCapEff:\t00000000000000e0\nCapBnd:\t00000000000000e0\nCapAmb:\t0000000000000000\n',
  );
  assert.equal(c, { inheritable: 0n, permitted: 0xe0n, effective: 0xe0n, bounding: 0xe0n, ambient: 0n, noNewPrivs: true });
  assert.equal(capNames(0xe0n), ['CAP_KILL', 'CAP_SETGID', 'CAP_SETUID']);
  assert.throws(() => parseStatusCaps('Name:\tnode\n'), /no CapInh line/);
});

// The child: leaves root, then reports every thread and what it could and could not do, as JSON.
const CHILD = `
import { openSync, readFileSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dropRoot, MANAGER_ID } from ${JSON.stringify(privilegeModule)};
const [theirs, ours] = process.argv.slice(2);
const kept = openSync(ours, 'w');
const report = dropRoot({ uid: MANAGER_ID, gid: MANAGER_ID });
const out = { report, threads: readdirSync('/proc/self/task').map((t) => readFileSync('/proc/self/task/' + t + '/status', 'utf8')) };
try { readFileSync(theirs); out.readTheirs = 'ok'; } catch (e) { out.readTheirs = e.code; }
try { writeFileSync(ours, 'x'); out.writeOurs = 'ok'; } catch (e) { out.writeOurs = e.code; }
try { writeSync(kept, 'y'); out.writeKept = 'ok'; } catch (e) { out.writeKept = e.code; }
out.exec = spawnSync('cat', ['/proc/self/status'], { encoding: 'utf8' }).stdout;
console.log(JSON.stringify(out));
`;

rootTest('as root, in a child: every thread at the manager uid, no capability, no_new_privs; root files out of reach, an fd opened before still writes', () => {
  const theirs = join(dir, 'theirs');
  writeFileSync(theirs, 'secret');
  chmodSync(theirs, 0o600);
  const ours = join(dir, 'ours');
  writeFileSync(ours, '');
  chmodSync(ours, 0o200);
  const script = join(dir, 'child.mjs');
  writeFileSync(script, CHILD);
  const r = spawnSync(process.execPath, [...process.execArgv, script, theirs, ours], { encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    report: { threads: number };
    threads: string[];
    readTheirs: string;
    writeOurs: string;
    writeKept: string;
    exec: string;
  };
  assert.ok(out.threads.length > 1, 'Node runs several threads');
  assert.is(out.report.threads, out.threads.length);
  for (const t of out.threads) {
    assert.match(t, new RegExp(`^Uid:\\s+${MANAGER_ID}\\s+${MANAGER_ID}\\s+${MANAGER_ID}\\s+${MANAGER_ID}$`, 'm'));
    assert.match(t, /^Groups:\s*$/m);
    const c = parseStatusCaps(t);
    assert.equal([c.effective, c.permitted, c.ambient, c.inheritable], [0n, 0n, 0n, 0n], t);
    assert.ok(c.noNewPrivs, 'no_new_privs on every thread');
  }
  assert.is(out.readTheirs, 'EACCES');
  assert.is(out.writeOurs, 'EACCES', 'a root-owned 0200 file (like sysfs unbind) is out of reach: open it at set-up');
  assert.is(out.writeKept, 'ok', 'an fd opened before the switch still writes');
  const exec = parseStatusCaps(out.exec);
  assert.is(exec.effective | exec.permitted, 0n, 'an exec gains nothing');
});

/** Every thread of `pid`: its uids and capability sets. */
function threads(pid: number): { uids: string; caps: TaskCaps }[] {
  return readdirSync(`/proc/${pid}/task`).map((t) => {
    const text = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
    return { uids: /^Uid:\s*(.*)$/m.exec(text)![1]!, caps: parseStatusCaps(text) };
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

const POLICY = `version: 1
name: priv-a
device: { sim: nvme, capacity: 1MiB, blockSize: 512 }
driver: { name: nvme, queues: 1, depth: 16 }
windows: [ { size: 512KiB }, { size: 2MiB } ]
restart: { maxRestarts: 3, window: 60s, backoff: { initial: 50ms, max: 1s } }
`;

/** `dmabox up` of POLICY in a child, its output collected. */
function up(control: string, extra: string[] = []) {
  const file = join(dir, 'up.yaml');
  writeFileSync(file, POLICY);
  const m = spawn(process.execPath, [...process.execArgv, cliMain, 'up', file, '--control', control, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const r = { m, out: '', err: '', exit: undefined as { code: number | null } | undefined };
  m.stdout.on('data', (d: Buffer) => {
    r.out += d.toString('utf8');
  });
  m.stderr.on('data', (d: Buffer) => {
    r.err += d.toString('utf8');
  });
  m.on('exit', (code) => {
    r.exit = { code };
  });
  return r;
}

interface StatusJson {
  manager: { uid: number; dropped: boolean; caps: { threads: { uid: number; prm: string; eff: string; amb: string; noNewPrivs: boolean }[] } };
  spawner: { pid: number; caps: { threads: { uid: number; prm: string; eff: string }[] } } | null;
  sandboxes: { state: string; restarts: number; pid: number }[];
}
function status(control: string): StatusJson {
  const r = spawnSync(process.execPath, [...process.execArgv, cliMain, 'status', '--json', '--control', control], { encoding: 'utf8', timeout: 20_000 });
  return JSON.parse(r.stdout) as StatusJson;
}

rootTest(
  'as root, dmabox up leaves root: no capability on any manager thread, the spawner keeps three, kill -9 and restart through it, status, orderly stop',
  async () => {
    const control = join(dir, 'up.sock');
    const u = up(control);
    try {
      await until('the privilege line', () => /^privileges: /m.test(u.out) || u.exit !== undefined || u.err.includes('privileges'), 60_000);
      assert.match(
        u.out,
        new RegExp(`^privileges: the manager is uid ${MANAGER_ID} gid ${MANAGER_ID} with no capability on any of its \\d+ threads`, 'm'),
        `${u.out}${u.err}`,
      );
      const mine = threads(u.m.pid!);
      assert.ok(mine.length > 1);
      for (const t of mine) {
        assert.is(t.uids, `${MANAGER_ID}\t${MANAGER_ID}\t${MANAGER_ID}\t${MANAGER_ID}`);
        assert.equal([t.caps.effective, t.caps.permitted, t.caps.ambient], [0n, 0n, 0n], `a manager thread holds ${capNames(t.caps.permitted)}`);
        assert.ok(t.caps.noNewPrivs);
      }
      const st = status(control);
      assert.is(st.manager.uid, MANAGER_ID);
      assert.ok(st.manager.dropped);
      assert.is(st.manager.caps.threads.length, mine.length, 'status shows every manager thread');
      assert.ok(st.spawner && st.spawner.pid > 0, JSON.stringify(st));
      for (const t of threads(st.spawner.pid)) {
        assert.equal(
          [t.caps.effective, t.caps.permitted, t.caps.bounding, t.caps.ambient],
          [SPAWNER_KEPT, SPAWNER_KEPT, SPAWNER_KEPT, 0n],
          'every spawner thread: exactly the three',
        );
        assert.ok(t.caps.noNewPrivs);
      }
      assert.is(st.spawner.caps.threads.length, threads(st.spawner.pid).length);
      const spawned = /container pid (\d+) as uid (\d+) gid (\d+)/.exec(u.out);
      const first = Number(spawned?.[1]);
      const uid = Number(spawned?.[2]);
      assert.ok(first > 0, u.out);
      assert.ok(uid >= 61184 && uid <= 65519, `the container runs under a sandbox identity, not ${uid}`);
      // Its ancestry (setpriv, bwrap and bwrap's init between them) leads to the spawner.
      const parent = (pid: number): number => Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
      const chain: number[] = [first];
      while (chain.length < 8 && chain[chain.length - 1]! > 1 && chain[chain.length - 1] !== st.spawner.pid) chain.push(parent(chain[chain.length - 1]!));
      assert.is(chain[chain.length - 1], st.spawner.pid, `the container descends from the spawner: ${chain.join(' <- ')}`);
      process.kill(first, 'SIGKILL');
      await until(
        'the restarted container',
        () => /restart: restart 1/.test(u.out) && /priv-a ready: /.test(u.out.slice(u.out.indexOf('restart: restart 1'))),
        30_000,
      );
      assert.match(u.out, /quarantine: bus mastering off/);
      const second = Number([...u.out.matchAll(new RegExp(`container pid (\\d+) as uid ${uid} gid ${uid}`, 'g'))][1]?.[1]);
      assert.ok(second > 0 && second !== first, u.out);
      const st2 = status(control);
      assert.is(st2.sandboxes[0]!.state, 'running');
      assert.is(st2.sandboxes[0]!.restarts, 1);
      u.m.kill('SIGTERM');
      await until('up to exit', () => u.exit !== undefined, 20_000);
      assert.is(u.exit!.code, 0, `${u.out}${u.err}`);
      assert.match(u.out, /stopped: containers gone, devices quarantined, windows unmapped/);
      assert.not.ok(existsSync(control), 'the control socket, the manager’s own, was removed');
      await until('the spawner to go', () => !alive(st.spawner!.pid), 10_000);
    } finally {
      if (u.exit === undefined) u.m.kill('SIGKILL');
    }
  },
);

rootTest('a manager killed with SIGKILL takes the spawner and its containers with it', async () => {
  const control = join(dir, 'kill.sock');
  const u = up(control);
  try {
    await until('the privilege line', () => /^privileges: /m.test(u.out) || u.exit !== undefined, 60_000);
    const st = status(control);
    const spawner = st.spawner!.pid;
    const container = st.sandboxes[0]!.pid;
    assert.ok(alive(spawner) && alive(container));
    u.m.kill('SIGKILL');
    await until('the spawner and the container to go', () => !alive(spawner) && !alive(container), 10_000);
  } finally {
    if (u.exit === undefined) u.m.kill('SIGKILL');
  }
});

rootTest('the spawner killed: the manager says so loudly, stops in order and exits 1', async () => {
  const control = join(dir, 'spawner-gone.sock');
  const u = up(control);
  try {
    await until('the privilege line', () => /^privileges: /m.test(u.out) || u.exit !== undefined, 60_000);
    const spawner = status(control).spawner!.pid;
    process.kill(spawner, 'SIGKILL');
    await until('up to exit', () => u.exit !== undefined, 20_000);
    assert.is(u.exit!.code, 1, `${u.out}${u.err}`);
    assert.match(u.err, /^FATAL: the spawner is gone \(.*\): containers can no longer be started or killed; stopping$/m);
    assert.match(u.out, /priv-a failed \[error\]: the spawner is gone/);
    assert.match(u.out, /stopped: containers gone/);
  } finally {
    if (u.exit === undefined) u.m.kill('SIGKILL');
  }
});

rootTest('dmabox up --keep-privileges stays root, without a spawner', async () => {
  const control = join(dir, 'keep.sock');
  const u = up(control, ['--keep-privileges']);
  try {
    await until('up', () => /^up: /m.test(u.out) || u.exit !== undefined, 60_000);
    await until(
      'the manager to answer',
      () =>
        spawnSync(process.execPath, [...process.execArgv, cliMain, 'status', '--json', '--control', control], { encoding: 'utf8', timeout: 20_000 }).status ===
        0,
      20_000,
    );
    const mine = parseStatusCaps(readFileSync(`/proc/${u.m.pid}/status`, 'utf8'));
    assert.ok((mine.effective & (1n << 21n)) !== 0n, 'CAP_SYS_ADMIN kept');
    assert.not.match(u.out, /^privileges: /m);
    assert.is(status(control).spawner, null);
    u.m.kill('SIGTERM');
    await until('up to exit', () => u.exit !== undefined, 20_000);
    assert.is(u.exit!.code, 0, u.out);
  } finally {
    if (u.exit === undefined) u.m.kill('SIGKILL');
  }
});

test.run();
