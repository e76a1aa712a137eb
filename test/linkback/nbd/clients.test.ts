/**
 * The NBD server against real clients: libnbd's nbdinfo and nbdcopy, qemu-img, and fio's nbd
 * engine (Debian packages libnbd-bin, qemu-utils, fio; scripts/setup-host.sh installs them).
 * Unix sockets in a temp dir and TCP on 127.0.0.1 only.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import { suiteServer } from './helpers.js';

const t = suite('nbd with real clients');
const MiB = 1 << 20;
let port = 0;
let active = 0;
let maxActive = 0;

function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * MiB, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      if (err && code === -1) stderr += `\n${err.message}`;
      resolve({ code, stdout, stderr });
    });
  });
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  assert.is(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const unixUri = (name: string): string => `nbd+unix:///${name}?socket=${sock}`;
const tcpUri = (name: string): string => `nbd://127.0.0.1:${port}/${name}`;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

t.before(async () => {
  for (const tool of ['nbdinfo', 'nbdcopy', 'qemu-img', 'fio']) {
    const r = await run('sh', ['-c', `command -v ${tool}`]);
    assert.is(r.code, 0, `${tool} is not installed: run scripts/setup-host.sh (Debian: libnbd-bin, qemu-utils, fio)`);
  }
});

const served = suiteServer(
  t,
  () => ({
    exports: [
      { name: 'disk0', description: 'dmabox memory disk', device: new MemoryBlockDevice({ size: 128 * MiB }) },
      { name: 'fio', device: new MemoryBlockDevice({ size: 64 * MiB }) },
      { name: 'ro', device: new MemoryBlockDevice({ size: 8 * MiB }), readOnly: true },
    ],
    onEvent: (e) => {
      if (e.type === 'transmission') maxActive = Math.max(maxActive, ++active);
      else if (e.type === 'close' && e.export !== undefined) active--;
    },
  }),
  {
    ready: async (server) => {
      port = (await server.listenTcp({ host: '127.0.0.1', port: 0 })).port;
    },
  },
);
const { sock, dir } = served;

t('nbdinfo describes the export over a unix socket and over TCP loopback', async () => {
  for (const uri of [unixUri('disk0'), tcpUri('disk0')]) {
    const info = JSON.parse(await must('nbdinfo', ['--json', uri])) as { protocol: string; exports: Record<string, unknown>[] };
    assert.is(info.protocol, 'newstyle-fixed', uri);
    const e = info.exports[0]!;
    assert.is(e['export-name'], 'disk0');
    assert.is(e['description'], 'dmabox memory disk');
    assert.is(e['export-size'], 128 * MiB);
    assert.is(e['is_read_only'], false);
    assert.is(e['can_flush'], true);
    assert.is(e['can_fua'], true);
    assert.is(e['can_trim'], true);
    assert.is(e['can_zero'], true);
    assert.is(e['can_multi_conn'], true);
    assert.is(e['block_size_minimum'], 512);
    assert.is(e['block_size_preferred'], 4096);
    assert.is(e['block_size_maximum'], 32 * MiB);
  }
  const ro = JSON.parse(await must('nbdinfo', ['--json', unixUri('ro')])) as { exports: Record<string, unknown>[] };
  assert.is(ro.exports[0]!['is_read_only'], true);
  const list = JSON.parse(await must('nbdinfo', ['--json', '--list', unixUri('')])) as { exports: { 'export-name': string }[] };
  assert.equal(list.exports.map((x) => x['export-name']).sort(), ['disk0', 'fio', 'ro']);
  const bad = await run('nbdinfo', [unixUri('missing')]);
  assert.is.not(bad.code, 0, 'an unknown export is an error for the client');
});

t('nbdcopy: 64 MiB of random data in over TCP and back out over the unix socket, unchanged', async () => {
  const src = join(dir, 'random.bin');
  const data = randomBytes(64 * MiB);
  writeFileSync(src, data);
  maxActive = 0;
  await must('nbdcopy', ['--flush', src, tcpUri('disk0')]);
  const copiedWith = maxActive;
  const out = join(dir, 'out.bin');
  await must('nbdcopy', [unixUri('disk0'), out]);
  const back = readFileSync(out);
  assert.is(back.length, 128 * MiB);
  assert.is(sha256(back.subarray(0, 64 * MiB)), sha256(data));
  assert.ok(
    back.subarray(64 * MiB).every((x) => x === 0),
    'the unwritten half reads as zeroes',
  );
  assert.ok(copiedWith >= 2, `nbdcopy used ${copiedWith} connections at once (CAN_MULTI_CONN)`);
  const st = served.server.stats().exports['disk0']!;
  // nbdcopy asks for block status and skips the never-written half: it reads only the data.
  assert.ok(st.bytesWritten >= 64 * MiB && st.bytesRead >= 64 * MiB && st.bytesRead < 96 * MiB && st.blockStatus >= 1 && st.flushes >= 1, JSON.stringify(st));
  const refused = await run('nbdcopy', [src, unixUri('ro')]);
  assert.is.not(refused.code, 0, 'copying into a read-only export fails');
});

t('qemu-img compare agrees with a local file, and notices one changed byte', async () => {
  const img = join(dir, 'image.raw');
  const data = randomBytes(8 * MiB);
  writeFileSync(img, data);
  await must('nbdcopy', [img, unixUri('fio')]);
  // The export is 64 MiB; compare against a local file of the same size (the rest is zeroes).
  const full = Buffer.alloc(64 * MiB);
  data.copy(full);
  writeFileSync(img, full);
  const same = await must('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', img, unixUri('fio')]);
  assert.match(same, /identical/);
  full[5 * MiB + 123] ^= 0xff;
  writeFileSync(img, full);
  const diff = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', img, tcpUri('fio')]);
  assert.is(diff.code, 1, `qemu-img compare should report a difference: ${diff.stdout}${diff.stderr}`);
  assert.match(diff.stdout, new RegExp(`mismatch at offset ${5 * MiB}`, 'i'));
});

t('fio --ioengine=nbd: random writes then reads verified with crc32c at queue depth 16', async () => {
  const help = await must('fio', ['--enghelp']);
  assert.ok(/^\s*nbd$/m.test(help), 'this fio build lists the nbd engine');
  const out = await must('fio', [
    '--name=verify',
    '--ioengine=nbd',
    '--verify_state_save=0',
    `--uri=${unixUri('fio')}`,
    '--rw=randwrite',
    '--bs=4k',
    '--iodepth=16',
    '--size=32M',
    '--verify=crc32c',
    '--do_verify=1',
    '--verify_fatal=1',
    '--output-format=json',
  ]);
  const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: { error: number; write: { io_bytes: number }; read: { io_bytes: number } }[] }).jobs[0]!;
  assert.is(job.error, 0);
  assert.is(job.write.io_bytes, 32 * MiB);
  assert.is(job.read.io_bytes, 32 * MiB, 'every block written was read back and verified');
});

t('several clients at once on several exports over both listeners', async () => {
  const src = join(dir, 'r2.bin');
  const data = randomBytes(32 * MiB);
  writeFileSync(src, data);
  const before = served.server.stats().connectionsTotal;
  const jobs = await Promise.all([
    run('nbdcopy', [src, tcpUri('disk0')]),
    // Two fio jobs, two connections, each on its own half of the export.
    run('fio', [
      '--name=two',
      '--ioengine=nbd',
      '--verify_state_save=0',
      `--uri=${unixUri('fio')}`,
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=16',
      '--size=16M',
      '--offset_increment=16M',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
      '--numjobs=2',
      '--group_reporting',
    ]),
    run('nbdinfo', ['--json', unixUri('ro')]),
    run('qemu-img', ['info', '-f', 'raw', tcpUri('ro')]),
  ]);
  jobs.forEach((j, i) => assert.is(j.code, 0, `job ${i}: ${j.stderr}`));
  const out = join(dir, 'r2.out');
  await must('nbdcopy', [unixUri('disk0'), out]);
  assert.is(sha256(readFileSync(out).subarray(0, 32 * MiB)), sha256(data));
  assert.ok(served.server.stats().connectionsTotal - before >= 6);
});

t.run();
