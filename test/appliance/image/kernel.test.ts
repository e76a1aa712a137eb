import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseKernelDepends } from '../../../appliance/image/kernel.js';

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

test.run();
