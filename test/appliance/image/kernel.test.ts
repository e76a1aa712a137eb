import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractVmlinux, fetchKernel, kernelTree, parseKernelDepends } from '../../../appliance/image/kernel.js';

test('the versioned kernel package is read from apt-cache depends', () => {
  const out = 'linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n';
  assert.equal(parseKernelDepends(out), { pkg: 'linux-image-6.1.0-56-amd64', kver: '6.1.0-56-amd64' });
});

test('virtual names, alternatives and other dependencies are skipped; the first concrete kernel wins', () => {
  const out = [
    'linux-image-amd64',
    '  Depends: <linux-image-virtual>',
    ' |Depends: linux-image-6.1.0-57-cloud-amd64',
    '  Depends: linux-image-6.1.0-56-amd64',
    '  Recommends: firmware-linux-free',
  ].join('\n');
  assert.equal(parseKernelDepends(out), { pkg: 'linux-image-6.1.0-57-cloud-amd64', kver: '6.1.0-57-cloud-amd64' });
  assert.is(parseKernelDepends('linux-image-amd64\n  Depends: linux-base\n  Depends: kmod\n'), undefined);
});

test('apt knowing nothing gives undefined (the caller runs apt-get update)', () => {
  assert.is(parseKernelDepends(''), undefined);
  assert.is(parseKernelDepends('W: No packages found for linux-image-amd64\n'), undefined);
  assert.is(parseKernelDepends('  Depends: linux-image-6.1-amd64\n'), undefined, 'not a full X.Y.Z-N-FLAVOUR name');
});

// --- the cache (no network: apt is either not asked or not there) -------------------------------

function fakeCache(kver: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-kcache-'));
  mkdirSync(join(dir, kver, 'root', 'boot'), { recursive: true });
  writeFileSync(join(dir, kver, '.complete'), 'x.deb\n');
  return dir;
}

test('a remembered, still fresh answer from apt is used without asking apt again', async () => {
  const dir = fakeCache('6.1.0-99-amd64');
  const saved = process.env.PATH;
  try {
    writeFileSync(
      join(dir, 'resolved.json'),
      JSON.stringify({ meta: 'linux-image-amd64', pkg: 'linux-image-6.1.0-99-amd64', kver: '6.1.0-99-amd64', at: Date.now() }),
    );
    process.env.PATH = '/nonexistent'; // apt-cache would not be found: it must not be needed
    const t = await fetchKernel({ cacheDir: dir });
    assert.is(t.kver, '6.1.0-99-amd64');
    assert.is(t.vmlinuz, join(dir, '6.1.0-99-amd64', 'root', 'boot', 'vmlinuz-6.1.0-99-amd64'));
  } finally {
    process.env.PATH = saved;
    rmSync(dir, { recursive: true });
  }
});

test('apt unreachable: the newest complete cached kernel is used, and said so; with no cache the error stands', async () => {
  const dir = fakeCache('6.1.0-98-amd64');
  mkdirSync(join(dir, '.6.1.0-99-amd64.partial-1'), { recursive: true });
  writeFileSync(join(dir, '.6.1.0-99-amd64.partial-1', '.complete'), '');
  const saved = process.env.PATH;
  const said: string[] = [];
  try {
    process.env.PATH = '/nonexistent';
    const t = await fetchKernel({ cacheDir: dir, resolveMaxAgeMs: 0, log: (m) => said.push(m) });
    assert.is(t.kver, '6.1.0-98-amd64', 'half-done folders are never used');
    assert.match(said.join('\n'), /using the cached 6\.1\.0-98-amd64/);
    rmSync(join(dir, '6.1.0-98-amd64'), { recursive: true });
    try {
      await fetchKernel({ cacheDir: dir, resolveMaxAgeMs: 0 });
      assert.unreachable();
    } catch (e) {
      assert.is((e as { code: string }).code, 'ERR_IMAGE_TOOL_MISSING');
    }
  } finally {
    process.env.PATH = saved;
    rmSync(dir, { recursive: true });
  }
});
// --- the fetch itself, against stand-in apt tools on PATH (dpkg-deb and depmod are the real ones) --
function fakeApt(dir: string, download: 'ok' | 'fail'): void {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'apt-cache'), '#!/bin/sh\necho "linux-image-amd64"\necho "  Depends: linux-image-6.1.0-97-amd64"\n');
  const deb = join(dir, 'linux-image-6.1.0-97-amd64_6.1.1-1_amd64.deb');
  writeFileSync(
    join(bin, 'apt-get'),
    download === 'ok'
      ? `#!/bin/sh\ncp '${deb}' .\n`
      : '#!/bin/sh\necho "E: Failed to fetch http://deb.debian.org/debian/pool/main/l/linux/x.deb  404  Not Found" >&2\nexit 100\n',
  );
  for (const t of ['apt-cache', 'apt-get']) chmodSync(join(bin, t), 0o755);
  if (download === 'ok') {
    const pkg = join(dir, 'pkg');
    mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
    mkdirSync(join(pkg, 'boot'), { recursive: true });
    mkdirSync(join(pkg, 'lib', 'modules', '6.1.0-97-amd64', 'kernel'), { recursive: true });
    writeFileSync(join(pkg, 'boot', 'vmlinuz-6.1.0-97-amd64'), 'not really a kernel');
    writeFileSync(
      join(pkg, 'DEBIAN', 'control'),
      'Package: linux-image-6.1.0-97-amd64\nVersion: 6.1.1-1\nArchitecture: amd64\nMaintainer: test <t@example.org>\nDescription: stand-in\n',
    );
    execFileSync('dpkg-deb', ['--build', '-Zgzip', pkg, deb], { stdio: 'ignore' });
  }
}

test('fetch: apt-get download, dpkg-deb -x into the cache (not installed), depmod -b; a rerun does nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-kfetch-'));
  const saved = process.env.PATH;
  try {
    fakeApt(dir, 'ok');
    process.env.PATH = `${join(dir, 'bin')}:${saved}`;
    const said: string[] = [];
    const t = await fetchKernel({ cacheDir: join(dir, 'cache'), log: (m) => said.push(m) });
    assert.is(t.kver, '6.1.0-97-amd64');
    assert.is(readFileSync(t.vmlinuz, 'utf8'), 'not really a kernel');
    assert.ok(existsSync(join(t.modulesDir, 'modules.dep')), 'depmod wrote modules.dep');
    assert.ok(existsSync(join(dir, 'cache', '6.1.0-97-amd64', '.complete')));
    assert.match(said.join('\n'), /fetching linux-image-6\.1\.0-97-amd64/);
    said.length = 0;
    await fetchKernel({ cacheDir: join(dir, 'cache'), resolveMaxAgeMs: 0, log: (m) => said.push(m) });
    assert.equal(said, [], 'nothing fetched again');
  } finally {
    process.env.PATH = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fetch: a failed download is ERR_IMAGE_KERNEL_DOWNLOAD quoting apt, and leaves no half-done kernel', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-kfetch-'));
  const saved = process.env.PATH;
  try {
    fakeApt(dir, 'fail');
    process.env.PATH = `${join(dir, 'bin')}:${saved}`;
    try {
      await fetchKernel({ cacheDir: join(dir, 'cache') });
      assert.unreachable();
    } catch (e) {
      assert.is((e as { code: string }).code, 'ERR_IMAGE_KERNEL_DOWNLOAD');
      assert.match((e as Error).message, /404 {2}Not Found/);
      assert.match((e as Error).message, /fix: check the network/);
    }
    assert.equal(
      readdirSync(join(dir, 'cache')).filter((f) => f !== 'resolved.json'),
      [],
    );
  } finally {
    process.env.PATH = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('vmlinux for PVH boot: unpacked from the xz stream inside the bzImage when the config allows, else undefined', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-vmlinux-'));
  try {
    const t = kernelTree(dir, '6.1.0-96-amd64');
    mkdirSync(join(t.root, 'boot'), { recursive: true });
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(4096, 7)]);
    const xz = execFileSync('xz', ['-c', '--format=xz'], { input: elf });
    writeFileSync(t.vmlinuz, Buffer.concat([Buffer.alloc(1000, 0x90), xz, Buffer.alloc(64, 0)])); // setup code, payload, trailer
    const said: string[] = [];
    writeFileSync(join(t.root, 'boot', `config-${t.kver}`), 'CONFIG_PVH=y\nCONFIG_KERNEL_GZIP=y\n');
    assert.is(
      extractVmlinux(t, (m) => said.push(m)),
      undefined,
      'not xz: the bzImage is booted',
    );
    assert.match(said.join(), /not xz-compressed/);
    writeFileSync(join(t.root, 'boot', `config-${t.kver}`), 'CONFIG_PVH=y\nCONFIG_KERNEL_XZ=y\n');
    const out = extractVmlinux(t);
    assert.is(out, join(t.root, 'boot', `vmlinux-${t.kver}`));
    assert.ok(readFileSync(out!).equals(elf));
    assert.is(extractVmlinux(t), out, 'cached');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
