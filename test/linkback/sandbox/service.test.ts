/**
 * linkback/service.ts and the nbd starter around the socket path: a stale socket is taken over, a
 * live one or a plain file stops that linkback with the reason (reported, never pretended), and
 * stop() closes the linkbacks before the sandboxes (socket gone, containers stopped, devices
 * released).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startService } from '../../../linkback/service.js';
import { nbdPolicy, run, tempDir } from './helpers.js';

test('a stale socket is taken over; stop closes the linkback, then the sandbox', async () => {
  const tmp = tempDir();
  const sock = join(tmp.dir, 'stale.sock');
  // A socket file nothing listens on: a server killed before it could clean up.
  const child = spawnSync(
    process.execPath,
    ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`],
    { stdio: 'ignore', timeout: 10_000 },
  );
  assert.is(child.signal, 'SIGKILL');
  assert.ok(existsSync(sock), 'a stale socket file is left behind');
  const svc = await startService([nbdPolicy('stale', sock, { capacity: '4MiB' })], { controlPath: null }, () => undefined);
  try {
    assert.equal(svc.unavailable, []);
    assert.is(svc.linkbacks.length, 1);
    const r = await run('nbdinfo', ['--size', `nbd+unix:///stale?socket=${sock}`]);
    assert.is(r.stdout.trim(), String(4 << 20), r.stderr);
  } finally {
    await svc.stop();
  }
  assert.not.ok(existsSync(sock), 'the socket is removed at stop');
  assert.is(svc.manager.sandboxes[0]!.state, 'stopped');
  tmp.remove();
});

test('a live socket or a plain file at the path: that linkback is FAILED with the reason, the sandbox still stops cleanly', async () => {
  const tmp = tempDir();
  const live = join(tmp.dir, 'live.sock');
  const other = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => other.listen(live, r));
  const file = join(tmp.dir, 'file.sock');
  writeFileSync(file, 'not a socket');
  const svc = await startService(
    [nbdPolicy('live', live, { capacity: '4MiB' }), nbdPolicy('file', file, { capacity: '4MiB' })],
    { controlPath: null },
    () => undefined,
  );
  try {
    assert.is(svc.linkbacks.length, 0);
    const by = Object.fromEntries(svc.unavailable.map((u) => [u.policy, u]));
    assert.is(by['live']!.kind, 'error');
    assert.match(by['live']!.reason, /another server is listening there/);
    assert.is(by['file']!.kind, 'error');
    assert.match(by['file']!.reason, /exists and is not a socket/);
    assert.ok(
      svc.manager.sandboxes.every((s) => s.state === 'running'),
      'the sandboxes themselves run',
    );
  } finally {
    await svc.stop();
    await new Promise<void>((r) => other.close(() => r()));
  }
  assert.ok(svc.manager.sandboxes.every((s) => s.state === 'stopped'));
  assert.ok(existsSync(file), 'a file that is not ours is left alone');
  tmp.remove();
});

test('a socket folder another user could write to is refused with the reason', async () => {
  const tmp = tempDir();
  const open = join(tmp.dir, 'shared');
  mkdirSync(open);
  chmodSync(open, 0o777);
  const svc = await startService([nbdPolicy('shared', join(open, 'd.sock'), { capacity: '4MiB' })], { controlPath: null }, () => undefined);
  try {
    assert.is(svc.linkbacks.length, 0);
    assert.match(svc.unavailable[0]!.reason, /writable by others \(mode 777\)/);
  } finally {
    await svc.stop();
  }
  tmp.remove();
});

test.run();
