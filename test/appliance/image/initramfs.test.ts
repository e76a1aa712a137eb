import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCpio } from '../../../appliance/image/cpio.js';
import { buildInitramfs } from '../../../appliance/image/initramfs.js';
import type { KernelTree } from '../../../appliance/image/kernel.js';
import { refused } from '../refused.js';

const dir = mkdtempSync(join(tmpdir(), 'dmabox-initramfs-'));
const kver = '6.1.0-0-test';
const root = join(dir, 'k', 'root');
const kernel: KernelTree = {
  pkg: `linux-image-${kver}`,
  kver,
  root,
  vmlinuz: join(root, 'boot', `vmlinuz-${kver}`),
  modulesDir: join(root, 'lib', 'modules', kver),
};
mkdirSync(join(kernel.modulesDir, 'kernel', 'drivers', 'vfio', 'pci'), { recursive: true });
writeFileSync(join(kernel.modulesDir, 'kernel', 'drivers', 'vfio', 'vfio.ko'), 'VFIO-MODULE');
writeFileSync(join(kernel.modulesDir, 'kernel', 'drivers', 'vfio', 'pci', 'vfio-pci.ko'), 'VFIO-PCI-MODULE');
writeFileSync(join(kernel.modulesDir, 'modules.dep'), 'kernel/drivers/vfio/vfio.ko:\nkernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/vfio.ko\n');
writeFileSync(join(kernel.modulesDir, 'modules.builtin'), 'kernel/drivers/virtio/virtio.ko\n');
const busybox = join(dir, 'busybox');
writeFileSync(busybox, 'BUSYBOX');
const cacheDir = join(dir, 'cache');
const spec = { kernel, modules: ['vfio_pci', 'virtio'], init: '#!/bin/busybox sh\necho hi\n', busybox, cacheDir, name: 'lab', files: { 'etc/motd': 'hello' } };

test('the image holds busybox, /dev/console, the modules with their dependencies, extra files and /init', () => {
  const img = buildInitramfs(spec);
  assert.is(img.cached, false);
  assert.equal(
    img.modules.map((m) => m.name),
    ['vfio', 'vfio_pci'],
    'dependency first, built-in left out',
  );
  const entries = readCpio(readFileSync(img.path));
  const byName = new Map(entries.map((e) => [e.name, e]));
  assert.is(byName.get('bin/busybox')!.data.toString(), 'BUSYBOX');
  assert.is(byName.get('bin/busybox')!.mode & 0o777, 0o755);
  assert.is(byName.get('dev/console')!.rdevMajor, 5);
  assert.is(byName.get(`lib/modules/${kver}/kernel/drivers/vfio/pci/vfio-pci.ko`)!.data.toString(), 'VFIO-PCI-MODULE');
  assert.is(byName.get(`lib/modules/${kver}/kernel/drivers/vfio/vfio.ko`)!.data.toString(), 'VFIO-MODULE');
  assert.is(byName.get('etc/motd')!.data.toString(), 'hello');
  assert.is(byName.get('init')!.data.toString(), spec.init);
  assert.is(byName.get('init')!.mode & 0o777, 0o755);
  for (const e of entries) {
    const parent = e.name.includes('/') ? e.name.slice(0, e.name.lastIndexOf('/')) : undefined;
    if (parent) assert.ok(entries.findIndex((p) => p.name === parent) < entries.indexOf(e), `${parent} comes before ${e.name}`);
  }
});

test('the same inputs reuse the cached image; a different /init builds a new one', () => {
  const a = buildInitramfs(spec);
  assert.is(a.cached, true);
  const b = buildInitramfs({ ...spec, init: `${spec.init}echo changed\n` });
  assert.is(b.cached, false);
  assert.is.not(b.key, a.key);
  assert.equal(readdirSync(cacheDir).filter((f) => f.endsWith('.cpio')).length, 2);
  assert.ok(
    readdirSync(cacheDir).every((f) => !f.includes('.partial')),
    'no half-written files left',
  );
});

test('a missing module or busybox is an error saying what to do', () => {
  assert.throws(() => buildInitramfs({ ...spec, modules: ['nbd'] }), /'nbd' is neither/);
  assert.throws(() => buildInitramfs({ ...spec, busybox: join(dir, 'nope') }), /busybox-static/);
});

test('a module file of a type insmod cannot be given is ERR_IMAGE_MODULE_INDEX', () => {
  const odd: KernelTree = { ...kernel, root: join(dir, 'odd'), modulesDir: join(dir, 'odd', 'lib', 'modules', kver) };
  mkdirSync(join(odd.modulesDir, 'kernel'), { recursive: true });
  writeFileSync(join(odd.modulesDir, 'kernel', 'odd.ko.bz2'), 'BZ');
  writeFileSync(join(odd.modulesDir, 'modules.dep'), 'kernel/odd.ko.bz2:\n');
  assert.throws(
    () => buildInitramfs({ ...spec, kernel: odd, modules: ['odd.ko.bz2'], cacheDir: join(dir, 'odd-cache') }),
    refused('ERR_IMAGE_MODULE_INDEX', /odd\.ko\.bz2 is neither \.ko nor compressed/),
  );
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
