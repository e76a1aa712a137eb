/**
 * Lab (runs INSIDE the lab guest, DMABOX_LAB=1): the guest kernel's nbd driver on the export of
 * the sandboxed NVMe driver, on real VFIO behind VT-d. The lab policy (policies/examples/
 * lab-nvme.yaml: QEMU's NVMe at 00:01.0, MSI-X, NBD on 127.0.0.1:10809) brought up through the
 * Manager by linkback/service.ts; `nbd-client` attaches /dev/nbd0; mkfs.ext4, mount, files written
 * while the driver container is SIGKILLed with writeback in flight; sync, unmount, detach and attach
 * again (no cache survives), `e2fsck -fn` clean, every file's sha256 as written. The disk is zeroed
 * again at the end (the next test file gets the fresh disk it expects).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startService, type Service } from '../../../linkback/service.js';
import { loadPolicyFiles } from '../../../policies/index.js';
import type { SandboxEvent } from '../../../sandbox/manager/supervisor.js';

const here = dirname(fileURLToPath(import.meta.url));
// test/lab/linkback (sources) or dist/test/lab/linkback (build) -> the checkout.
const checkout = [join(here, '../../..'), join(here, '../../../..')].find((d) => existsSync(join(d, 'policies/examples/lab-nvme.yaml')))!;
const MNT = '/tmp/dmabox-nbd-mnt';
const SRC = '/tmp/dmabox-nbd-src';
const DEV = '/dev/nbd0';
const FILES = 24;
const FILE_BYTES = 512 * 1024;

function sh(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, out: `${stdout}${stderr}${err && code === -1 ? err.message : ''}` });
    });
  });
}

async function must(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await sh(cmd, args, timeoutMs);
  assert.is(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code}: ${r.out.trim()}`);
  return r.out;
}

async function until(what: string, pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const nbdSize = (): number => Number(readFileSync('/sys/block/nbd0/size', 'utf8').trim());
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function attach(nbdClient: string): Promise<void> {
  await must(nbdClient, ['127.0.0.1', '10809', DEV, '-N', 'lab-nvme', '-b', '4096'], 60_000);
  await until('/dev/nbd0 to have a size', () => nbdSize() > 0, 30_000);
}

async function detach(nbdClient: string): Promise<void> {
  await sh(nbdClient, ['-d', DEV], 30_000);
  await until('/dev/nbd0 to be detached', () => nbdSize() === 0, 30_000);
}

test('the kernel nbd driver on the sandboxed NVMe: ext4, a container SIGKILL mid-writeback, fsck clean, checksums match', async () => {
  assert.is(process.env.DMABOX_LAB, '1', 'this test runs only inside the lab guest (DMABOX_LAB=1): npm run test:lab');
  for (const tool of ['mkfs.ext4', 'e2fsck', 'mount', 'umount', 'sync'])
    assert.is((await sh('sh', ['-c', `command -v ${tool}`])).code, 0, `${tool} is missing in the guest`);
  const which = await sh('sh', ['-c', 'command -v nbd-client || ls /usr/sbin/nbd-client /sbin/nbd-client 2>/dev/null | head -1']);
  const nbdClient = which.out.trim().split('\n')[0]!;
  assert.ok(nbdClient, 'nbd-client is missing: install Debian nbd-client on the host (scripts/setup-host.sh PACKAGES); the guest runs the host root');
  // /init loads nbd; ext4 is a module of the guest kernel that /init does not load: take it from
  // the lab's unpacked kernel (the guest sees the checkout at its host path).
  const modules = join(checkout, '.cache/lab/kernel', (await must('uname', ['-r'])).trim(), 'root');
  if (!existsSync('/sys/module/nbd')) await must('modprobe', ['-d', modules, 'nbd']);
  if (!/\text4$/m.test(readFileSync('/proc/filesystems', 'utf8'))) await must('modprobe', ['-d', modules, 'ext4']);
  await until('/dev/nbd0', () => existsSync(DEV), 10_000);

  const policies = loadPolicyFiles([join(checkout, 'policies/examples/lab-nvme.yaml')]).policies.map((p) => p.policy);
  const log: string[] = [];
  let service: Service | undefined;
  let attached = false;
  let mounted = false;
  try {
    service = await startService(
      policies,
      { controlPath: null, supervisor: { helloTimeoutMs: 60_000, readyTimeoutMs: 90_000, hangMs: 30_000, heartbeatMs: 1000 } },
      (s, line, level) => {
        log.push(`${s} ${level ?? 'info'} ${line}`);
        console.log(`  [${s}] linkback: ${line}`);
      },
    );
    const s = service.manager.sandboxes[0]!;
    // Sandbox events on the lab console as they happen (the log is what explains a hang).
    s.on('event', (e: SandboxEvent) => {
      if (e.kind !== 'log' || e.level === 'warn' || e.level === 'error') console.log(`  [${e.sandbox}] ${e.kind}: ${e.text}`);
    });
    assert.is(s.state, 'running', JSON.stringify(service.unavailable));
    assert.equal(
      service.linkbacks.map((l) => l.addresses[0]),
      ['tcp:127.0.0.1:10809'],
    );

    await attach(nbdClient);
    attached = true;
    assert.is(nbdSize() * 512, s.block.blockCount * s.block.blockSize, 'the kernel sees the namespace size');
    await must('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', DEV], 120_000);
    mkdirSync(MNT, { recursive: true });
    await must('mount', ['-t', 'ext4', DEV, MNT]);
    mounted = true;

    // This process serves /dev/nbd0: it must never touch the mount itself (a synchronous write
    // there waits on a read that only this process can answer). Files go through child processes.
    mkdirSync(SRC, { recursive: true });
    const sums = new Map<string, string>();
    const stage = (from: number, to: number): string[] => {
      const names: string[] = [];
      for (let i = from; i < to; i++) {
        const data = randomBytes(FILE_BYTES);
        writeFileSync(join(SRC, `f${i}.bin`), data);
        sums.set(`f${i}.bin`, sha(data));
        names.push(join(SRC, `f${i}.bin`));
      }
      return names;
    };
    await must('cp', [...stage(0, FILES / 2), MNT], 120_000);
    // The container is frozen (SIGSTOP), writeback of the first half posts requests it cannot
    // complete, then it dies (SIGKILL) with them in flight: they must be replayed on the next one.
    const pid1 = s.pid!;
    process.kill(pid1, 'SIGSTOP');
    const syncing = sh('sync', [], 120_000);
    try {
      await until('writeback requests posted to the frozen container', () => s.block.pending > 0, 30_000);
    } finally {
      process.kill(pid1, 'SIGKILL');
    }
    const atKill = s.block.pending;
    await must('cp', [...stage(FILES / 2, FILES), MNT], 120_000);
    assert.is((await syncing).code, 0, 'sync across the restart');
    await must('sync', [], 120_000);
    await until('the restarted container', () => s.state === 'running' && s.restarts === 1, 60_000);
    assert.is.not(s.pid, pid1);
    await must('umount', [MNT]);
    mounted = false;

    // Detach and attach again: every later read comes from the device, not a cache.
    await detach(nbdClient);
    attached = false;
    await attach(nbdClient);
    attached = true;
    const fsck = await sh('e2fsck', ['-fn', DEV], 120_000);
    assert.is(fsck.code, 0, `e2fsck -fn is not clean:\n${fsck.out}`);
    await must('mount', ['-t', 'ext4', '-o', 'ro', DEV, MNT]);
    mounted = true;
    const listed = await must(
      'sha256sum',
      [...sums.keys()].map((n) => join(MNT, n)),
      120_000,
    );
    const got = new Map(
      listed
        .trim()
        .split('\n')
        .map((l) => {
          const [h, f] = l.split(/\s+/);
          return [f!.slice(MNT.length + 1), h!];
        }),
    );
    for (const [name, sum] of sums) assert.is(got.get(name), sum, `${name} as written`);
    await must('umount', [MNT]);
    mounted = false;
    await detach(nbdClient);
    attached = false;

    assert.is(s.restarts, 1);
    assert.ok(s.block.replayed > 0, `requests in flight at the kill were replayed (${atKill} pending at the kill)`);
    const st = service.linkbacks[0]!.status() as { exports: Record<string, { deviceErrors: number; errors: Record<string, number>; bytesWritten: number }> };
    assert.is(st.exports['lab-nvme']!.deviceErrors, 0, `no device error reached the kernel: ${log.join('\n')}`);
    assert.equal(st.exports['lab-nvme']!.errors, {});
    assert.ok(st.exports['lab-nvme']!.bytesWritten >= FILES * FILE_BYTES);

    // Leave the disk as the next test file expects it: zeroes.
    const zero = new Uint8Array(1 << 20);
    const blocks = (1 << 20) / s.block.blockSize;
    const writes: Promise<void>[] = [];
    for (let lba = 0; lba + blocks <= s.block.blockCount; lba += blocks) writes.push(s.block.write(lba, zero));
    await Promise.all(writes);
  } finally {
    if (mounted) await sh('umount', ['-l', MNT]);
    if (attached) await sh(nbdClient, ['-d', DEV]);
    await service?.stop();
    if (!mounted) rmSync(MNT, { recursive: true, force: true });
    rmSync(SRC, { recursive: true, force: true });
  }
});

test.run();
