/**
 * `npm start` smoke: the command npm start runs after its build (`dmabox demo`), spawned as a real
 * process with its sockets moved into a temp dir: it prints a `ready:` line, the socket and how to
 * use it; nbdinfo reaches the export it printed; SIGINT stops it in order (linkbacks, then
 * containers and devices), it exits 0, and its NBD and control sockets are gone.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { must, needTools, tempDir, until } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const fromSource = import.meta.url.endsWith('.ts');
// test/linkback/sandbox -> the checkout (sources) or dist/test/linkback/sandbox -> dist.
const root = join(here, '../../..');
const checkout = fromSource ? root : join(root, '..');

test('npm start: ready line, nbdinfo on the printed socket, SIGINT stops in order, sockets gone', async () => {
  await needTools(['nbdinfo']);
  const pkg = JSON.parse(readFileSync(join(checkout, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.match(pkg.scripts['start']!, /^npm run build && node dist\/cli\/main\.js demo$/, 'npm start = build, then dmabox demo');
  const tmp = tempDir();
  const sock = join(tmp.dir, 'demo.sock');
  const control = join(tmp.dir, 'control.sock');
  const args = fromSource ? ['--conditions=source', '--import', 'tsx', join(root, 'cli/main.ts')] : [join(root, 'cli/main.js')];
  const child = spawn(process.execPath, [...args, 'demo', '--socket', sock, '--control', control], { cwd: checkout, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString('utf8');
  });
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  child.on('exit', (code, signal) => {
    exit = { code, signal };
  });
  try {
    await until('the ready line', () => /^ready: /m.test(out) || exit !== undefined, 60_000);
    assert.is(exit, undefined, `demo exited early: ${out}${err}`);
    assert.match(out, /^(root: each sandbox runs as an identity of its own|not root: containers run as the invoking user)/m);
    const uri = /^ {2}nbdinfo '([^']+)'$/m.exec(out)?.[1];
    assert.is(uri, `nbd+unix:///demo?socket=${sock}`, out);
    assert.match(out, /^ {2}nbdcopy disk\.img '/m);
    assert.match(out, /^ {2}qemu-img info '/m);
    assert.ok(out.includes(`nbd-client -unix ${sock} /dev/nbd0 -N demo`), out);
    assert.ok(out.includes(`status --control ${control}`), out);
    // The NIC half: either its linkback is up, or the demo says plainly it is not available.
    assert.ok(
      /^demo-e1000e: (sandbox|linkback) (NOT AVAILABLE YET|FAILED): \S/m.test(out) || /^demo-e1000e: (tap linkback at |running, no linkback)/m.test(out),
      out,
    );
    const info = JSON.parse(await must('nbdinfo', ['--json', uri!])) as { exports: Record<string, unknown>[] };
    assert.is(info.exports[0]!['export-size'], 128 * 1024 * 1024);
    child.kill('SIGINT');
    await until('the demo to exit', () => exit !== undefined, 20_000);
    assert.equal(exit, { code: 0, signal: null }, `${out}${err}`);
    const order = ['SIGINT: stopping', ' linkback(s): clients answered', 'stopping ', 'quarantine: bus mastering off', 'stopped\n'].map((s) => out.indexOf(s));
    assert.ok(
      order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1]!)),
      `shutdown order: ${order.join(' ')}\n${out}`,
    );
    assert.not.ok(existsSync(sock), 'the NBD socket is gone');
    assert.not.ok(existsSync(control), 'the control socket is gone');
  } finally {
    if (exit === undefined) child.kill('SIGKILL');
    tmp.remove();
  }
});

test.run();
