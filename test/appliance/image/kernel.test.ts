import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchKernel, parseKernelDepends } from '../../../appliance/image/kernel.js';

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
    writeFileSync(join(dir, 'resolved.json'), JSON.stringify({ meta: 'linux-image-amd64', pkg: 'linux-image-6.1.0-99-amd64', kver: '6.1.0-99-amd64', at: Date.now() }));
    process.env.PATH = '/nonexistent'; // apt-cache would not be found: it must not be needed
    const t = await fetchKernel({ cacheDir: dir });
    assert.is(t.kver, '6.1.0-99-amd64');
    assert.is(t.vmlinuz, join(dir, '6.1.0-99-amd64', 'root', 'boot', 'vmlinuz-6.1.0-99-amd64'));
  } finally { process.env.PATH = saved; rmSync(dir, { recursive: true }); }
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
    try { await fetchKernel({ cacheDir: dir, resolveMaxAgeMs: 0 }); assert.unreachable(); } catch (e) {
      assert.is((e as { code: string }).code, 'ERR_IMAGE_TOOL_MISSING');
    }
  } finally { process.env.PATH = saved; rmSync(dir, { recursive: true }); }
});
test.run();
