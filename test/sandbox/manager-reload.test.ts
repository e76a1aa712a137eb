/** The manager's add and remove (what a reload does), on the simulator. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Manager } from '../../sandbox/manager/manager.js';
import { SandboxError } from '../../sandbox/manager/errors.js';
import { simPolicy } from './helpers.js';

test('add starts a sandbox, a second of one name is refused, remove stops it and forgets it, an unknown name is nothing', async () => {
  const m = new Manager([], { controlPath: null });
  await m.start();
  try {
    const s = await m.add(simPolicy('reload-a'));
    assert.is(s.state, 'running');
    assert.equal(
      m.sandboxes.map((x) => x.name),
      ['reload-a'],
    );
    try {
      await m.add(simPolicy('reload-a'));
      assert.unreachable('two sandboxes of one name');
    } catch (e) {
      assert.ok(e instanceof SandboxError && e.code === 'ERR_SANDBOX_STATE' && /runs already/.test(e.message), String(e));
    }
    await m.remove('nope');
    await m.remove('reload-a');
    assert.is(s.state, 'stopped');
    assert.equal(m.sandboxes, []);
  } finally {
    await m.stop();
  }
});

test.run();
