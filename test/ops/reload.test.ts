/** Reload's pieces: policy folders, and which policies changed (by resolved content, not by text). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diffPolicies, expandPolicyArgs, policyKey } from '../../ops/reload.js';
import { OpsError } from '../../ops/errors.js';
import { simPolicy } from '../sandbox/helpers.js';

test('a folder is its *.yaml and *.yml files in name order; files and missing paths pass through', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-reload-'));
  for (const f of ['b.yaml', 'a.yml', 'c.txt', 'README']) writeFileSync(join(dir, f), '');
  mkdirSync(join(dir, 'empty'));
  try {
    assert.equal(expandPolicyArgs([dir, '/x/y.yaml']), [join(dir, 'a.yml'), join(dir, 'b.yaml'), '/x/y.yaml']);
    assert.throws(
      () => expandPolicyArgs([join(dir, 'empty')]),
      (e: unknown) => e instanceof OpsError && e.code === 'ERR_OPS_POLICY_DIR' && /holds no \*\.yaml/.test(e.message),
    );
    if (process.getuid?.() !== 0) {
      chmodSync(join(dir, 'empty'), 0);
      assert.throws(
        () => expandPolicyArgs([join(dir, 'empty')]),
        (e: unknown) => (e as OpsError).code === 'ERR_OPS_POLICY_DIR',
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('diff by name and resolved content: added, changed, removed, unchanged', () => {
  const a = simPolicy('pa'),
    b = simPolicy('pb'),
    c = simPolicy('pc');
  const b2 = simPolicy('pb', 'onIommuFault: log');
  // pa written with its default spelled out is the same policy.
  const d = diffPolicies([a, b, c], [simPolicy('pa', 'onIommuFault: stop'), b2, simPolicy('pd')]);
  assert.equal(d.unchanged, ['pa']);
  assert.equal(
    d.changed.map((p) => p.name),
    ['pb'],
  );
  assert.equal(
    d.added.map((p) => p.name),
    ['pd'],
  );
  assert.equal(d.removed, ['pc']);
  // Key order does not matter; bigints are compared by value.
  const shuffled = Object.fromEntries(Object.entries(a).reverse()) as typeof a;
  assert.is(policyKey(shuffled), policyKey(a));
  assert.is(policyKey({ ...a, x: 1n } as never), policyKey({ ...a, x: 1n } as never));
  assert.is.not(policyKey({ ...a, x: 1n } as never), policyKey({ ...a, x: 2n } as never));
});

test.run();
