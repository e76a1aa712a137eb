/**
 * The whole block linkback path without hardware: real NBD clients -> NBD server -> NvmeBlockDevice
 * -> the NVMe driver -> the simulated NVMe controller behind the simulated IOMMU.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Platform } from '../../../drivers/contract/platform.js';
import { NvmeController } from '../../../drivers/nvme/controller.js';
import { NvmeArgumentError, NvmeControllerError, NvmeStatusError, NvmeTimeoutError } from '../../../drivers/nvme/errors.js';
import { CommandSpecificSc, GenericSc, Sct, statusOf } from '../../../spec/nvme/status.js';
import { BlockDeviceError } from '../../../linkback/block-device.js';
import { NvmeBlockDevice, nvmeErrorKind } from '../../../linkback/in-process/nvme.js';
import { NbdServer } from '../../../linkback/nbd/server.js';
import { SimMachine } from '../../../sim/machine.js';
import { SimNvme } from '../../../sim/nvme/controller.js';
import { tempDir } from '../nbd/helpers.js';

const t = suite('NBD over the NVMe driver on the simulated controller');
const MiB = 1 << 20;
const tmp = tempDir();
const sock = join(tmp.dir, 'nvme.sock');
let platform: Platform;
let ctrl: NvmeController;
let dev: NvmeBlockDevice;
let server: NbdServer;

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 120_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (((err as { code?: unknown }).code as number) ?? -1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

let model: SimNvme;

t.before(async () => {
  const machine = new SimMachine();
  model = new SimNvme({ serial: 'nbd0', namespaces: [{ blocks: (32 * MiB) / 512 }] });
  machine.attach(model, { address: '0000:00:01.0', workMode: 'deferred' });
  platform = machine.platform('0000:00:01.0');
  ctrl = await NvmeController.open(platform, { queues: 2 });
  dev = new NvmeBlockDevice(ctrl, ctrl.namespaces[0]!);
  server = new NbdServer({ exports: [{ name: 'nvme0', description: 'simulated NVMe namespace 1', device: dev }] });
  await server.listenUnix(sock);
});

t.after(async () => {
  await server?.close();
  await ctrl?.close();
  platform?.close();
  tmp.remove();
});

t("the device reports the namespace geometry and the controller's capabilities", async () => {
  assert.is(dev.size, 32 * MiB);
  assert.is(dev.blockSize, 512);
  assert.equal({ ...dev.capabilities }, { flush: true, fua: true, trim: true, writeZeroes: true, multiConn: true });
  const info = JSON.parse((await run('nbdinfo', ['--json', `nbd+unix:///nvme0?socket=${sock}`])).out) as { exports: Record<string, unknown>[] };
  const e = info.exports[0]!;
  assert.is(e['export-size'], 32 * MiB);
  assert.is(e['can_fua'], true, "FUA advertised: the Write command's FUA bit");
  assert.is(e['can_trim'], true);
  assert.is(e['can_zero'], true);
});

t('nbdcopy in and out through the driver; qemu-img compare agrees', async () => {
  const src = join(tmp.dir, 'in.bin');
  const data = randomBytes(32 * MiB);
  writeFileSync(src, data);
  const put = await run('nbdcopy', ['--flush', src, `nbd+unix:///nvme0?socket=${sock}`]);
  assert.is(put.code, 0, put.out);
  const out = join(tmp.dir, 'out.bin');
  const get = await run('nbdcopy', [`nbd+unix:///nvme0?socket=${sock}`, out]);
  assert.is(get.code, 0, get.out);
  const hash = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
  assert.is(hash(readFileSync(out)), hash(data));
  const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, `nbd+unix:///nvme0?socket=${sock}`]);
  assert.is(cmp.code, 0, cmp.out);
});

t('fio verify at queue depth 16 through the driver', async () => {
  const r = await run('fio', [
    '--name=nvme',
    '--ioengine=nbd',
    '--verify_state_save=0',
    `--uri=nbd+unix:///nvme0?socket=${sock}`,
    '--rw=randwrite',
    '--bs=4k',
    '--iodepth=16',
    '--size=8M',
    '--verify=crc32c',
    '--do_verify=1',
    '--verify_fatal=1',
  ]);
  assert.is(r.code, 0, r.out);
});

t('a FUA write is NVMe Writes with the FUA bit; a plain one is not', async () => {
  const before = model.stats.fuaWrites;
  await dev.write(0, new Uint8Array(8192).fill(3), true);
  const fua = model.stats.fuaWrites - before;
  assert.ok(fua >= 1, 'the FUA write reached the controller with FUA set');
  await dev.write(0, new Uint8Array(8192).fill(4), false);
  assert.is(model.stats.fuaWrites - before, fua);
});

t('trim and write-zeroes reach the namespace', async () => {
  await dev.write(0, new Uint8Array(8192).fill(7), false);
  await dev.writeZeroes(0, 4096, false, false);
  await dev.trim(4096, 4096, false);
  const b = new Uint8Array(8192).fill(1);
  await dev.read(0, b);
  assert.ok(b.every((x) => x === 0));
});

t('driver errors become errno kinds', async () => {
  assert.is(nvmeErrorKind(new NvmeArgumentError('x')), 'EINVAL');
  assert.is(nvmeErrorKind(new NvmeControllerError('ERR_NVME_CLOSED', 'x')), 'ESHUTDOWN');
  assert.is(nvmeErrorKind(new NvmeControllerError('ERR_NVME_FATAL', 'x')), 'EIO');
  assert.is(nvmeErrorKind(new NvmeTimeoutError('x')), 'EIO');
  assert.is(nvmeErrorKind(new NvmeStatusError('x', statusOf(Sct.GENERIC, GenericSc.CAPACITY_EXCEEDED))), 'ENOSPC');
  assert.is(nvmeErrorKind(new NvmeStatusError('x', statusOf(Sct.GENERIC, GenericSc.DATA_TRANSFER_ERROR))), 'EIO');
  // Namespace is Write Protected is a generic status (SCT 0, 20h); Attempted Write to Read Only
  // Range is the NVM command set's (SCT 1, 82h); SCT 1 20h is another thing (not a protection).
  assert.is(nvmeErrorKind(new NvmeStatusError('x', statusOf(Sct.GENERIC, GenericSc.NAMESPACE_WRITE_PROTECTED))), 'EPERM');
  assert.is(nvmeErrorKind(new NvmeStatusError('x', statusOf(Sct.COMMAND_SPECIFIC, CommandSpecificSc.ATTEMPTED_WRITE_TO_READ_ONLY_RANGE))), 'EPERM');
  assert.is(nvmeErrorKind(new NvmeStatusError('x', statusOf(Sct.COMMAND_SPECIFIC, 0x20))), 'EIO');
  const err = await dev.read(100, new Uint8Array(512)).catch((e: unknown) => e);
  assert.instance(err, BlockDeviceError);
  assert.is((err as BlockDeviceError).kind, 'EINVAL');
  const ro = new NvmeBlockDevice(ctrl, ctrl.namespaces[0]!, { readOnly: true });
  assert.is(((await ro.write(0, new Uint8Array(512), false).catch((e: unknown) => e)) as BlockDeviceError).kind, 'EPERM');
});

t.run();
