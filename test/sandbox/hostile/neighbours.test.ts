/**
 * Hostile containers and their neighbours: a confined driver, after READY, aims tgkill/tkill,
 * prlimit64 and fcntl/ioctl signal ownership at a bystander sandbox's container. The seccomp filter
 * refuses each (EPERM) whatever the uids, the bystander keeps running, and nothing is counted
 * against it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { simPolicy } from '../helpers.js';
import { testIf, needsRoot } from '../../helpers/skip.js';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { attacker, attackDone } from './helpers.js';

// Without root every container runs as the invoking user: the same uid, so only the filter could
// stand between them, and the bystander's limits could not be read back from outside to compare.
const rootTest = testIf(needsRoot());

async function withBystander(attack: string, check: (lines: string[], victim: number) => void): Promise<void> {
  const victim = new Supervisor(simPolicy(`bystander-${attack}`));
  let s: Supervisor | undefined;
  try {
    await victim.start();
    const pid = victim.pid!;
    const limitsBefore = readFileSync(`/proc/${pid}/limits`, 'utf8');
    s = attacker(simPolicy(`hostile-${attack}`), attack, [String(pid)]);
    await s.start();
    const lines = await attackDone(s, attack);
    check(lines, pid);
    // The bystander: the same container, still running, nothing against it, its limits unchanged.
    await new Promise((r) => setTimeout(r, 300));
    assert.is(victim.pid, pid, 'the bystander container was not replaced');
    assert.is(victim.status().state, 'running');
    assert.is(victim.crashes, 0);
    assert.is(victim.violations, 0);
    assert.is(readFileSync(`/proc/${pid}/limits`, 'utf8'), limitsBefore);
  } finally {
    await s?.stop();
    await victim.stop();
  }
}

function refused(lines: string[], call: string): void {
  const line = lines.find((l) => l.startsWith(`${call} -> `));
  assert.ok(line, `no report of ${call}:\n${lines.join('\n')}`);
  assert.is(line, `${call} -> EPERM`);
}

rootTest('tgkill/tkill at another container are refused, the bystander keeps running', async () => {
  await withBystander('tgkill', (lines, pid) => {
    refused(lines, `tgkill(${pid}, ${pid}, 0)`);
    refused(lines, `tkill(${pid}, 0)`);
    refused(lines, `tgkill(${pid}, ${pid}, SIGKILL)`);
    refused(lines, `tkill(${pid}, SIGKILL)`);
    refused(lines, `tgkill(${pid} | 1 << 32, ${pid}, SIGKILL)`);
  });
});

rootTest('prlimit64 on another container is refused; on itself it is not', async () => {
  await withBystander('prlimit', (lines, pid) => {
    refused(lines, `prlimit64(${pid}, RLIMIT_NOFILE, NULL, old)`);
    refused(lines, `prlimit64(${pid}, RLIMIT_NOFILE, {1, 1}, NULL)`);
    assert.ok(lines.includes('prlimit64(0, RLIMIT_NOFILE, NULL, old) -> ok'), lines.join('\n'));
    assert.ok(lines.includes('prlimit64(self, RLIMIT_NOFILE, NULL, old) -> ok'), lines.join('\n'));
  });
});

rootTest('F_SETOWN, F_SETOWN_EX, F_SETSIG, F_SETLEASE, FIOSETOWN, SIOCSPGRP and TIOCSTI are refused', async () => {
  await withBystander('fsetown', (lines, pid) => {
    refused(lines, `fcntl(3, F_SETOWN, ${pid})`);
    refused(lines, `fcntl(3, F_SETOWN | 1 << 32, ${pid})`);
    refused(lines, `fcntl(3, F_SETOWN_EX, {F_OWNER_PID, ${pid}})`);
    refused(lines, 'fcntl(3, F_SETSIG, SIGKILL)');
    refused(lines, 'fcntl(3, F_SETLEASE, F_RDLCK)');
    refused(lines, `ioctl(3, FIOSETOWN, ${pid})`);
    refused(lines, `ioctl(3, SIOCSPGRP, ${pid})`);
    refused(lines, 'ioctl(0, TIOCSTI, "x")');
  });
});

test.run();
