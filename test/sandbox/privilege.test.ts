/**
 * The manager's privilege drop (sandbox/manager/privilege.ts). Over the fake seam: the order (no_new_privs,
 * ambient, bounding set while CAP_SETPCAP is held, then capset) and the refusals. As root, in a
 * child process (the drop cannot be undone, and this test process must keep its privileges): the
 * child's /proc/self/status shows exactly the kept set; mount and reading another user's 0600 file
 * fail; a root-owned 0200 file (as sysfs bind/unbind are) is still writable; a child spawned as uid
 * 65534 runs with no capabilities and is killed; an exec as uid 0 gains nothing back. And
 * `dmabox up` with the default drop runs the whole cycle: kill -9, quarantine, restart as the
 * policy's uid, status caps, orderly stop.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PR_CAP_AMBIENT, PR_CAPBSET_DROP, PR_CAPBSET_READ, PR_SET_NO_NEW_PRIVS } from 'linux-sys';
import {
  capMask,
  capNames,
  CAP_KILL,
  CAP_SETGID,
  CAP_SETPCAP,
  CAP_SETUID,
  dropPrivileges,
  parseStatusCaps,
  PrivilegeError,
} from '../../sandbox/manager/privilege.js';
import { FakeSys } from '../sys/fake-sys.js';
import { until } from './helpers.js';
import { needsRoot, testIf } from '../helpers/skip.js';

const KEPT = capMask([CAP_SETUID, CAP_SETGID, CAP_KILL]);
const rootTest = testIf(needsRoot());
const dir = mkdtempSync(join(tmpdir(), 'dmabox-priv-'));
const fromSource = import.meta.url.endsWith('.ts');
const cliMain = new URL(`../../cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url).pathname;
const privilegeModule = new URL(`../../sandbox/manager/privilege.${fromSource ? 'ts' : 'js'}`, import.meta.url).pathname;

test('fake seam: no_new_privs, ambient cleared, bounding dropped while CAP_SETPCAP is held, then capset to the kept set', () => {
  const sys = new FakeSys();
  const r = dropPrivileges({ sys, lastCap: 40 });
  assert.equal(r.kept, ['CAP_KILL', 'CAP_SETGID', 'CAP_SETUID']);
  assert.is(r.dropped.length, 38);
  assert.is(r.threadsWithMore, null, "a seam was handed in: this process's threads are not counted");
  assert.ok(r.dropped.includes('CAP_SYS_ADMIN') && r.dropped.includes('CAP_DAC_OVERRIDE') && r.dropped.includes('CAP_SETPCAP'));
  assert.equal(sys.caps, { effective: KEPT, permitted: KEPT, inheritable: 0n });
  assert.is(sys.bounding, KEPT);
  const ops = sys.prctls.map(([o]) => o);
  assert.equal(sys.prctls[0], [PR_SET_NO_NEW_PRIVS, 1]);
  assert.is(ops[1], PR_CAP_AMBIENT);
  const drops = sys.prctls.filter(([o]) => o === PR_CAPBSET_DROP).map(([, c]) => c);
  assert.is(drops.length, 38);
  assert.not.ok(drops.includes(CAP_KILL) || drops.includes(CAP_SETUID) || drops.includes(CAP_SETGID));
  assert.ok(drops.includes(CAP_SETPCAP), 'CAP_SETPCAP itself leaves the bounding set');
  assert.is(ops.filter((o) => o === PR_CAPBSET_READ).length, 41, 'every capability is read back');
});

test('fake seam: refused without CAP_SETPCAP, without a kept capability, or for a number the kernel does not know', () => {
  const noSetpcap = new FakeSys();
  noSetpcap.caps = { effective: KEPT, permitted: KEPT, inheritable: 0n };
  try {
    dropPrivileges({ sys: noSetpcap, lastCap: 40 });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, PrivilegeError);
    assert.is((e as PrivilegeError).code, 'ERR_SANDBOX_PRIVILEGE');
    assert.match((e as Error).message, /CAP_SETPCAP.*\n {2}fix: .*--keep-privileges/s);
  }
  assert.is(noSetpcap.prctls.length, 0, 'nothing was changed');
  const noKill = new FakeSys();
  noKill.caps = { effective: noKill.caps.effective & ~(1n << 5n), permitted: noKill.caps.permitted & ~(1n << 5n), inheritable: 0n };
  assert.throws(() => dropPrivileges({ sys: noKill, lastCap: 40 }), /does not hold CAP_KILL/);
  assert.throws(() => dropPrivileges({ sys: new FakeSys(), lastCap: 40, keep: [41] }), /capability 41 is not one this kernel knows/);
  // A step the kernel refuses (the fake knows capabilities 0..40): named, with the errno.
  assert.throws(
    () => dropPrivileges({ sys: new FakeSys(), lastCap: 41 }),
    (e: unknown) => e instanceof PrivilegeError && /PR_CAPBSET_DROP 41 failed: .*EINVAL/.test((e as Error).message),
  );
});

test('parseStatusCaps reads /proc status lines; capNames names a mask', () => {
  const c = parseStatusCaps(
    'Name:\tnode\nNoNewPrivs:\t1\nCapInh:\t0000000000000000\nCapPrm:\t00000000000000e0\nCapEff:\t00000000000000e0\nCapBnd:\t00000000000000e0\nCapAmb:\t0000000000000000\n',
  );
  assert.equal(c, { inheritable: 0n, permitted: 0xe0n, effective: 0xe0n, bounding: 0xe0n, ambient: 0n, noNewPrivs: true });
  assert.equal(capNames(0xe0n), ['CAP_KILL', 'CAP_SETGID', 'CAP_SETUID']);
  assert.throws(() => parseStatusCaps('Name:\tnode\n'), /no CapInh line/);
});

// The child: drops, then reports its own status and what it could and could not do, as JSON.
const CHILD = `
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dropPrivileges } from ${JSON.stringify(privilegeModule)};
const [theirs, ours, mnt] = process.argv.slice(2);
const report = dropPrivileges();
const out = { report, status: readFileSync('/proc/self/status', 'utf8') };
try { readFileSync(theirs); out.readTheirs = 'ok'; } catch (e) { out.readTheirs = e.code; }
try { writeFileSync(ours, 'x'); out.writeOurs = 'ok'; } catch (e) { out.writeOurs = e.code; }
const m = spawnSync('mount', ['-t', 'tmpfs', 'none', mnt], { encoding: 'utf8' });
out.mount = { status: m.status, stderr: m.stderr, error: m.error?.code };
out.exec = spawnSync('cat', ['/proc/self/status'], { encoding: 'utf8' }).stdout;
const ch = spawn('sleep', ['30'], { uid: 65534, gid: 65534, stdio: 'ignore' });
ch.on('error', (e) => { out.spawn = e.code; console.log(JSON.stringify(out, (k, v) => typeof v === 'bigint' ? v.toString() : v)); });
ch.on('spawn', () => {
  out.spawned = readFileSync('/proc/' + ch.pid + '/status', 'utf8');
  out.killed = ch.kill('SIGKILL');
});
ch.on('exit', (code, signal) => { out.exit = signal; console.log(JSON.stringify(out)); });
`;

rootTest('as root, in a child: exactly the kept set; mount and DAC override gone; spawn as 65534 and kill still work', async () => {
  const theirs = join(dir, 'theirs');
  writeFileSync(theirs, 'secret');
  chownSync(theirs, 65534, 65534);
  chmodSync(theirs, 0o600);
  const ours = join(dir, 'ours');
  writeFileSync(ours, '');
  chmodSync(ours, 0o200);
  const mnt = mkdtempSync(join(dir, 'mnt-'));
  const script = join(dir, 'child.mjs');
  writeFileSync(script, CHILD);
  const r = spawnSync(process.execPath, [...process.execArgv, script, theirs, ours, mnt], { encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown> & {
    report: { kept: string[]; noNewPrivs: boolean; threadsWithMore: number | null };
    status: string;
    exec: string;
    spawned: string;
    mount: { status: number | null };
  };
  const c = parseStatusCaps(out.status);
  assert.is(c.effective, KEPT, `CapEff ${c.effective.toString(16)}`);
  assert.is(c.permitted, KEPT);
  assert.is(c.bounding, KEPT);
  assert.is(c.inheritable, 0n);
  assert.is(c.ambient, 0n);
  assert.ok(c.noNewPrivs);
  assert.equal(out.report.kept, ['CAP_KILL', 'CAP_SETGID', 'CAP_SETUID']);
  assert.type(out.report.threadsWithMore, 'number');
  assert.is(out.readTheirs, 'EACCES', "reading uid 65534's 0600 file needed CAP_DAC_OVERRIDE");
  assert.is(out.writeOurs, 'ok', 'a root-owned 0200 file (like sysfs unbind) is written by owner permission');
  assert.is.not(out.mount.status, 0, 'mount needs CAP_SYS_ADMIN');
  assert.not.ok(existsSync(join(mnt, '.')) && spawnSync('mountpoint', ['-q', mnt]).status === 0, 'nothing was mounted');
  const exec = parseStatusCaps(out.exec);
  assert.is(exec.effective, KEPT, 'an exec as uid 0 gains nothing beyond the kept set');
  assert.is(exec.bounding, KEPT);
  assert.match(out.spawned, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
  const spawned = parseStatusCaps(out.spawned);
  assert.is(spawned.effective, 0n);
  assert.is(spawned.permitted, 0n);
  assert.ok(out.killed);
  assert.is(out.exit, 'SIGKILL');
});

rootTest('as root, dmabox up drops by default: kill -9, quarantine, restart as the policy uid, status caps, orderly stop', async () => {
  const file = join(dir, 'up.yaml');
  writeFileSync(
    file,
    `version: 1
name: priv-a
device: { sim: nvme, capacity: 1MiB, blockSize: 512 }
driver: { name: nvme, queues: 1, depth: 16 }
windows: [ { size: 512KiB }, { size: 2MiB } ]
restart: { maxRestarts: 3, window: 60s, backoff: { initial: 50ms, max: 1s } }
`,
  );
  const control = join(dir, 'up.sock');
  const m = spawn(process.execPath, [...process.execArgv, cliMain, 'up', file, '--control', control], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  m.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  m.stderr.on('data', (d: Buffer) => {
    err += d.toString('utf8');
  });
  let exit: { code: number | null } | undefined;
  m.on('exit', (code) => {
    exit = { code };
  });
  try {
    await until('the privilege line', () => /^privileges: /m.test(out) || exit !== undefined || err.includes('privileges'), 60_000);
    assert.match(out, /^privileges: kept CAP_KILL, CAP_SETGID, CAP_SETUID \(no_new_privs, bounding set likewise\)/m, `${out}${err}`);
    const mine = parseStatusCaps(spawnSync('cat', [`/proc/${m.pid}/status`], { encoding: 'utf8' }).stdout);
    assert.is(mine.effective, KEPT);
    assert.is(mine.bounding, KEPT);
    const first = Number(/container pid (\d+) as uid \d+/.exec(out)?.[1]);
    assert.ok(first > 0, out);
    process.kill(first, 'SIGKILL');
    await until('the restarted container', () => /restart: restart 1/.test(out) && /priv-a ready: /.test(out.slice(out.indexOf('restart: restart 1'))), 30_000);
    assert.match(out, /quarantine: bus mastering off/);
    // The restarted container gets its sandbox's identity again.
    const spawns = [...out.matchAll(/container pid (\d+) as uid (\d+) gid (\d+)/g)];
    assert.is(spawns[1]?.[2], spawns[0]?.[2], out);
    const second = Number(spawns[1]?.[1]);
    assert.ok(second > 0 && second !== first, out);
    const st = JSON.parse(
      spawnSync(process.execPath, [...process.execArgv, cliMain, 'status', '--json', '--control', control], { encoding: 'utf8', timeout: 20_000 }).stdout,
    ) as {
      manager: { caps: { dropped: boolean; effective: string[]; bounding: number; noNewPrivs: boolean } };
      sandboxes: { state: string; restarts: number }[];
    };
    assert.equal(st.manager.caps, { dropped: true, effective: ['CAP_KILL', 'CAP_SETGID', 'CAP_SETUID'], bounding: 3, noNewPrivs: true });
    assert.is(st.sandboxes[0]!.state, 'running');
    assert.is(st.sandboxes[0]!.restarts, 1);
    m.kill('SIGTERM');
    await until('up to exit', () => exit !== undefined, 20_000);
    assert.is(exit!.code, 0, `${out}${err}`);
    assert.match(out, /stopped: containers gone, devices quarantined, windows unmapped/);
    assert.not.ok(existsSync(control), 'the control socket was removed without CAP_DAC_OVERRIDE');
  } finally {
    if (exit === undefined) m.kill('SIGKILL');
  }
});

rootTest('dmabox up --keep-privileges keeps them', async () => {
  const file = join(dir, 'up.yaml');
  const control = join(dir, 'keep.sock');
  const m = spawn(process.execPath, [...process.execArgv, cliMain, 'up', file, '--control', control, '--keep-privileges'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  m.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  let exit: { code: number | null } | undefined;
  m.on('exit', (code) => {
    exit = { code };
  });
  try {
    await until('up', () => /^up: /m.test(out) || exit !== undefined, 60_000);
    await until(
      'the manager to answer',
      () =>
        spawnSync(process.execPath, [...process.execArgv, cliMain, 'status', '--json', '--control', control], { encoding: 'utf8', timeout: 20_000 }).status ===
        0,
      20_000,
    );
    const mine = parseStatusCaps(spawnSync('cat', [`/proc/${m.pid}/status`], { encoding: 'utf8' }).stdout);
    assert.ok((mine.effective & (1n << 21n)) !== 0n, 'CAP_SYS_ADMIN kept');
    assert.not.match(out, /^privileges: /m);
    m.kill('SIGTERM');
    await until('up to exit', () => exit !== undefined, 20_000);
    assert.is(exit!.code, 0, out);
  } finally {
    if (exit === undefined) m.kill('SIGKILL');
  }
});

test.run();
