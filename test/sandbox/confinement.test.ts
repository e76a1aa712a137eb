/**
 * The container really is unprivileged: its uid and gid (the policy's when the manager is root),
 * NoNewPrivs 1 and Seccomp 2 in /proc/PID/status, and /dev/vfio out of reach (the filter refuses
 * the open itself: EPERM, whether or not the file exists). An unconfined policy says so.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { Supervisor } from '../../sandbox/supervisor.js';
import { simPolicy, until } from './helpers.js';

const root = process.getuid?.() === 0;

function field(status: string, name: string): string {
  const line = status.split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no ${name} in /proc status`);
  return line.slice(name.length + 1).trim();
}

test('the container runs as the policy uid/gid, no_new_privs, seccomp mode 2, /dev/vfio refused', async () => {
  const s = new Supervisor(simPolicy('confined'));
  try {
    await s.start();
    const status = readFileSync(`/proc/${s.pid}/status`, 'utf8');
    if (root) {
      assert.is(field(status, 'Uid').split(/\s+/)[0], '65534');
      assert.is(field(status, 'Gid').split(/\s+/)[0], '65534');
      assert.is(s.status().uidFromPolicy, true);
    } else {
      assert.is(field(status, 'Uid').split(/\s+/)[0], String(process.getuid!()));
      assert.is(s.status().uidFromPolicy, false, 'status says the container runs as the invoking user');
    }
    assert.is(field(status, 'NoNewPrivs'), '1');
    assert.is(field(status, 'Seccomp'), '2');
    await until('the confinement check log', () => s.events.some((e) => e.text.includes('open of /dev/vfio/vfio refused')), 5000);
    assert.ok(s.events.some((e) => e.text.includes('refused with EPERM')));
    // The container holds no fd to /dev/vfio and none it was not given.
    const { readdirSync, readlinkSync } = await import('node:fs');
    const fds = readdirSync(`/proc/${s.pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${s.pid}/fd/${fd}`); } catch { return '?'; } });
    assert.ok(!fds.some((l) => l.startsWith('/dev/vfio')), fds.join(' '));
  } finally {
    await s.stop();
  }
});

test('an unconfined policy: no seccomp, and every status and spawn line says UNCONFINED', async () => {
  const s = new Supervisor(simPolicy('loose', 'unconfined: true\ncontainer: { seccomp: none }'));
  try {
    await s.start();
    const status = readFileSync(`/proc/${s.pid}/status`, 'utf8');
    assert.is(field(status, 'Seccomp'), '0');
    assert.is(s.status().unconfined, true);
    assert.ok(s.events.find((e) => e.kind === 'spawn')!.text.includes('UNCONFINED'));
  } finally {
    await s.stop();
  }
});

test.run();
