/**
 * The sandboxed NVMe driver (a real container process, the simulated controller in the manager)
 * exported over NBD through linkback/service.ts, against real clients: nbdinfo, nbdcopy, qemu-img,
 * qemu-io (FUA writes, trim, write zeroes), and fio's nbd engine verifying crc32c at queue depth 16 while the test SIGKILLs the driver
 * container three times: the clients see no error, the supervisor counts 3 restarts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startService, type Service } from '../../../linkback/service.js';
import type { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { MiB, must, nbdPolicy, needTools, run, tempDir, until } from './helpers.js';

const t = suite('sandboxed NVMe over NBD with real clients');
const tmp = tempDir();
const sock = join(tmp.dir, 'disk.sock');
const uri = `nbd+unix:///disk?socket=${sock}`;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
let service: Service;
let sandbox: Supervisor;
const lines: string[] = [];

t.before(async () => {
  await needTools(['nbdinfo', 'nbdcopy', 'qemu-img', 'qemu-io', 'fio']);
  const policy = { ...nbdPolicy('disk', sock, { restart: '{ maxRestarts: 5, window: 60s, backoff: { initial: 50ms, max: 1s } }' }) };
  service = await startService([policy], { controlPath: null }, (s, line, level) => lines.push(`${s} ${level ?? 'info'} ${line}`));
  sandbox = service.manager.sandboxes[0]!;
  assert.is(sandbox.state, 'running');
  assert.equal(service.unavailable, []);
  assert.is(service.linkbacks.length, 1);
  assert.equal(service.linkbacks[0]!.addresses, [`unix:${sock}`]);
});

t.after(async () => {
  await service?.stop();
  tmp.remove();
});

t('nbdinfo describes the sandboxed export: size, block sizes, what the ring can carry', async () => {
  const info = JSON.parse(await must('nbdinfo', ['--json', uri])) as { protocol: string; exports: Record<string, unknown>[] };
  assert.is(info.protocol, 'newstyle-fixed');
  const e = info.exports[0]!;
  assert.is(e['export-name'], 'disk');
  assert.match(String(e['description']), /sandbox disk: nvme driver in a container, sim:nvme/);
  assert.is(e['export-size'], 128 * MiB);
  assert.is(e['is_read_only'], false);
  assert.is(e['can_flush'], true);
  assert.is(e['can_fua'], true, 'FUA: the NVMe Write FUA bit, through the ring');
  assert.is(e['can_trim'], true, 'the simulated controller offers Dataset Management (ONCS bit 2)');
  assert.is(e['can_zero'], true, 'and Write Zeroes (ONCS bit 3)');
  assert.is(e['can_multi_conn'], true);
  assert.is(e['block_size_minimum'], 512);
});

t('nbdcopy: 64 MiB of random data in and back out unchanged; qemu-img compare agrees', async () => {
  const src = join(tmp.dir, 'random.bin');
  const data = randomBytes(64 * MiB);
  writeFileSync(src, data);
  await must('nbdcopy', ['--flush', src, uri]);
  const out = join(tmp.dir, 'out.bin');
  await must('nbdcopy', [uri, out]);
  const back = readFileSync(out);
  assert.is(back.length, 128 * MiB);
  assert.is(sha256(back.subarray(0, 64 * MiB)), sha256(data));
  assert.ok(
    back.subarray(64 * MiB).every((x) => x === 0),
    'the unwritten half reads as zeroes',
  );
  // qemu-img compare against a local image of the export's size.
  const full = Buffer.alloc(128 * MiB);
  data.copy(full);
  writeFileSync(src, full);
  assert.match(await must('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, uri]), /identical/);
  full[33 * MiB + 7] ^= 0x5a;
  writeFileSync(src, full);
  const diff = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, uri]);
  assert.is(diff.code, 1, `qemu-img compare should see the changed byte: ${diff.stdout}${diff.stderr}`);
  assert.match(diff.stdout, new RegExp(`mismatch at offset ${33 * MiB}`, 'i'));
  const st = service.linkbacks[0]!.status() as { exports: Record<string, { deviceErrors: number; bytesWritten: number }> };
  assert.is(st.exports['disk']!.deviceErrors, 0);
  assert.ok(st.exports['disk']!.bytesWritten >= 64 * MiB);
});

t('qemu-io: FUA writes, trim and write zeroes reach the sandboxed controller; the ranges read back as zeroes', async () => {
  // In the half nbdcopy left unwritten, then written here: 100 MiB + 64 KiB and 110 MiB + 1 MiB.
  const at = 100 * MiB,
    zat = 110 * MiB;
  const io = (...cmds: string[]) => must('qemu-io', ['-f', 'raw', uri, ...cmds.flatMap((c) => ['-c', c])]);
  // The controller's counter, as its device process reports it in its heartbeats.
  const fua = (): number => sandbox.sim!.process!.counters['nvme.fuaWrites'] ?? 0;
  const beats = sandbox.sim!.process!.frames;
  await until('a device heartbeat', () => sandbox.sim!.process!.frames > beats, 5000);
  const fua0 = fua();
  await io(`write -P 0x5a ${at} 64k`, `write -f -P 0xa5 ${zat} 1M`, 'flush');
  // 1 MiB with FUA: the slot size splits it into 64 KiB ring requests, each an NVMe Write with FUA.
  await until('the FUA writes in a heartbeat', () => fua() - fua0 >= 16, 5000).catch(() => undefined);
  assert.ok(fua() - fua0 >= 16, `FUA writes seen by the controller: ${fua() - fua0}`);
  await io(`read -P 0x5a ${at} 64k`, `read -P 0xa5 ${zat} 1M`);
  const st0 = (service.linkbacks[0]!.status() as { exports: Record<string, { trims: number; writeZeroes: number; deviceErrors: number }> }).exports['disk']!;
  await io(`discard ${at} 64k`, `write -z ${zat} 512k`, `write -z -u ${zat + 512 * 1024} 512k`);
  await io(`read -P 0 ${at} 64k`, `read -P 0 ${zat} 1M`);
  const st = (service.linkbacks[0]!.status() as { exports: Record<string, { trims: number; writeZeroes: number; deviceErrors: number }> }).exports['disk']!;
  assert.ok(st.trims > st0.trims, 'the discard went to the device as NBD_CMD_TRIM');
  assert.ok(st.writeZeroes >= st0.writeZeroes + 2, 'both zero writes went as NBD_CMD_WRITE_ZEROES, not as data');
  assert.is(st.deviceErrors, st0.deviceErrors);
});

t('fio verify=crc32c at queue depth 16 while the driver container is SIGKILLed 3 times: no client error, 3 restarts', async () => {
  const cwd = tempDir();
  const before = { restarts: sandbox.restarts, replayed: sandbox.block.replayed };
  const st0 = (service.linkbacks[0]!.status() as { exports: Record<string, { deviceErrors: number; errors: Record<string, number> }> }).exports['disk']!;
  const fio = run(
    'fio',
    [
      '--name=kill3',
      '--ioengine=nbd',
      '--verify_state_save=0',
      `--uri=${uri}`,
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=16',
      '--size=64M',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
      '--output-format=json',
    ],
    { cwd: cwd.dir, timeoutMs: 240_000 },
  );
  let finished = false;
  void fio.then(() => {
    finished = true;
  });
  const kills: number[] = [];
  try {
    for (let k = 0; k < 3; k++) {
      // Kill only with requests in flight: the point is the replay.
      await until(
        `kill ${k + 1}: I/O in flight`,
        () => finished || (sandbox.state === 'running' && sandbox.block.pending > 0 && sandbox.pid !== undefined),
        60_000,
      );
      assert.not.ok(finished, `fio finished after only ${k} kill(s): make its job longer`);
      await new Promise((r) => setTimeout(r, 150));
      const pid = sandbox.pid!;
      kills.push(sandbox.block.pending);
      process.kill(pid, 'SIGKILL');
      await until(`restart ${k + 1}`, () => sandbox.restarts === before.restarts + k + 1 && sandbox.state === 'running', 60_000);
    }
    const r = await fio;
    assert.is(r.code, 0, `fio exited ${r.code}: ${r.stderr.trim()}`);
    const job = (JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: { error: number; write: { io_bytes: number }; read: { io_bytes: number } }[] })
      .jobs[0]!;
    assert.is(job.error, 0);
    assert.is(job.write.io_bytes, 64 * MiB);
    assert.is(job.read.io_bytes, 64 * MiB, 'every block written was read back and verified');
    assert.is(sandbox.restarts - before.restarts, 3);
    assert.is(sandbox.state, 'running');
    assert.ok(sandbox.block.replayed > before.replayed, `requests were replayed (in flight at the kills: ${kills.join(', ')})`);
    const st = (service.linkbacks[0]!.status() as { exports: Record<string, { deviceErrors: number; errors: Record<string, number> }> }).exports['disk']!;
    assert.is(st.deviceErrors, st0.deviceErrors, 'no device error reached the NBD server');
    assert.equal(st.errors, st0.errors, 'no error reply to any client');
    assert.equal(readdirSync(cwd.dir), [], 'fio left no files behind (verify state off)');
  } finally {
    await fio;
    cwd.remove();
  }
});

t.run();
