import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DmaboxError } from '../../common/errors.js';

type ExampleCode = 'ERR_EXAMPLE_ONE' | 'ERR_EXAMPLE_TWO';
/** An area's class, as each area declares its own. */
class ExampleError extends DmaboxError<ExampleCode> {}

test("an area's error keeps a stable code, its own name, and appends the fix to the message", () => {
  const e = new ExampleError('ERR_EXAMPLE_ONE', 'the thing is wrong', { fix: 'do the other thing' });
  assert.is(e.code, 'ERR_EXAMPLE_ONE');
  assert.is(e.name, 'ExampleError');
  assert.is(e.fix, 'do the other thing');
  assert.is(e.message, 'the thing is wrong\n  fix: do the other thing');
  assert.instance(e, DmaboxError);
  assert.instance(e, Error);
});

test('without a fix the message is left as it is; the cause is kept', () => {
  const cause = new Error('EIO');
  const e = new ExampleError('ERR_EXAMPLE_TWO', 'nothing to be done', { cause });
  assert.is(e.message, 'nothing to be done');
  assert.is(e.fix, undefined);
  assert.is(e.cause, cause);
});

test('the code set is closed: a code outside the union does not compile', () => {
  const code: ExampleCode = new ExampleError('ERR_EXAMPLE_TWO', 'x').code;
  assert.is(code, 'ERR_EXAMPLE_TWO');
  // @ts-expect-error: not an ExampleCode
  assert.ok(new ExampleError('ERR_EXAMPLE_THREE', 'x'));
});

test.run();
