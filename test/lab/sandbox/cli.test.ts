/**
 * Lab test of `dmabox up` and `dmabox status` on real VFIO (INSIDE the lab guest): the lab NVMe
 * policy example (2 queues, MSI-X) comes up in a confined container, the manager leaves root
 * (every thread at its own uid, no capability), status reports it over the control socket, a
 * kill -9 of the container is followed by quarantine (reset on the device fd) and a restart through
 * the spawner without root, SIGTERM stops it in order and the command exits 0.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

function inLab(): void {
  if (process.env.DMABOX_LAB !== '1') {
    throw new Error('this test runs only inside the lab guest (DMABOX_LAB=1): use `npm run test:lab` or `dmabox lab run -- ...` (appliance/lab/README.md)');
  }
}

const cli = fileURLToPath(new URL('../../../cli/main.js', import.meta.url));
const policy = fileURLToPath(new URL('../../../../policies/examples/lab-nvme.yaml', import.meta.url));
const control = '/run/dmabox-lab-cli-test.sock';

test('dmabox up on the lab NVMe, status over the control socket, SIGTERM stops in order', async () => {
  inLab();
  const up = spawn(process.execPath, [cli, 'up', policy, '--control', control], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  up.stdout.on('data', (d) => {
    out += String(d);
  });
  up.stderr.on('data', (d) => {
    out += String(d);
  });
  const exited = new Promise<number | null>((r) => up.on('exit', (code) => r(code)));
  const end = Date.now() + 90_000;
  while (!out.includes('up: lab-nvme running')) {
    if (Date.now() > end) {
      up.kill('SIGKILL');
      throw new Error(`not up within 90 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  while (!/^privileges: /m.test(out)) {
    if (Date.now() > end) {
      up.kill('SIGKILL');
      throw new Error(`no privilege line within 90 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(out, /^privileges: the manager is uid 61183 gid 61183 with no capability on any of its \d+ threads/m);
  for (const t of readdirSync(`/proc/${up.pid}/task`)) {
    const text = readFileSync(`/proc/${up.pid}/task/${t}/status`, 'utf8');
    assert.match(text, /^Uid:\s+61183\s+61183\s+61183\s+61183$/m);
    assert.match(text, /^CapPrm:\s+0{16}$/m);
    assert.match(text, /^CapEff:\s+0{16}$/m);
  }
  const first = Number(/container pid (\d+)/.exec(out)?.[1]);
  process.kill(first, 'SIGKILL');
  while (!/lab-nvme restart: restart 1/.test(out) || !/lab-nvme ready: /.test(out.slice(out.indexOf('restart: restart 1')))) {
    if (Date.now() > end + 90_000) {
      up.kill('SIGKILL');
      throw new Error(`no restart after the drop within 90 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const status = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [cli, 'status', '--json', '--control', control], (e, stdout) => (e ? reject(e) : resolve(stdout))),
  );
  const st = JSON.parse(status) as {
    manager: { uid: number };
    spawner: { pid: number } | null;
    sandboxes: { name: string; state: string; device: string; uid: number; windows: unknown[]; restarts: number }[];
  };
  assert.is(st.manager.uid, 61183);
  assert.ok(st.spawner && st.spawner.pid > 0);
  assert.is(st.sandboxes[0]!.restarts, 1);
  assert.is(st.sandboxes[0]!.name, 'lab-nvme');
  assert.is(st.sandboxes[0]!.state, 'running');
  assert.is(st.sandboxes[0]!.device, 'vfio:0000:00:01.0');
  // Its sandbox's own identity, from the dynamic range.
  const uid = st.sandboxes[0]!.uid;
  if (!(uid >= 61184 && uid <= 65519 && uid !== 65534)) up.kill('SIGKILL');
  assert.ok(uid >= 61184 && uid <= 65519 && uid !== 65534, `uid ${uid}`);
  assert.is(st.sandboxes[0]!.windows.length, 4);
  up.kill('SIGTERM');
  assert.is(await exited, 0);
  assert.match(out, /lab-nvme quarantine: bus mastering off, function-level reset done/);
  assert.match(out, /, msix, /);
  assert.match(out, /stopped: containers gone, devices quarantined, windows unmapped/);
});

test.run();
