/**
 * Lab: the TAP linkback on real VFIO. The guest's TAP interface (10.0.2.15/24) pings slirp's
 * 10.0.2.2 through QEMU's e1000e, driven by our driver through vfio-pci behind VT-d
 * (test/linkback/tap/lab-ping.ts does the work in its own process, so a wedged device cannot take
 * the rest of the lab suite with it). Both interrupt modes in-process; MSI-X through a sandboxed
 * driver container that is killed and restarted between two pings (test/linkback/tap-sandbox/lab-ping.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const inProcess = join(here, '..', '..', 'linkback', 'tap', 'lab-ping.js');
const sandboxed = join(here, '..', '..', 'linkback', 'tap-sandbox', 'lab-ping.js');

function runPing(script: string, mode: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

test('inside the lab', () => {
  assert.is(process.env.DMABOX_LAB, '1', 'lab tests run only inside the QEMU lab (npm run test:lab)');
  assert.ok(process.env.DMABOX_LAB_E1000E, 'the lab machine has an e1000e');
});

for (const mode of ['msix', 'poll']) {
  test(`the guest's TAP pings 10.0.2.2 through the e1000e driver on VFIO (${mode})`, async () => {
    const r = await runPing(inProcess, mode);
    assert.is(r.code, 0, r.out);
    assert.match(r.out, /3 packets transmitted, 3 (packets )?received/);
  });
}

test('the same through a sandboxed driver (its own confined container, packet rings), across a kill -9 and restart (MSI-X)', async () => {
  const r = await runPing(sandboxed, 'msix');
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /lab-ping: PASS/);
  assert.match(r.out, /"attaches":2/, 'a second container attached after the kill');
  assert.match(r.out, /3 packets transmitted, 3 (packets )?received/);
});

test.run();
