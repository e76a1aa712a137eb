/**
 * Installs the real 'driver' filter in a child Node process (seccomp works on this machine, no
 * IOMMU needed) and checks from outside and inside that it holds: Seccomp 2 and NoNewPrivs 1 in
 * /proc/PID/status, files refused with EPERM, timers and stdout still working, exec killing the process.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const child = join(here, 'fixtures', `confined-child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`);
const nodeArgs = import.meta.url.endsWith('.ts') ? ['--conditions=source', '--import', 'tsx'] : [];

function runChild(mode: string): Promise<{ code: number | null; signal: string | null; out: string; status: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...nodeArgs, child, mode], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let status = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('CONFINED\n') && !status) {
        status = readFileSync(`/proc/${p.pid}/status`, 'utf8');
        p.stdin.write('go\n');
      }
    });
    p.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`child timed out: ${out}`));
    }, 20000);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, status });
    });
  });
}

test('a confined child has seccomp mode 2 and no_new_privs, keeps its event loop, and cannot open files', async () => {
  const r = await runChild('normal');
  assert.match(r.status, /^Seccomp:\s+2$/m);
  assert.match(r.status, /^NoNewPrivs:\s+1$/m);
  assert.match(r.out, /open: EPERM/);
  assert.match(r.out, /timer fired/);
  assert.is(r.code, 0, r.out);
});

test('a confined child cannot start another program (its pipes are refused before fork; execve itself is a kill rule)', async () => {
  const r = await runChild('exec');
  assert.match(r.out, /exec: EPERM/);
  assert.not.match(r.out, /exec: succeeded/);
  assert.is(r.code, 0, r.out);
});

test.run();
