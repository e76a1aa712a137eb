/** `dmabox up`'s operations options refused before anything starts: exit 2 and the reason. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run as up } from '../../cli/up.js';

async function refused(argv: string[], env: NodeJS.ProcessEnv, re: RegExp): Promise<void> {
  const c = { out: '', err: '' };
  const code = await up(argv, { out: (s) => void (c.out += s), err: (s) => void (c.err += s) }, new EventEmitter(), env);
  assert.is(code, 2, c.err);
  assert.match(c.err, re);
  assert.is(c.out, '', 'nothing started, nothing logged');
}

test('bad --metrics, --log-format, NOTIFY_SOCKET, an empty policy folder, a missing value', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-up-args-'));
  mkdirSync(join(dir, 'empty'));
  const p = join(dir, 'p.yaml');
  try {
    await refused([p, '--metrics', '0.0.0.0:9464'], {}, /ERR_OPS_METRICS_ADDRESS: --metrics 0\.0\.0\.0:9464: 0\.0\.0\.0 is not a loopback address/);
    await refused([p, '--log-format', 'xml'], {}, /ERR_OPS_LOG_FORMAT/);
    await refused([p], { NOTIFY_SOCKET: 'relative' }, /ERR_OPS_NOTIFY: NOTIFY_SOCKET=relative/);
    await refused([join(dir, 'empty')], {}, /ERR_OPS_POLICY_DIR: the policy folder .*empty holds no/);
    await refused([p, '--metrics'], {}, /--metrics needs a value/);
    await refused([p, '--log-format'], {}, /--log-format needs a value\nusage: dmabox up POLICY\|FOLDER/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
