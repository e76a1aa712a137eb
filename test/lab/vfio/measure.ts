/**
 * Per-operation costs of vfio-bindings on real VFIO, measured in the lab guest (not a test: run it
 * with `dmabox lab run --nvme 64M -- node dist/test/lab/vfio/measure.js`). Prints one JSON line with
 * the machine it ran on. Medians of 5 rounds.
 */
import { availableParallelism } from 'node:os';
import { DmaMemory, findOne, inLab, NVME_IDS, openStack } from './lab-env.js';
import { RawNvme, REG } from './nvme-raw.js';
import { setBusMaster } from '../../../spec/pci/config.js';

inLab();

function perOp(n: number, f: () => void): number {
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f();
    rounds.push(Number(process.hrtime.bigint() - t0) / n);
  }
  rounds.sort((a, b) => a - b);
  return Math.round(rounds[2]!); // ns
}

const s = openStack(findOne(NVME_IDS));
const mem = new DmaMemory(0x4000);
try {
  const bar = s.device.mapBar(0);
  const cfg = s.device.config;
  let sink = 0;
  const out: Record<string, unknown> = {
    where: 'lab guest (QEMU TCG q35 + intel-iommu), host: 2-core VM',
    nproc: availableParallelism(),
    node: process.version,
  };
  out.ioctlGroupStatusNs = perOp(2000, () => void s.group.status());
  out.configRead16Ns = perOp(2000, () => (sink ^= cfg.read16(0)));
  out.mmioRead32Ns = perOp(20000, () => (sink ^= bar.read32(REG.VS.offset)));
  out.mapUnmap4KiBNs = perOp(500, () => {
    s.container.map(mem.vaddr + 0x3000n, 0x2000_0000n, 0x1000, { read: true, write: true });
    s.container.unmap(0x2000_0000n, 0x1000n);
  });
  s.container.map(mem.vaddr, 0x1000_0000n, 0x1000, { read: true, write: false });
  s.container.map(mem.vaddr + 0x1000n, 0x1000_1000n, 0x2000, { read: true, write: true });
  setBusMaster(s.device.config, true);
  const nvme = new RawNvme(bar, { bytes: mem.at(0, 0x1000), iova: 0x1000_0000n }, { bytes: mem.at(0x1000, 0x1000), iova: 0x1000_1000n });
  nvme.enable();
  out.identifyPolledNs = perOp(50, () => void nvme.identify(0x1000_2000n));
  nvme.disable();
  out.sink = sink;
  console.log(JSON.stringify(out));
} finally {
  s.close();
  mem.close();
}
