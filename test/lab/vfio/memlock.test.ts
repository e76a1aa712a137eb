/**
 * Lab (real VFIO in the QEMU guest): the RLIMIT_MEMLOCK pitfall. A process without CAP_IPC_LOCK
 * pins DMA memory against its locked-memory limit; past it, MAP_DMA fails with ENOMEM, which
 * vfio-bindings reports as ERR_VFIO_MEMLOCK with the limit and the fix. Root is exempt, so the
 * mapping runs in a child as uid 65534, given the group node for the duration of the test.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findOne, inLab, NVME_IDS } from './lab-env.js';

test('past RLIMIT_MEMLOCK, MAP_DMA fails with ENOMEM: ERR_VFIO_MEMLOCK naming the limit and ulimit -l', () => {
  inLab();
  const fn = findOne(NVME_IDS);
  const node = `/dev/vfio/${fn.iommuGroup}`;
  const mode = statSync(node).mode & 0o777;
  chmodSync(node, 0o666);
  try {
    const script = fileURLToPath(new URL('./memlock-child.js', import.meta.url));
    const r = spawnSync(process.execPath, [script, String(fn.iommuGroup)], {
      uid: 65534,
      gid: 65534,
      cwd: '/tmp',
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, HOME: '/tmp' },
    });
    assert.is(r.status, 0, `child failed:\n${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, string | number>;
    assert.is(out.uid, 65534);
    assert.is(out.small, 'mapped', '16 KiB fits under 64 KiB');
    assert.is(out.large, 'ERR_VFIO_MEMLOCK/ENOMEM', String(out.message));
    assert.match(String(out.message), /RLIMIT_MEMLOCK is 65536 bytes/);
    assert.match(String(out.fix), /ulimit -l/);
  } finally {
    chmodSync(node, mode);
  }
  assert.is(statSync(node).mode & 0o777, mode, 'the group node is root-only again');
});

test.run();
