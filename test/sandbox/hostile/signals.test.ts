/**
 * Hostile containers and signals: a confined driver, after READY, signals the manager. The kernel
 * refuses it (the container runs under an identity of its own), and the manager carries on.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { simPolicy } from '../helpers.js';
import { testIf, needsRoot } from '../../helpers/skip.js';
import { attacker, attackDone } from './helpers.js';

// Without root the containers run as the invoking user: nothing separates them from the manager.
const rootTest = testIf(needsRoot());

rootTest('a confined driver cannot signal the manager', async () => {
  const s = attacker(simPolicy('hostile-kill-manager'), 'kill-pid', [String(process.pid)]);
  try {
    await s.start();
    const lines = await attackDone(s, 'kill-pid');
    assert.ok(lines.includes(`kill(${process.pid}, 0) -> EPERM`), lines.join('\n'));
    assert.ok(lines.includes(`kill(${process.pid}, SIGKILL) -> EPERM`), lines.join('\n'));
    assert.is(s.status().state, 'running');
  } finally {
    await s.stop();
  }
});

test.run();
