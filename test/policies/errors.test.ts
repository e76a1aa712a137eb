import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DmaboxError } from '../../common/errors.js';
import { PolicyError, parsePolicies, type PolicyCode } from '../../policies/loader.js';

test('PolicyError is a DmaboxError with the one policy code, every problem in its message and its list', () => {
  let err: PolicyError | undefined;
  try {
    parsePolicies('version: 2\n', 'p.yaml');
  } catch (e) {
    err = e as PolicyError;
  }
  assert.instance(err, PolicyError);
  assert.instance(err, DmaboxError);
  const code: PolicyCode = err!.code;
  assert.is(code, 'ERR_POLICY_INVALID');
  assert.ok(err!.problems.length >= 1);
  for (const p of err!.problems) assert.ok(err!.message.includes(`${p.file}:${p.line}: `), p.message);
  assert.match(err!.message, /fix: correct the fields named above/);
  // @ts-expect-error: PolicyCode is closed; another area's code is not one of it
  const other: PolicyCode = 'ERR_DMA_ARG';
  assert.ok(other);
});

test.run();
