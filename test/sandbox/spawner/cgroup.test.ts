/**
 * Cgroup layout and limits, on a fake /proc whose mountinfo points at plain folders (so the
 * files the kernel would make are written as ordinary files): v2 preferred when it has memory
 * and pids, the v1 hybrid otherwise, the limits and the OOM counter read back.
 */
import { spawn } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cgroup, detectCgroups } from '../../../sandbox/spawner/cgroup.js';
import { needsRoot, testIf } from '../../helpers/skip.js';

function fakeProc(mountinfo: string[], cgroup: string[]): string {
  const proc = mkdtempSync(join(tmpdir(), 'dmabox-proc-'));
  mkdirSync(join(proc, 'self'));
  writeFileSync(join(proc, 'self/mountinfo'), mountinfo.join('\n') + '\n');
  writeFileSync(join(proc, 'self/cgroup'), cgroup.join('\n') + '\n');
  return proc;
}

test('the v1/v2 hybrid: v2 without memory and pids is passed over, v1 used under the caller own cgroups', () => {
  const fs = mkdtempSync(join(tmpdir(), 'dmabox-cg-'));
  for (const d of ['unified', 'memory/own', 'pids', 'cpu']) mkdirSync(join(fs, d), { recursive: true });
  writeFileSync(join(fs, 'unified/cgroup.controllers'), 'hugetlb\n');
  const proc = fakeProc(
    [
      `30 23 0:26 / ${fs}/unified rw - cgroup2 cgroup2 rw`,
      `31 23 0:27 / ${fs}/memory rw - cgroup cgroup rw,memory`,
      `32 23 0:28 / ${fs}/pids rw - cgroup cgroup rw,pids`,
      `33 23 0:29 / ${fs}/cpu rw - cgroup cgroup rw,cpu`,
    ],
    ['4:memory:/own', '8:pids:/', '1:cpu:/', '0::/'],
  );
  const host = detectCgroups(proc, 0);
  assert.is(host.version, 1);
  if (host.version !== 1) return;
  assert.is(host.bases.memory, join(fs, 'memory/own/dmabox'));
  const cg = Cgroup.create(host, 'a.driver.1', { memoryBytes: 64 << 20, pids: 32, cpuWeight: 50 });
  assert.is(readFileSync(join(fs, 'memory/own/dmabox/a.driver.1/memory.limit_in_bytes'), 'utf8'), String(64 << 20));
  assert.is(readFileSync(join(fs, 'pids/dmabox/a.driver.1/pids.max'), 'utf8'), '32');
  assert.is(readFileSync(join(fs, 'cpu/dmabox/a.driver.1/cpu.shares'), 'utf8'), '512');
  assert.equal(cg.procsFiles.length, 3);
  assert.is(cg.oomKills(), 0);
  writeFileSync(join(fs, 'memory/own/dmabox/a.driver.1/memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n');
  assert.is(cg.oomKills(), 1);
});

test('v2 with memory and pids: controllers enabled below the caller, one folder per process, removed after', async () => {
  const fs = mkdtempSync(join(tmpdir(), 'dmabox-cg2-'));
  writeFileSync(join(fs, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
  const proc = fakeProc([`30 23 0:26 / ${fs} rw - cgroup2 cgroup2 rw`], ['0::/']);
  const host = detectCgroups(proc, 0);
  assert.equal(host, { version: 2, base: join(fs, 'dmabox'), controllers: ['memory', 'pids', 'cpu'] });
  assert.is(readFileSync(join(fs, 'cgroup.subtree_control'), 'utf8'), '+memory +pids +cpu');
  const cg = Cgroup.create(host, 'b.device.2', { memoryBytes: 1 << 30, pids: 64, cpuWeight: 100 });
  assert.is(readFileSync(join(cg.path, 'memory.max'), 'utf8'), String(1 << 30));
  assert.is(readFileSync(join(cg.path, 'cpu.weight'), 'utf8'), '100');
  writeFileSync(join(cg.path, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n');
  assert.is(cg.oomKills(), 2);
  assert.equal(cg.procsFiles, [join(cg.path, 'cgroup.procs')]);
  // A real cgroup folder holds only kernel files, which rmdir takes with it; here, remove ours first.
  for (const f of ['memory.max', 'pids.max', 'cpu.weight', 'memory.events']) (await import('node:fs')).rmSync(join(cg.path, f));
  await cg.remove(100);
  assert.not.ok(existsSync(cg.path));
});

test('not root, or neither layout: no cgroups, with the reason', () => {
  assert.equal(detectCgroups('/proc', 1000).version, 0);
  const host = detectCgroups(fakeProc([], []), 0);
  assert.is(host.version, 0);
  if (host.version === 0) assert.match(host.why, /no cgroup v2 mounted; no cgroup v1 hierarchy with both memory and pids/);
  assert.throws(() => Cgroup.create(host, 'x', { memoryBytes: 1, pids: 1, cpuWeight: 1 }), /no cgroups/);
});

testIf(needsRoot())('forkInside (the no-shell launch): the child starts in the cgroup, the caller is back where it was', async () => {
  const host = detectCgroups();
  assert.is.not(host.version, 0, host.version === 0 ? host.why : '');
  const cg = Cgroup.create(host, `fork-inside-test.${process.pid}`, { memoryBytes: 256 << 20, pids: 64, cpuWeight: 100 });
  const before = readFileSync('/proc/self/cgroup', 'utf8');
  const child = cg.forkInside(() => spawn('/bin/sleep', ['30'], { stdio: 'ignore' }));
  try {
    assert.is(readFileSync('/proc/self/cgroup', 'utf8'), before, 'the caller moved back');
    assert.ok(readFileSync(`/proc/${child.pid}/cgroup`, 'utf8').includes(`fork-inside-test.${process.pid}`), 'the child is in the cgroup');
    assert.throws(
      () =>
        cg.forkInside(() => {
          throw new TypeError('spawn failed');
        }),
      /spawn failed/,
    );
    assert.is(readFileSync('/proc/self/cgroup', 'utf8'), before, 'back after a failed fork too');
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await cg.remove();
  }
});

test.run();
