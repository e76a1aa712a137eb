/**
 * Hostile containers and another container's memory: a process of another sandbox's identity (an
 * unconfined debug sandbox: no seccomp, so it may open files) opens a confined container's
 * /proc/PID/mem and its window memfds through /proc/PID/fd read-write. The kernel refuses both:
 * every sandbox has an identity of its own, so the ptrace access check fails.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { simPolicy } from '../helpers.js';
import { testIf, needsRoot } from '../../helpers/skip.js';
import { attacker, attackDone } from './helpers.js';

// Without root every container runs as the invoking user: there is no identity to separate them.
const rootTest = testIf(needsRoot());

function uidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Uid:'))!;
  return Number(line.split(/\s+/)[1]);
}

rootTest("another sandbox's process cannot open a container's /proc/PID/mem or its window memfds read-write", async () => {
  const victim = new Supervisor(simPolicy('victim-proc-mem'));
  let a: Supervisor | undefined;
  try {
    await victim.start();
    const pid = victim.pid!;
    // fd 4 the code image, 5 the register mailbox, 7 and 8 the two windows (sandbox/abi/README.md).
    a = attacker(simPolicy('hostile-proc-mem', 'unconfined: true\ncontainer: { seccomp: none }'), 'proc-mem', [String(pid), '4', '5', '7', '8']);
    await a.start();
    // Two sandboxes, two identities: in status and in /proc.
    assert.is.not(a.status().uid, victim.status().uid);
    assert.is.not(uidOf(a.pid!), uidOf(pid));
    assert.is(uidOf(pid), victim.status().uid);
    const lines = await attackDone(a, 'proc-mem');
    const text = lines.join('\n');
    assert.ok(lines.includes(`open /proc/${pid}/mem r+ -> EACCES`), text);
    for (const fd of [4, 5, 7, 8]) assert.ok(lines.includes(`open /proc/${pid}/fd/${fd} r+ -> EACCES`), text);
    assert.is(victim.status().state, 'running');
  } finally {
    await a?.stop();
    await victim.stop();
  }
});

test.run();
