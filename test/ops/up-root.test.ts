/**
 * As root, `dmabox up` run as its own process leaves root after set-up; the notify socket, opened
 * and connected while root, still reaches a NOTIFY_SOCKET only root may write to: READY=1 and the
 * watchdog arrive after the drop, and the metrics endpoint still reads the containers.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { needsRoot, testIf } from '../helpers/skip.js';
import { until } from '../sandbox/helpers.js';
import { httpGetUnix, NotifyListener, sampleValue } from './helpers.js';

const rootTest = testIf(needsRoot());
const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

rootTest('after the privilege drop: READY=1 and WATCHDOG=1 to a root-only notify socket, metrics of both containers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-ops-root-'));
  writeFileSync(
    join(dir, 'p.yaml'),
    ['ops-r1', 'ops-r2']
      .map(
        (n) =>
          `version: 1\nname: ${n}\ndevice: { sim: nvme, capacity: 1MiB, blockSize: 512 }\ndriver: { name: nvme, queues: 1, depth: 16 }\nwindows: [ { size: 512KiB }, { size: 2MiB } ]\n`,
      )
      .join('---\n'),
  );
  const notifyPath = join(dir, 'notify');
  const notify = new NotifyListener(notifyPath);
  chmodSync(notifyPath, 0o600);
  assert.is(statSync(notifyPath).uid, 0);
  const metrics = join(dir, 'metrics.sock');
  const child = spawn(process.execPath, [main, 'up', join(dir, 'p.yaml'), '--control', join(dir, 'control.sock'), '--metrics', metrics], {
    env: { ...process.env, NOTIFY_SOCKET: notifyPath, WATCHDOG_USEC: '200000', JOURNAL_STREAM: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await until('READY=1', () => notify.assignments().includes('READY=1'), 60_000);
    assert.match(out, /privileges: the manager is uid \d+ gid \d+ with no capability/);
    const readyAt = notify.messages.findIndex((m) => m.startsWith('READY=1'));
    await until('WATCHDOG=1 after READY', () => notify.messages.slice(readyAt).filter((m) => m === 'WATCHDOG=1').length >= 2, 5000);
    const scrape = (await httpGetUnix(metrics)).body;
    for (const s of ['ops-r1', 'ops-r2']) {
      assert.is(sampleValue(scrape, `dmabox_sandbox_state{sandbox="${s}",state="running"}`), 1);
      assert.ok(sampleValue(scrape, `dmabox_container_memory_bytes{sandbox="${s}"}`)! > 1_000_000, scrape);
    }
  } finally {
    child.kill('SIGTERM');
    assert.is(await exited, 0, out);
    notify.close();
  }
  assert.ok(notify.assignments().includes('STOPPING=1'));
  rmSync(dir, { recursive: true, force: true });
});

test.run();
