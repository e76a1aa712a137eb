/**
 * launchLab without booting: a stand-in `qemu-system-x86_64` (a shell script first on PATH) plays
 * the guest's side of the protocol (console markers, the rc file in the run channel, the DMAR trace
 * file), so the launcher's streaming, logging, decoding, timeout and clean-up are tested for real.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestKeepPaths, launchLab, pruneLogs } from '../../../appliance/lab/launch.js';
import type { LabImage } from '../../../appliance/lab/setup.js';

const FAKE = `#!/bin/sh
# stand-in for qemu-system-x86_64 (test/appliance/lab/launch.test.ts)
if [ "$1" = -trace ] && [ "$2" = help ]; then echo vtd_dmar_fault; exit 0; fi
run=""; trace=""; prev=""
for a in "$@"; do
  case "$prev" in
    -fsdev) case "$a" in *id=fs1,path=*) run="\${a#*id=fs1,path=}"; run="\${run%%,*}";; esac;;
    -D) trace="$a";;
  esac
  prev="$a"
done
printf 'fake: run=%s\\r\\n' "$run"
echo "qemu-stderr-line" >&2
case "$FAKE_QEMU_MODE" in
  exit)
    printf '[    0.1] Linux version fake\\r\\ndmabox-lab: init 1.00\\r\\n'
    printf 'dmabox-lab: bound 0000:00:01.0 0x1b36:0x0010 group 1\\r\\ndmabox-lab: bound 0000:00:02.0 0x8086:0x10d3 group 2\\r\\n'
    printf 'dmabox-lab: run 1.10\\r\\n'
    sed 's/^/cmd: /' "$run/cmd.sh"
    [ -n "$trace" ] && echo "vtd_dmar_fault sid 0x8 fault 5 addr 0x20000000 write 1" >> "$trace"
    ls "$run" | sed 's/^/file: /'
    printf 'dmabox-lab: done 1.20\\r\\ndmabox-lab: exit 5'
    echo 5 > "$run/rc"
    exit 11;;
  hang) printf 'dmabox-lab: init 1.0\\r\\n'; exec sleep 30;;
  bootpanic) printf '[    0.04] Kernel panic - not syncing: timer doesn'"'"'t work through Interrupt-remapped IO-APIC\\r\\n'; exit 0;;
  panic) printf 'dmabox-lab: init 1.0\\r\\ndmabox-lab: run 1.1\\r\\n[    1.5] Kernel panic - not syncing: Fatal exception\\r\\n'; exit 0;;
  initfail) printf 'dmabox-lab: init 1.0\\r\\ndmabox-lab: error 0000:00:01.0 (0x1b36:0x0010) did not bind to vfio-pci\\r\\ndmabox-lab: exit 125\\r\\n'; echo 125 > "$run/rc"; exit 251;;
esac
exit 1
`;

const bin = mkdtempSync(join(tmpdir(), 'dmabox-fakeqemu-'));
writeFileSync(join(bin, 'qemu-system-x86_64'), FAKE);
chmodSync(join(bin, 'qemu-system-x86_64'), 0o755);
// On PATH only while this file's tests run: uvu imports every test file before it runs any suite,
// so a PATH set here at import would reach other files' tests (the appliance boots real QEMU).
const oldPath = process.env.PATH;
test.before(() => {
  process.env.PATH = `${bin}:${oldPath}`;
});

const image: LabImage = {
  kernel: { pkg: 'linux-image-0.0.0-0-fake', kver: '0.0.0-0-fake', root: '/nonexistent', vmlinuz: '/nonexistent/vmlinuz', modulesDir: '/nonexistent/m' },
  bootKernel: '/nonexistent/vmlinux',
  initrd: '/nonexistent/initrd.cpio',
  modules: [],
  cached: true,
  ms: 0,
};

async function launch(mode: string, extra: Partial<Parameters<typeof launchLab>[0]> = {}) {
  process.env.FAKE_QEMU_MODE = mode;
  const lines: string[] = [];
  const logFile = join(bin, `${mode}.log`);
  try {
    const r = await launchLab({
      image,
      nvme: [{ sizeMiB: 4 }],
      e1000e: [{ net: 'slirp' }],
      command: ['node', '-e', "console.log('x y')"],
      logFile,
      onLine: (l) => lines.push(l),
      ...extra,
    });
    return { r, lines, logFile };
  } catch (e) {
    return { e: e as Error & { code: string }, lines, logFile };
  }
}

test('a guest that reports its exit: status from the rc file, devices with groups, DMAR faults, log, run folder removed', async () => {
  const { r, lines, logFile } = await launch('exit', { dmarTrace: true, env: { EXTRA: 'yes' } });
  assert.ok(r, 'resolved');
  assert.is(r!.status, 5);
  assert.equal(r!.devices, [
    { kind: 'nvme', index: 0, bdf: '0000:00:01.0', group: 1 },
    { kind: 'e1000e', index: 0, bdf: '0000:00:02.0', group: 2 },
  ]);
  assert.is(r!.dmarFaults.length, 1);
  assert.is(r!.dmarFaults[0]!.addr, 0x20000000n);
  assert.is(r!.dmarFaults[0]!.write, true);
  assert.ok(existsSync(r!.dmarTraceFile!));
  assert.ok(r!.timings.bootMs! >= r!.timings.initMs!);
  assert.ok(r!.timings.commandMs! >= 0);
  // The command script in the run channel, and the disk image beside it.
  const cmd = lines.filter((l) => l.startsWith('cmd: ')).join('\n');
  assert.match(cmd, /exec node -e 'console\.log\('\\''x y'\\''\)'/);
  assert.match(cmd, /export DMABOX_LAB=1/);
  assert.match(cmd, /export DMABOX_LAB_NVME=0000:00:01.0/);
  assert.match(cmd, /export DMABOX_LAB_E1000E=0000:00:02.0/);
  assert.match(cmd, /export DMABOX_LAB_DMAR_TRACE=\/run\/dmabox-lab\/dmar.trace/);
  assert.match(cmd, /export EXTRA=yes/);
  assert.ok(lines.includes('file: nvme0.img'));
  // Log: header, stamped lines, QEMU's stderr marked.
  const log = readFileSync(logFile, 'utf8');
  assert.match(log, /^# dmabox lab /);
  assert.match(log, /\[ +\d+\.\d{3}\] dmabox-lab: exit 5/);
  assert.match(log, /\[ +\d+\.\d{3}\] qemu: qemu-stderr-line/);
  const run = lines.find((l) => l.startsWith('fake: run='))!.slice('fake: run='.length);
  assert.ok(run.includes('dmabox-lab-'), run);
  assert.not.ok(existsSync(run), 'run folder removed');
});

test('timeout: QEMU is killed and the error names the log and quotes the last lines', async () => {
  const t0 = Date.now();
  const { e, logFile } = await launch('hang', { timeoutMs: 1500 });
  assert.ok(e, 'rejected');
  assert.is(e!.code, 'ERR_LAB_TIMEOUT');
  assert.ok(Date.now() - t0 < 15_000, 'bounded');
  assert.ok(e!.message.includes(logFile));
  assert.match(e!.message, /dmabox-lab: init 1\.0/);
});

test('a panicking guest and a failing /init are errors, not exit statuses; a panic before /init is a boot failure', async () => {
  const b = await launch('bootpanic');
  assert.is(b.e?.code, 'ERR_LAB_BOOT_FAILED');
  assert.match(b.e!.message, /did not boot to \/init.*Interrupt-remapped IO-APIC/);
  const p = await launch('panic');
  assert.is(p.e?.code, 'ERR_LAB_GUEST_DIED');
  assert.match(p.e!.message, /Kernel panic - not syncing: Fatal exception/);
  const f = await launch('initfail');
  assert.is(f.e?.code, 'ERR_LAB_GUEST_SETUP');
  assert.match(f.e!.message, /did not bind to vfio-pci/);
});

test('bad options are refused before anything starts', async () => {
  for (const bad of [
    { command: [] },
    { command: ['x'], nvme: [{ sizeMiB: 0 }] },
    { command: ['x'], timeoutMs: -1 },
    { command: ['x'], e1000e: [{ net: 'tap' as unknown as 'slirp' }] },
    { command: ['x'], cwd: '/tmp' },
  ]) {
    try {
      await launchLab({ image, ...bad });
      assert.unreachable(JSON.stringify(bad));
    } catch (e) {
      assert.is((e as { code: string }).code, 'ERR_LAB_OPTIONS', JSON.stringify(bad));
    }
  }
});

test('DMAR tracing asked of a QEMU without the trace event is refused, not silently empty', async () => {
  const bin2 = mkdtempSync(join(tmpdir(), 'dmabox-fakeqemu2-'));
  const saved = process.env.PATH;
  try {
    writeFileSync(join(bin2, 'qemu-system-x86_64'), '#!/bin/sh\necho breakpoint_insert\nexit 0\n');
    chmodSync(join(bin2, 'qemu-system-x86_64'), 0o755);
    process.env.PATH = `${bin2}:${saved}`;
    try {
      await launchLab({ image, command: ['true'], dmarTrace: true });
      assert.unreachable();
    } catch (e) {
      assert.is((e as { code: string }).code, 'ERR_LAB_TRACE_UNSUPPORTED');
      assert.match((e as Error).message, /no trace event 'vtd_dmar_fault'/);
    }
  } finally {
    process.env.PATH = saved;
    rmSync(bin2, { recursive: true, force: true });
  }
});

test('a qemu that cannot be started is ERR_LAB_QEMU_MISSING with the reason, not a bare Node error', async () => {
  const bin3 = mkdtempSync(join(tmpdir(), 'dmabox-fakeqemu3-'));
  const saved = process.env.PATH;
  try {
    writeFileSync(join(bin3, 'qemu-system-x86_64'), '#!/nonexistent/interpreter\n');
    chmodSync(join(bin3, 'qemu-system-x86_64'), 0o755);
    process.env.PATH = `${bin3}:${saved}`;
    try {
      await launchLab({ image, command: ['true'], logFile: join(bin3, 'l.log') });
      assert.unreachable();
    } catch (e) {
      assert.is((e as { code: string }).code, 'ERR_LAB_QEMU_MISSING');
      assert.match((e as Error).message, /qemu-system-x86_64 could not be started: ENOENT\n {2}fix: /);
    }
  } finally {
    process.env.PATH = saved;
    rmSync(bin3, { recursive: true, force: true });
  }
});

test('no qemu on PATH: a clear error saying how to install it', async () => {
  const saved = process.env.PATH;
  process.env.PATH = bin + '-none';
  try {
    await launchLab({ image, command: ['true'] });
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code: string }).code, 'ERR_LAB_QEMU_MISSING');
    assert.match((e as Error).message, /apt-get install qemu-system-x86/);
  } finally {
    process.env.PATH = saved;
  }
});

test('old logs are pruned, newest kept, with their traces; other files untouched', () => {
  const d = join(bin, 'logs');
  mkdirSync(d);
  for (const t of ['2026-01-01', '2026-01-03', '2026-01-02']) {
    writeFileSync(join(d, `lab-${t}.log`), '');
    writeFileSync(join(d, `lab-${t}.log.dmar`), '');
  }
  writeFileSync(join(d, 'notes.txt'), '');
  pruneLogs(d, 2);
  assert.equal(readdirSync(d).sort(), ['lab-2026-01-02.log', 'lab-2026-01-02.log.dmar', 'lab-2026-01-03.log', 'lab-2026-01-03.log.dmar', 'notes.txt']);
});

test.after(() => {
  process.env.PATH = oldPath;
  rmSync(bin, { recursive: true, force: true });
});

test('a checkout under /tmp or /run is kept over the guest tmpfs; one under /proc, /dev or with odd characters is refused', () => {
  assert.equal(guestKeepPaths('/work/main'), []);
  assert.equal(guestKeepPaths('/tmp/ci-clone'), ['/tmp/ci-clone']);
  assert.equal(guestKeepPaths('/run/ci/x'), ['/run/ci/x']);
  for (const bad of ['/tmp', '/proc/1', '/dev/shm/x', '/tmp/a b', '/run/dmabox-lab/x', '/tmp/../etc']) {
    assert.throws(
      () => guestKeepPaths(bad),
      (e: { code: string }) => e.code === 'ERR_LAB_OPTIONS',
      bad,
    );
  }
});

test.run();
