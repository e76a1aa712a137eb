/**
 * The sandboxed NVMe export with `tls: require` in its policy, as an appliance serves it: the
 * manager reads the PSK file once, clients get in with the key (nbdinfo, nbdcopy through libnbd's
 * TLS), and without it they are refused; the manager's log names the client's identity.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startService, type Service } from '../../../linkback/service.js';
import { parsePolicies } from '../../../policies/loader.js';
import { MiB, needTools, run, tempDir } from './helpers.js';

const t = suite('sandboxed NVMe over NBD with TLS');
const tmp = tempDir();
const sock = join(tmp.dir, 'disk.sock');
const psk = join(tmp.dir, 'keys.psk');
let service: Service;
const lines: string[] = [];

t.before(async () => {
  await needTools(['nbdinfo', 'nbdcopy']);
  writeFileSync(psk, `appliance-client:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const yaml = `
version: 1
name: disk
device: { sim: nvme, capacity: 16MiB, blockSize: 512 }
driver: { name: nvme, queues: 1, depth: 64 }
windows:
  - { size: 1MiB, label: queues }
  - { size: 8MiB, label: io-buffers }
linkback: { nbd: { socket: ${sock}, export: disk, tls: require, tls-psk: ${psk} } }
`;
  const policy = parsePolicies(yaml, 'disk.yaml').policies[0]!.policy;
  service = await startService([policy], { controlPath: null }, (s, line, level) => lines.push(`${s} ${level ?? 'info'} ${line}`));
  assert.equal(service.unavailable, []);
  const usage = service.linkbacks[0]!.usage().join('\n');
  assert.match(usage, `nbdinfo 'nbds+unix://IDENTITY@/disk?socket=${sock}&tls-psk-file=${psk}'`);
});

t.after(async () => {
  await service?.stop();
  tmp.remove();
});

t('with the key: nbdinfo reports TLS, nbdcopy round-trips 4 MiB; without it: refused', async () => {
  const uri = `nbds+unix://appliance-client@/disk?socket=${sock}&tls-psk-file=${psk}`;
  const info = await run('nbdinfo', ['--json', uri]);
  assert.is(info.code, 0, info.stderr);
  assert.is((JSON.parse(info.stdout) as { TLS: boolean }).TLS, true);
  const src = join(tmp.dir, 'in.bin');
  const out = join(tmp.dir, 'out.bin');
  writeFileSync(src, randomBytes(4 * MiB));
  assert.is((await run('nbdcopy', [src, uri])).code, 0);
  assert.is((await run('nbdcopy', [uri, out])).code, 0);
  assert.ok(
    readFileSync(out)
      .subarray(0, 4 * MiB)
      .equals(readFileSync(src)),
  );
  const plain = await run('nbdinfo', [`nbd+unix:///disk?socket=${sock}`]);
  assert.is.not(plain.code, 0, 'a client without TLS is refused');
  assert.ok(
    lines.some((l) => /nbd client \d+: TLSv1\.[23] \S+ as 'appliance-client'/.test(l)),
    lines.join('\n'),
  );
});

t.run();
