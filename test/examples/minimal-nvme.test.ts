/**
 * The example external driver (examples/minimal-nvme) on the simulator, from its own policy: it
 * runs confined like a built-in driver, the block service serves it (data written and read back),
 * a restart replays, and NBD clients (nbdcopy, nbdinfo) see a disk.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePolicies } from '../../policies/index.js';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { startLinkback } from '../../linkback/service.js';
import { nbdUri } from '../../linkback/sandbox-nbd.js';
import { pattern, until } from '../sandbox/helpers.js';
import { must, needTools, tempDir, MiB } from '../linkback/sandbox/helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const policyFile = join(root, 'examples', 'minimal-nvme', 'policy.yaml');

function policy(socket: string) {
  const p = parsePolicies(readFileSync(policyFile, 'utf8'), policyFile).policies[0]!.policy;
  return { ...p, linkback: { nbd: { socket, export: 'minimal-nvme', poll: 0.5, tls: 'off' as const, 'tls-verify-peer': false } } };
}

test('the example driver, named by its policy: confined, served by the block service, restarted with replay, exported over NBD', async () => {
  await needTools(['nbdinfo', 'nbdcopy']);
  const tmp = tempDir();
  const s = new Supervisor(policy(join(tmp.dir, 'nbd.sock')), { hangMs: 2000, heartbeatMs: 200 });
  try {
    await s.start();
    assert.is(s.kind, 'block');
    assert.match(s.driver.label, 'module:');
    assert.ok(
      s.events.some((e) => e.text.startsWith('confined (seccomp')),
      'the container confined itself before the driver ran',
    );
    assert.ok(
      s.events.some((e) => e.text.startsWith('minimal-nvme on sandbox:minimal-nvme')),
      'the example driver serves the device',
    );
    assert.is(s.block.blockSize, 512);
    assert.is(s.block.blockCount, 131072);
    const a = pattern(64 * 1024, 3);
    await s.block.write(2048, a, true);
    await s.block.flush();
    assert.equal(await s.block.read(2048, 128), a);
    // A restart: the example driver comes up again on the quarantined device; the data is there.
    const pid = s.pid!;
    const inflight = s.block.read(2048, 16);
    process.kill(pid, 'SIGKILL');
    assert.equal(await inflight, a.subarray(0, 8192));
    await until('the restart', () => s.restarts === 1 && s.state === 'running', 20_000);
    assert.equal(await s.block.read(2048, 128), a);
    // NBD: what a host sees.
    const link = (await startLinkback(s, () => undefined))!;
    try {
      const uri = nbdUri('minimal-nvme', link.addresses[0]!);
      const info = JSON.parse(await must('nbdinfo', ['--json', uri])) as { exports: { 'export-size': number }[] };
      assert.is(info.exports[0]!['export-size'], 64 * MiB);
      const src = join(tmp.dir, 'in.img'),
        out = join(tmp.dir, 'out.img');
      const data = Buffer.alloc(4 * MiB);
      for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE((i * 2654435761) >>> 0, i);
      (await import('node:fs')).writeFileSync(src, data);
      await must('nbdcopy', ['--flush', src, uri]);
      await must('nbdcopy', [uri, out]);
      assert.ok(readFileSync(out).subarray(0, data.length).equals(data), 'nbdcopy in and back out: the same bytes');
    } finally {
      await link.close();
    }
  } finally {
    await s.stop();
    tmp.remove();
  }
});

test.run();
