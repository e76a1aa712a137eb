/**
 * fd hygiene, end to end: a sandbox started by a manager process that holds an fd it inherited
 * without CLOEXEC (a root-owned 0600 file, as an invoking shell leaves one open) never passes it
 * to its container; the container's fds from 3 on are exactly the ones its ABI lists (the ones
 * the incarnation put in the launch spec, checked by device and inode), and no other fd of the
 * container is one of the manager's.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, openSync, readdirSync, statSync, writeFileSync, closeSync, fstatSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSys, F_GETFD, F_SETFD, FD_CLOEXEC } from 'linux-sys';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { launch, type LaunchSpec } from '../../../sandbox/spawner/launch.js';
import { closeOnExecAll } from '../../../sandbox/spawner/fds.js';
import { simPolicy } from '../helpers.js';
import { testIf, needsRoot } from '../../helpers/skip.js';

const rootTest = testIf(needsRoot());
const sys = defaultSys();

const key = (st: { dev: number; ino: number }): string => `${st.dev}:${st.ino}`;

/** dev:ino of each open fd of `pid` (from 3 on, or all). */
function fdInodes(pid: number | 'self', from = 3): Map<number, string> {
  const out = new Map<number, string>();
  for (const n of readdirSync(`/proc/${pid}/fd`).map(Number)) {
    if (n < from) continue;
    try {
      out.set(n, key(statSync(`/proc/${pid}/fd/${n}`)));
    } catch {
      // closed meanwhile (the directory's own fd)
    }
  }
  return out;
}

test('closeOnExecAll marks every fd from 3 on close-on-exec and says which were not', () => {
  const fd = openSync('/proc/self/status', 'r');
  sys.fcntl(fd, F_SETFD, 0);
  try {
    assert.ok(closeOnExecAll(sys).includes(fd));
    assert.is(sys.fcntl(fd, F_GETFD, 0) & FD_CLOEXEC, FD_CLOEXEC);
    assert.not.ok(closeOnExecAll(sys).includes(fd));
  } finally {
    closeSync(fd);
  }
});

rootTest('an fd the manager inherited without CLOEXEC never reaches a container; its fds 3.. are exactly the ABI ones', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-leak-'));
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'root only\n');
  chmodSync(secret, 0o600);
  const leak = openSync(secret, 'r+');
  sys.fcntl(leak, F_SETFD, 0); // as the invoking shell would leave it
  let spec: LaunchSpec | undefined;
  let given: string[] = [];
  const s = new Supervisor(simPolicy('fd-hygiene'), {
    launcher: {
      launch: (sp) => {
        spec = sp;
        // While the incarnation still holds them: what each of the container's fds 3.. must be.
        given = sp.fds.map((n) => key(fstatSync(n)));
        return launch(sp);
      },
    },
  });
  try {
    await s.start();
    const pid = s.pid!;
    const links = readdirSync(`/proc/${pid}/fd`).map((n) => readlinkSync(`/proc/${pid}/fd/${n}`));
    assert.not.ok(links.includes(secret), `the container holds ${secret}: ${links.join(' ')}`);
    assert.ok(spec && given.length >= 5, 'the launch spec names the ABI fds');
    const theirs = fdInodes(pid);
    given.forEach((k, i) => assert.is(theirs.get(3 + i), k, `fd ${3 + i}`));
    // Every other fd of the container is its own (Node's epoll, eventfds, pipes): none is the manager's.
    const mine = new Set(fdInodes('self', 0).values());
    // (Anonymous inodes, eventfds and epoll, all share one inode, and /dev/null is everyone's: those
    // the container opened itself, as Node does at start.)
    for (const [n, k] of theirs) {
      const link = readlinkSync(`/proc/${pid}/fd/${n}`);
      if (n >= 3 + given.length && !link.startsWith('anon_inode:') && link !== '/dev/null')
        assert.not.ok(mine.has(k), `container fd ${n} (${link}) is one of the manager's`);
    }
  } finally {
    await s.stop();
    closeSync(leak);
  }
});

test.run();
