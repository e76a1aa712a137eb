import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DmaboxError } from '../../common/errors.js';

test('DmaboxError keeps a stable code and appends the fix to the message', () => {
  const e = new DmaboxError('ERR_EXAMPLE', 'the thing is wrong', { fix: 'do the other thing' });
  assert.is(e.code, 'ERR_EXAMPLE');
  assert.is(e.name, 'DmaboxError');
  assert.ok(e.message.includes('fix: do the other thing'));
  assert.instance(e, Error);
});

test.run();
