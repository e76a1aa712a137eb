/**
 * Claiming a unix socket path: the folder made private, folders others could tamper with refused,
 * a live server's socket never taken, a stale one taken over, another file left alone; every
 * refusal through the caller's own error.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { claimSocketPath, socketAnswers, type ClaimOptions } from '../../common/unix-socket.js';

class ClaimError extends Error {
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

const options: ClaimOptions = {
  error: (message, fix) => new ClaimError(message, fix),
  what: 'the test server',
  busyFix: 'stop the other one',
  notSocketFix: 'remove the file',
};

async function refused(path: string, message: RegExp, fix: RegExp | string): Promise<void> {
  try {
    await claimSocketPath(path, options);
  } catch (e) {
    assert.instance(e, ClaimError, String(e));
    assert.match((e as ClaimError).message, message);
    assert.match((e as ClaimError).fix, fix);
    return;
  }
  assert.unreachable(`claimed ${path}`);
}

function listen(path: string): Promise<net.Server> {
  const srv = net.createServer((c) => c.destroy());
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(path, () => resolve(srv));
  });
}

const root = mkdtempSync(join(tmpdir(), 'dmabox-unix-socket-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

test('a path in a missing folder: the folder is made 0700 and the path is free', async () => {
  const path = join(root, 'fresh', 'nested', 's.sock');
  await claimSocketPath(path, options);
  assert.is(statSync(join(root, 'fresh', 'nested')).mode & 0o777, 0o700);
  assert.not.ok(existsSync(path));
});

test('a folder others may write to is refused, with the fix', async () => {
  const dir = join(root, 'open');
  mkdirSync(dir);
  chmodSync(dir, 0o777);
  await refused(join(dir, 's.sock'), /writable by others \(mode 777\)/, /chmod go-w/);
});

// chown to another user needs root.
(process.getuid?.() === 0 ? test : test.skip)('a folder of another user is refused (root: chown)', async () => {
  const dir = join(root, 'theirs');
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, 65534, 65534);
  await refused(join(dir, 's.sock'), /owned by uid 65534, not this user \(0\)/, /only this user can write/);
});

test('a file that is not a socket is left alone and refused', async () => {
  const dir = join(root, 'file');
  mkdirSync(dir, { mode: 0o700 });
  const path = join(dir, 's.sock');
  writeFileSync(path, 'data');
  await refused(path, /it exists and is not a socket/, 'remove the file');
  assert.ok(existsSync(path));
});

test('a live server keeps its socket; once it is gone, the stale socket is taken over', async () => {
  const dir = join(root, 'live');
  mkdirSync(dir, { mode: 0o700 });
  const path = join(dir, 's.sock');
  const srv = await listen(path);
  try {
    assert.ok(await socketAnswers(path));
    await refused(path, /another server is listening there/, 'stop the other one');
    assert.ok(existsSync(path));
  } finally {
    await new Promise<void>((r) => srv.close(() => r()));
  }
  assert.not.ok(existsSync(path), 'a server closed in order removes its socket');
  // A server killed hard leaves its socket behind: a stale one.
  const r = spawnSync(process.execPath, [
    '-e',
    `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  assert.is(r.signal, 'SIGKILL');
  assert.ok(existsSync(path), 'a stale socket is there');
  assert.not.ok(await socketAnswers(path));
  await claimSocketPath(path, options);
  assert.not.ok(existsSync(path), 'the stale socket was removed');
});

test.run();
