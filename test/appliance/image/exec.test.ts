import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplianceError } from '../../../appliance/image/errors.js';
import { execOk, execTool } from '../../../appliance/image/exec.js';

const dir = mkdtempSync(join(tmpdir(), 'dmabox-exec-'));

async function rejection(p: Promise<unknown>): Promise<ApplianceError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, ApplianceError);
    return e as ApplianceError;
  }
  assert.unreachable('resolved');
  throw new Error('unreachable');
}

test('a tool that is not installed is ERR_IMAGE_TOOL_MISSING, pointing at the set-up script', async () => {
  const e = await rejection(execTool('dmabox-no-such-tool', []));
  assert.is(e.code, 'ERR_IMAGE_TOOL_MISSING');
  assert.match(e.message, /'dmabox-no-such-tool' is not installed/);
  assert.match(e.fix!, /npm run setup/);
});

test('a tool that exists but cannot be started is ERR_IMAGE_COMMAND with the reason, not a bare Node error', async () => {
  const file = join(dir, 'not-executable');
  writeFileSync(file, '#!/bin/sh\nexit 0\n');
  chmodSync(file, 0o644);
  const e = await rejection(execTool(file, []));
  assert.is(e.code, 'ERR_IMAGE_COMMAND');
  assert.match(e.message, /could not be started: EACCES/);
  assert.is((e.cause as NodeJS.ErrnoException).code, 'EACCES');
});

test("execOk: a non-zero exit is an error with the tool's last words, under the code the caller names", async () => {
  const e = await rejection(
    execOk('sh', ['-c', 'echo first >&2; echo last words >&2; exit 3'], { what: 'the probe', code: 'ERR_IMAGE_KERNEL_DOWNLOAD', fix: 'try again' }),
  );
  assert.is(e.code, 'ERR_IMAGE_KERNEL_DOWNLOAD');
  assert.match(e.message, /the probe failed: 'sh -c .*' exited 3\n {4}first\n {4}last words/);
  assert.is(e.fix, 'try again');
  const d = await rejection(execOk('sh', ['-c', 'exit 1'], { what: 'plain' }));
  assert.is(d.code, 'ERR_IMAGE_COMMAND');
  assert.is((await execOk('sh', ['-c', 'echo ok'], { what: 'fine' })).stdout, 'ok\n');
});

test('a tool that outlives its bound is killed: ERR_IMAGE_COMMAND', async () => {
  const e = await rejection(execTool('sleep', ['5'], { timeoutMs: 50 }));
  assert.is(e.code, 'ERR_IMAGE_COMMAND');
  assert.match(e.message, /took longer than 0.05 s and was killed/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
