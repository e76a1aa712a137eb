/** A container's CPU and memory: from a fake /proc and cgroup folder, and from this process. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupMemoryBytes, containerUsage, cpuSeconds, processTree, rssBytes } from '../../ops/proc-stats.js';

function proc(root: string, pid: number, comm: string, utime: number, stime: number, rssKb: number, children: number[]): void {
  mkdirSync(join(root, String(pid), 'task', String(pid)), { recursive: true });
  // Fields 1..15: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  writeFileSync(join(root, String(pid), 'stat'), `${pid} (${comm}) S 1 1 1 0 -1 0 0 0 0 0 ${utime} ${stime} 0 0 20 0 1 0\n`);
  writeFileSync(join(root, String(pid), 'status'), `Name:\t${comm}\nVmRSS:\t    ${rssKb} kB\n`);
  writeFileSync(join(root, String(pid), 'task', String(pid), 'children'), children.length ? `${children.join(' ')} ` : '');
}

test('the process tree, CPU from utime + stime (a comm with spaces and parentheses), VmRSS, the cgroup memory first', () => {
  const root = mkdtempSync(join(tmpdir(), 'dmabox-proc-'));
  try {
    proc(root, 10, 'bwrap', 1, 2, 1000, [11]);
    proc(root, 11, 'node (x) y', 150, 50, 30000, [12]);
    proc(root, 12, 'sh', 0, 0, 0, []);
    assert.equal(processTree(10, root), [10, 11, 12]);
    assert.is(cpuSeconds(11, root), 2);
    assert.is(rssBytes(11, root), 30000 * 1024);
    assert.is(cpuSeconds(99, root), 0, 'gone: nothing');
    assert.is(rssBytes(99, root), 0);
    assert.equal(containerUsage(10, undefined, root), { cpuSeconds: 2.03, memoryBytes: 31000 * 1024, processes: 3 });
    const v2 = join(root, 'cg2'),
      v1 = join(root, 'cg1');
    mkdirSync(v2);
    mkdirSync(v1);
    writeFileSync(join(v2, 'memory.current'), '123456\n');
    writeFileSync(join(v1, 'memory.usage_in_bytes'), '654321\n');
    assert.is(cgroupMemoryBytes(v2), 123456);
    assert.is(cgroupMemoryBytes(v1), 654321);
    assert.is(cgroupMemoryBytes(join(root, 'none')), undefined);
    assert.is(containerUsage(10, v2, root).memoryBytes, 123456);
    assert.is(containerUsage(10, join(root, 'none'), root).memoryBytes, 31000 * 1024, 'no cgroup file: the resident set');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('this process, from the real /proc', () => {
  const u = containerUsage(process.pid, undefined);
  assert.ok(u.cpuSeconds > 0);
  assert.ok(u.memoryBytes > 10 * 1024 * 1024);
  assert.ok(u.processes >= 1);
});

test.run();
