/**
 * The child of test/lab/vfio/unprivileged.test.ts: runs as uid/gid 65534 holding only the NVMe's
 * device fd (fd 3) and a memfd of DMA memory (fd 4) that the parent mapped in the IOMMU. It drives
 * the controller (Identify through the parent's windows), then tries to widen its reach: open the
 * group, map DMA on a container of its own. Prints one JSON line with what happened.
 *
 * argv[2]: JSON { sqIova, cqIova, dataIova, sqOff, cqOff, dataOff, size, group } (bigints as hex strings).
 */
import { Container, Device, Group, VfioError } from 'vfio-bindings';
import { defaultSys, MAP_SHARED, PROT_READ, PROT_WRITE } from 'linux-sys';
import { identifyStrings, RawNvme } from './nvme-raw.js';

interface Plan {
  sqIova: string;
  cqIova: string;
  dataIova: string;
  sqOff: number;
  cqOff: number;
  dataOff: number;
  size: number;
  group: number;
}

const plan = JSON.parse(process.argv[2]!) as Plan;
const sys = defaultSys();
const result: Record<string, unknown> = { uid: process.getuid!(), gid: process.getgid!() };

const codeOf = (f: () => unknown): string => {
  try {
    f();
    return 'no error';
  } catch (e) {
    return e instanceof VfioError ? `${e.code}/${e.errnoName ?? ''}` : String(e);
  }
};

const dev = Device.fromFd(3);
const addr = sys.mmap(0n, plan.size, PROT_READ | PROT_WRITE, MAP_SHARED, 4, 0n);
const mem = new Uint8Array(sys.view(addr, plan.size));
const bar = dev.mapBar(0);
result.vendor = dev.config.read16(0);
const nvme = new RawNvme(
  bar,
  { bytes: mem.subarray(plan.sqOff, plan.sqOff + 0x1000), iova: BigInt(plan.sqIova) },
  { bytes: mem.subarray(plan.cqOff, plan.cqOff + 0x1000), iova: BigInt(plan.cqIova) },
);
nvme.enable();
const cqe = nvme.identify(BigInt(plan.dataIova));
result.status = cqe.status;
result.identify = identifyStrings(mem.subarray(plan.dataOff, plan.dataOff + 0x1000));
nvme.disable();

result.openGroup = codeOf(() => Group.open(plan.group));
result.mapDma = codeOf(() => {
  const c = Container.open();
  try {
    c.map(addr, 0x3000_0000n, 0x1000, { read: true, write: true });
  } finally {
    c.close();
  }
});
result.setIommu = codeOf(() => {
  const c = Container.open();
  try {
    c.setIommu();
  } finally {
    c.close();
  }
});
console.log(JSON.stringify(result));
