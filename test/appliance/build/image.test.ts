/**
 * `dmabox appliance build` for real (a --test image), twice, as a reproducibility check (other
 * folders, umask, TZ and locale; the same SOURCE_DATE_EPOCH from the commit); a lock naming other
 * inputs refused before anything is built; then `dmabox appliance test`'s checks on the image in
 * QEMU: stage 1 verifies the root with dm-verity, PID 1 starts the manager and both sandboxed
 * drivers on real VFIO, nbdinfo and nbdcopy over TLS reach the disk through the sandboxed NIC,
 * both containers killed under a client go unnoticed, a machine without an IOMMU gets no drivers,
 * and a root with one byte changed is refused.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checkAppliance } from '../../../appliance/build/check.js';
import { explainDifference, type Manifest } from '../../../appliance/build/build.js';
import { run as applianceCli } from '../../../cli/appliance.js';

const here = dirname(fileURLToPath(import.meta.url));
const checkout = join(here, '..', '..', '..', '..'); // dist/test/appliance/build -> the checkout
const cli = join(checkout, 'dist', 'cli', 'main.js');
const spec = join(checkout, 'appliance', 'examples', 'storage.yaml');
const psk = join(checkout, 'appliance', 'examples', 'keys', 'test.psk');
const t = suite('appliance image');
const tmp = mkdtempSync(join(tmpdir(), 'dmabox-appliance-test-'));
const outA = join(tmp, 'a');
const outB = join(tmp, 'elsewhere', 'b');

function build(out: string, env: Record<string, string>, umask: string, extra: string[] = []): { code: number | null; out: string } {
  const r = spawnSync('sh', ['-c', `umask ${umask}; exec "$@"`, 'sh', process.execPath, cli, 'appliance', 'build', spec, '--test', '--out', out, ...extra], {
    cwd: env['CWD'] ?? checkout,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 900_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

t.after(() => rmSync(tmp, { recursive: true, force: true }));

t('two builds in other folders, with other umask, TZ and locale, are bit-identical', async () => {
  // One build in this process (umask 022, UTC, C.UTF-8), the other as the command, elsewhere.
  const saved = { TZ: process.env['TZ'], LANG: process.env['LANG'], LC_ALL: process.env['LC_ALL'] };
  const umask = process.umask(0o022);
  Object.assign(process.env, { TZ: 'UTC', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' });
  try {
    assert.is(await applianceCli(['build', spec, '--test', '--out', outA]), 0);
  } finally {
    process.umask(umask);
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  const b = build(outB, { TZ: 'Pacific/Kiritimati', LANG: 'de_DE.UTF-8', LC_ALL: 'C', CWD: tmp }, '077');
  assert.is(b.code, 0, b.out);
  const ma = JSON.parse(readFileSync(join(outA, 'manifest.json'), 'utf8')) as Manifest;
  const mb = JSON.parse(readFileSync(join(outB, 'manifest.json'), 'utf8')) as Manifest;
  assert.is(await applianceCli(['compare', outA, outB]), 0, 'dmabox appliance compare says the same');
  const differences = explainDifference(outA, outB);
  assert.equal(differences, [], `the two builds differ:\n${differences.join('\n')}`);
  for (const name of Object.keys(ma.outputs)) assert.is(mb.outputs[name]?.sha256, ma.outputs[name]!.sha256, `${name} differs between the two builds`);
  assert.is(readFileSync(join(outB, 'manifest.json'), 'utf8'), readFileSync(join(outA, 'manifest.json'), 'utf8'));
  // What the manifest pins: the kernel package, the Debian packages of every binary, the npm packages.
  assert.match(ma.inputs.kernel.package, /^linux-image-/);
  for (const p of ['nodejs', 'bubblewrap', 'util-linux', 'libc6', 'cryptsetup-bin', 'busybox-static'])
    assert.ok(
      ma.inputs.debian.some((d) => d.package.startsWith(p)),
      `${p} pinned`,
    );
  assert.ok(ma.inputs.npm.some((n) => n.name === 'yaml' && n.integrity.startsWith('sha512-')));
  assert.match(ma.cmdline, new RegExp(`dmabox\\.roothash=${ma.verity.rootHash}`));
  const total = Object.values(ma.outputs).reduce((s, o) => s + o.bytes, 0);
  console.log(
    `  appliance image: ${(total / 2 ** 20).toFixed(1)} MiB (${Object.entries(ma.outputs)
      .map(([k, v]) => `${k} ${(v.bytes / 2 ** 20).toFixed(1)}`)
      .join(', ')})`,
  );
});

t('a difference between builds is explained: the output, its sizes, the first byte, the root entries that differ', () => {
  const c = join(tmp, 'changed');
  rmSync(c, { recursive: true, force: true });
  cpSync(outA, c, { recursive: true });
  const m = JSON.parse(readFileSync(join(c, 'manifest.json'), 'utf8')) as Manifest;
  writeFileSync(join(c, 'cmdline'), 'console=ttyS0 something-else\n');
  m.outputs['cmdline']!.sha256 = '0'.repeat(64);
  writeFileSync(join(c, 'manifest.json'), JSON.stringify(m));
  const d = explainDifference(outA, c);
  assert.is(d.length, 1, d.join('\n'));
  assert.match(d[0]!, /^cmdline/);
});

t('a lock naming other inputs is refused, with each difference named', () => {
  const lock = JSON.parse(readFileSync(join(outA, 'appliance.lock'), 'utf8')) as { inputs: { debian: { package: string; version: string }[] } };
  const libc = lock.inputs.debian.find((d) => d.package.startsWith('libc6'))!;
  libc.version = '0.0-locked';
  const lockFile = join(tmp, 'old.lock');
  writeFileSync(lockFile, JSON.stringify(lock));
  const r = build(join(tmp, 'c'), {}, '022', ['--lock', lockFile]);
  assert.is(r.code, 1, r.out);
  assert.match(r.out, /ERR_APPLIANCE_LOCK: the build's inputs differ from .*old\.lock/);
  assert.match(r.out, new RegExp(`debian ${libc.package.replace(/[+.]/g, '\\$&')}: 0\\.0-locked( \\(sha256 [0-9a-f]+\\))? locked, \\S+`));
});

t('dmabox appliance test: boot, TLS through both sandboxed drivers, containers killed under a client, no IOMMU refused, a tampered root refused', async () => {
  const steps = await checkAppliance({ dir: outA, psk, say: (l) => console.log(`  ${l}`) });
  assert.equal(
    steps.map((s) => s.name),
    [
      'boot: verified root, both drivers up, the manager without root',
      'nbdinfo over TLS through both sandboxed drivers',
      'nbdcopy round trip',
      'containers killed under the client (the disk driver, then the NIC driver): nothing noticed',
      'a machine without an IOMMU: drivers refused (doctor at boot)',
      'one byte changed in the root filesystem: refused at boot',
    ],
  );
  for (const s of steps) assert.ok(s.ok, `${s.name}: ${s.detail}`);
});

t.run();
