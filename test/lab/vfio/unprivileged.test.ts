/**
 * Lab (real VFIO in the QEMU guest): a driver process running as uid 65534, holding only the
 * device fd and a memfd, uses the device through the windows the manager mapped, and cannot open
 * the group nor map DMA of its own.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DmaMemory, findOne, inLab, NVME_IDS, openStack } from './lab-env.js';
import { identifyStrings } from './nvme-raw.js';
import { setBusMaster } from '../../../spec/pci/config.js';

const SQ = { off: 0x0000, iova: 0x1200_0000n };
const CQ = { off: 0x1000, iova: 0x1200_1000n };
const DATA = { off: 0x2000, iova: 0x1200_2000n };

test('uid 65534 with only the device fd and a memfd drives the NVMe, and cannot open the group or map DMA', async () => {
  inLab();
  const fn = findOne(NVME_IDS);
  const s = openStack(fn);
  const mem = new DmaMemory(0x3000);
  try {
    s.container.map(mem.vaddr + BigInt(SQ.off), SQ.iova, 0x1000, { read: true, write: false });
    s.container.map(mem.vaddr + BigInt(CQ.off), CQ.iova, 0x1000, { read: true, write: true });
    s.container.map(mem.vaddr + BigInt(DATA.off), DATA.iova, 0x1000, { read: false, write: true });
    setBusMaster(s.device.config, true);
    const plan = {
      sqIova: `0x${SQ.iova.toString(16)}`,
      cqIova: `0x${CQ.iova.toString(16)}`,
      dataIova: `0x${DATA.iova.toString(16)}`,
      sqOff: SQ.off,
      cqOff: CQ.off,
      dataOff: DATA.off,
      size: mem.size,
      group: fn.iommuGroup,
    };
    const script = fileURLToPath(new URL('./unprivileged-child.js', import.meta.url));
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [script, JSON.stringify(plan)], {
        stdio: ['ignore', 'pipe', 'pipe', s.device.fd, mem.fd],
        uid: 65534,
        gid: 65534,
        cwd: '/tmp',
        env: { ...process.env, HOME: '/tmp' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the child did not finish within 60 s\n${stderr}`));
      }, 60_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
    assert.is(out.code, 0, `child failed:\n${out.stderr}`);
    const r = JSON.parse(out.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    assert.is(r.uid, 65534);
    assert.is(r.vendor, 0x1b36, 'config space through the inherited fd');
    assert.is(r.status, 0);
    assert.equal(r.identify, identifyStrings(mem.at(DATA.off, 0x1000)), 'the child saw the DMA the parent sees');
    assert.match((r.identify as { model: string }).model, /QEMU NVMe Ctrl/);
    assert.is(r.openGroup, 'ERR_VFIO_ACCESS/EACCES', 'the group node is root-only');
    assert.is(r.mapDma, 'ERR_VFIO_IOMMU_NOT_SET/EINVAL', 'a container of its own has no group, so no IOMMU: MAP_DMA is refused');
    assert.match(String(r.setIommu), /^ERR_VFIO_ARG\/EINVAL/, 'and it cannot set one up without a group');
  } finally {
    s.close();
    mem.close();
  }
});

test.run();
