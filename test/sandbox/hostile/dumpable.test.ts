/**
 * Same uid, another process: anything running under a container's uid (a debug sandbox, a stray
 * process of that user) tries to open the container's /proc/PID/mem and, through /proc/PID/fd, its
 * window memfds read-write. The container is not dumpable (PR_SET_DUMPABLE 0 before it maps
 * anything), so /proc/PID/{mem,fd} belong to root and the kernel refuses both.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { simPolicy } from '../helpers.js';
import { testIf, needsRoot } from '../../helpers/skip.js';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';

// Root is needed to run a process as the container's uid.
const rootTest = testIf(needsRoot());

/** What a process of `uid`/`gid` gets trying /proc/PID/mem and every /proc/PID/fd/N read-write. */
const PROBE = `
const fs = require('node:fs');
const pid = process.argv[1];
const out = {};
const tryOpen = (path, flags) => { try { fs.closeSync(fs.openSync(path, flags)); return 'ok'; } catch (e) { return e.code; } };
out.mem = tryOpen('/proc/' + pid + '/mem', 'r+');
let fds = [];
try { fds = fs.readdirSync('/proc/' + pid + '/fd'); out.fdList = 'ok'; } catch (e) { out.fdList = e.code; }
// the container's fds 3..9 (hypercall socket, code, windows, mailbox) when the listing is refused
if (fds.length === 0) fds = ['3', '4', '5', '6', '7', '8', '9'];
out.fds = {};
for (const fd of fds) if (Number(fd) > 2) out.fds[fd] = tryOpen('/proc/' + pid + '/fd/' + fd, 'r+');
process.stdout.write(JSON.stringify(out));
`;

function probeAs(uid: number, gid: number, pid: number): Promise<{ mem: string; fdList: string; fds: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', PROBE, String(pid)], { uid, gid, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`probe exited ${code}: ${err}`))));
  });
}

rootTest("a process of the container's uid cannot open its /proc/PID/mem or its fds", async () => {
  const s = new Supervisor(simPolicy('hostile-dumpable'));
  try {
    await s.start();
    const pid = s.pid!;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
    const gid = Number(/^Gid:\s+(\d+)/m.exec(status)![1]);
    assert.is.not(uid, 0, 'the container runs unprivileged');
    const r = await probeAs(uid, gid, pid);
    assert.is(r.mem, 'EACCES', JSON.stringify(r));
    assert.ok(Object.keys(r.fds).length > 0, JSON.stringify(r));
    for (const [fd, outcome] of Object.entries(r.fds)) assert.ok(outcome === 'EACCES' || outcome === 'ENOENT', `fd ${fd}: ${outcome} ${JSON.stringify(r)}`);
    assert.ok(Object.values(r.fds).includes('EACCES'), JSON.stringify(r));
    assert.is(s.status().state, 'running');
  } finally {
    await s.stop();
  }
});

test.run();
