/**
 * Hostile containers and memory: a confined driver, after READY, allocates native memory (outside
 * the JS heap limit) far past its policy's memory limit. Its cgroup's OOM killer kills it; the
 * supervisor sees an OOM kill, treats it as a crash (quarantine, restart) and its events say OOM.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { simPolicy, until } from '../helpers.js';
import { testIf, needsRoot } from '../../helpers/skip.js';
import { attacker } from './helpers.js';

// Cgroups need root (not root: the launch reports no cgroup, and nothing limits the container).
const rootTest = testIf(needsRoot());

rootTest('a container allocating past its memory limit is OOM-killed by its cgroup, and restarted', async () => {
  const s = attacker(simPolicy('hostile-oom', 'container: { memory: 96MiB }'), 'allocate', ['1024']);
  try {
    await s.start();
    await until('an OOM exit', () => s.events.some((e) => e.kind === 'exit' && e.text.includes('OOM')), 30_000);
    const exit = s.events.find((e) => e.kind === 'exit' && e.text.includes('OOM'))!;
    assert.match(exit.text, /killed by SIGKILL \(OOM: its cgroup's memory limit of 100663296 bytes was reached\)/);
    assert.not.ok(
      s.events.some((e) => e.text.includes('was not stopped')),
      'the allocation was stopped',
    );
    await until('a restart', () => s.events.some((e) => e.kind === 'restart'), 10_000);
    assert.ok(s.events.findIndex((e) => e.kind === 'quarantine') > s.events.indexOf(exit), 'quarantined after the OOM kill');
  } finally {
    await s.stop();
  }
});

test.run();
