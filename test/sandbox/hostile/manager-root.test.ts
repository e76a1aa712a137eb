/**
 * Hostile containers and the manager's privilege: a confined driver, after READY, looks at what it
 * would hold if it took the manager over (a bug in the code that parses what containers write). The
 * manager has left root by then: its uid is not 0 and it holds no capability.
 */
import { spawn } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { testIf, needsRoot } from '../../helpers/skip.js';
import { until } from '../helpers.js';

const rootTest = testIf(needsRoot());
const here = fileURLToPath(import.meta.url);
const MANAGER = fileURLToPath(new URL(`./fixtures/manager${extname(here)}`, import.meta.url));

rootTest('a driver that took the manager over would hold no root: uid not 0, no capability', async () => {
  const m = spawn(process.execPath, [...process.execArgv, MANAGER, 'hostile-manager-root', 'manager-root', 'MANAGER_PID'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  m.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  m.stderr.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  try {
    await until('the attack to finish', () => /attack manager-root: (done|threw)/.test(out), 30_000);
    const report = /attack manager-root: (uid .*|unreachable.*)$/m.exec(out)?.[1];
    assert.ok(report, out);
    if (report.startsWith('unreachable')) return; // its own PID namespace: the manager is not even visible
    const uids = /^uid (\d+) (\d+) (\d+) (\d+)/.exec(report);
    assert.ok(uids, report);
    for (const u of uids.slice(1)) assert.is.not(Number(u), 0, `the manager runs as root: ${report}`);
    assert.match(report, /CapPrm 0{16} CapEff 0{16} CapAmb 0{16}$/, report);
  } finally {
    m.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    m.kill('SIGKILL');
  }
});

test.run();
