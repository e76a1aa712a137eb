/**
 * launch() for real (root: identities and cgroups; bubblewrap from setup-host.sh): the child's fd
 * table is exactly 0, 1, 2 and the fds given; confined, it is in its own PID, mount, network, IPC
 * and UTS namespaces with the minimal tree; the pid reported is the program's; its cgroup holds it
 * with the limits and is gone after; exits and signals come through bwrap intact; an allocation
 * past the memory limit ends in the OOM killer, reported.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import { Socket } from 'node:net';
import { defaultSys, EFD_CLOEXEC, F_SETFD, O_CLOEXEC } from 'linux-sys';
import { launch, type Launched, type LaunchSpec } from '../../../sandbox/spawner/launch.js';
import { launchHost } from '../../../sandbox/spawner/host.js';
import { testIf, needsRoot } from '../../helpers/skip.js';
import { until } from '../helpers.js';

const rootTest = testIf(needsRoot());
const sys = defaultSys();

/** Launch `argv` with an eventfd and a memfd as fds 3 and 4; collect its stdout and stderr. */
async function run(argv: string[], extra: Partial<LaunchSpec> = {}): Promise<{ l: Launched; out: Promise<string>; fds: number[]; so: () => string }> {
  const [r, w] = sys.pipe2(O_CLOEXEC);
  const ev = sys.eventfd(0, EFD_CLOEXEC);
  const mem = sys.memfdCreate('launch-test', 1);
  const l = await launch({
    sandbox: 'launch-test',
    role: 'driver',
    argv,
    env: { PATH: '/usr/bin:/bin' },
    stdout: w,
    stderr: w,
    fds: [ev, mem],
    limits: { memoryBytes: 256 << 20, pids: 64, cpuWeight: 100 },
    confined: true,
    ...extra,
  });
  sys.close(w);
  const s = new Socket({ fd: r, readable: true, writable: false });
  let text = '';
  s.on('data', (b: Buffer) => (text += b.toString('utf8')));
  const out = new Promise<string>((resolve) => s.on('close', () => resolve(text)));
  return { l, out, fds: [ev, mem], so: () => text };
}

rootTest('bubblewrap is installed and builds namespaces here (scripts/setup-host.sh installs it)', () => {
  const h = launchHost();
  assert.ok(h.namespaces.bwrap, h.namespaces.why);
  assert.is.not(h.cgroups.version, 0, h.cgroups.version === 0 ? h.cgroups.why : '');
});

rootTest('the fd table is exactly 0, 1, 2 and the fds given: an inherited fd without CLOEXEC and bwrap info fd stay out', async () => {
  const leak = openSync('/proc/self/status', 'r');
  sys.fcntl(leak, F_SETFD, 0); // as an invoking shell leaves its fds
  try {
    for (const confined of [true, false]) {
      // `; true`: the shell stays (no exec of ls), so /proc/$$/fd is the shell's table, with no pipe of its own open.
      const { l, out, fds } = await run(['/bin/sh', '-c', 'ls -l /proc/$$/fd; true'], { confined });
      const text = (await out)
        .split('\n')
        .filter((x) => x.includes(' -> '))
        .map((x) => x.replace(/^.* (\d+) -> /, '$1 '))
        .join('\n');
      assert.equal(await l.exit, { code: 0, signal: null, oom: false });
      const table = text
        .trim()
        .split('\n')
        .map((line) => line.split(' ')[0]);
      assert.equal(table.sort(), ['0', '1', '2', '3', '4'], text);
      assert.match(text, /^3 anon_inode:\[eventfd\]$/m);
      assert.match(text, /^4 \/memfd:launch-test/m);
      for (const n of fds) sys.close(n);
    }
  } finally {
    sys.close(leak);
  }
});

rootTest('confined: own identity and namespaces, the minimal tree, the program own pid; its cgroup holds it and is gone after', async () => {
  const ownBefore = readFileSync('/proc/self/cgroup', 'utf8');
  const { l, out, fds, so } = await run([
    '/bin/sh',
    '-c',
    'id -u; echo pid $$; ls /; ls /dev; cat /proc/net/dev | tail -n +3 | cut -d: -f1; echo end; sleep 30',
  ]);
  // The reported pid is the program (sh), not bwrap: its command line is ours (once bwrap's child
  // has exec'd it: the pid is found as soon as the child exists, which may be just before its exec).
  const cmd = (): string => readFileSync(`/proc/${l.pid}/cmdline`, 'utf8').split('\0')[0]!;
  await until("the program to be exec'd", () => cmd() === '/bin/sh', 5000).catch(() => undefined);
  assert.is(cmd(), '/bin/sh');
  for (const ns of ['pid', 'mnt', 'net', 'ipc', 'uts', 'user']) assert.is.not(readlinkSync(`/proc/${l.pid}/ns/${ns}`), readlinkSync(`/proc/self/ns/${ns}`), ns);
  assert.ok(l.uid >= 61184 && l.uid <= 65519 && l.uid !== 65534, String(l.uid));
  assert.match(readFileSync(`/proc/${l.pid}/status`, 'utf8'), new RegExp(`^Uid:\\s+${l.uid}\\s+${l.uid}\\s+${l.uid}\\s+${l.uid}$`, 'm'));
  assert.match(readFileSync(`/proc/${l.pid}/status`, 'utf8'), /^CapEff:\s+0+$/m);
  assert.ok(l.cgroup && existsSync(l.cgroup), String(l.cgroup));
  const name = l.cgroup!.split('/').pop()!;
  assert.ok(readFileSync(`/proc/${l.pid}/cgroup`, 'utf8').includes(name), 'the program is in its cgroup');
  // The launcher forked inside the cgroup (Cgroup.forkInside) and is back where it was.
  assert.is(readFileSync('/proc/self/cgroup', 'utf8'), ownBefore, 'the launcher left the cgroup again');
  assert.equal(l.missing, []);
  await until('its output', () => so().includes('end\n'), 10_000);
  l.kill('SIGTERM');
  const exit = await l.exit;
  assert.equal(exit, { code: null, signal: 'SIGTERM', oom: false });
  const text = await out;
  const [uid, pid, ...rest] = text.trim().split('\n');
  assert.is(Number(uid), l.uid);
  assert.is(pid, 'pid 2', 'pid 2 in its own PID namespace (bwrap init is 1)');
  // Its root: only the binds (and the folder the project's binds sit in); /dev: null, zero, urandom.
  const top = process.cwd().split('/')[1]!;
  const root = rest.slice(0, rest.indexOf('null'));
  for (const d of root) assert.ok(['bin', 'dev', 'lib', 'lib32', 'lib64', 'libx32', 'proc', 'sbin', 'usr', top].includes(d), `${d} in its tree:\n${text}`);
  assert.equal(rest.slice(root.length, root.length + 3), ['null', 'urandom', 'zero']);
  // (A checkout under /tmp or /home shows that folder, holding only the project's binds.)
  for (const absent of ['etc', 'tmp', 'sys', 'root', 'home'].filter((d) => d !== top))
    assert.not.ok(rest.includes(absent), `${absent} is not in its tree:\n${text}`);
  assert.ok(rest.includes('null') && rest.includes('urandom') && !rest.includes('vfio') && !rest.includes('kmsg'), text);
  assert.ok(rest.map((x) => x.trim()).includes('lo') && !rest.some((x) => /eth|ens|enp/.test(x)), `only lo: ${text}`);
  assert.not.ok(existsSync(l.cgroup!), 'its cgroup is removed after it is gone');
  for (const n of fds) sys.close(n);
});

rootTest('exit codes and signals come through bwrap as the program gave them', async () => {
  const a = await run(['/bin/sh', '-c', 'exit 3']);
  assert.equal(await a.l.exit, { code: 3, signal: null, oom: false });
  const b = await run(['/bin/sh', '-c', 'kill -KILL $$']);
  assert.equal(await b.l.exit, { code: null, signal: 'SIGKILL', oom: false });
  for (const n of [...a.fds, ...b.fds]) sys.close(n);
});

rootTest('past its memory limit the process is killed by its cgroup OOM killer, and the exit says so', async () => {
  const { l, fds } = await run([process.execPath, '-e', 'const a = []; for (;;) a.push(Buffer.alloc(4 << 20, 1));'], {
    limits: { memoryBytes: 96 << 20, pids: 64, cpuWeight: 100 },
  });
  assert.equal(await l.exit, { code: null, signal: 'SIGKILL', oom: true });
  for (const n of fds) sys.close(n);
});

rootTest('where bwrap cannot build namespaces the process still runs, under its identity and cgroup, and says what is missing', async () => {
  const host = { ...launchHost(), namespaces: { why: 'bubblewrap (bwrap) is not installed' } };
  const [r, w] = sys.pipe2(O_CLOEXEC);
  const l = await launch(
    {
      sandbox: 'launch-test-nons',
      role: 'driver',
      argv: ['/bin/sh', '-c', 'id -u'],
      env: { PATH: '/usr/bin:/bin' },
      stdout: w,
      stderr: w,
      fds: [],
      limits: { memoryBytes: 64 << 20, pids: 16, cpuWeight: 100 },
      confined: true,
    },
    host,
  );
  sys.close(w);
  assert.equal(l.missing.length, 1);
  assert.match(l.missing[0]!, /^no namespaces \(bubblewrap \(bwrap\) is not installed\): it sees the host's processes, files and network/);
  assert.ok(l.cgroup);
  assert.equal(await l.exit, { code: 0, signal: null, oom: false });
  const s = new Socket({ fd: r, readable: true, writable: false });
  let text = '';
  s.on('data', (b: Buffer) => (text += b.toString('utf8')));
  await new Promise((resolve) => s.on('close', resolve));
  assert.is(Number(text.trim()), l.uid);
});

test.run();
