/**
 * The child of test/lab/vfio/memlock.test.ts: runs as uid 65534 (no CAP_IPC_LOCK) with the group
 * node opened up for it, lowers its own RLIMIT_MEMLOCK to 64 KiB, and maps DMA: 16 KiB fits, 1 MiB
 * does not. Prints one JSON line.
 *
 * argv[2]: the IOMMU group number.
 */
import { Container, Group, VfioError } from 'vfio-bindings';
import { defaultSys, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, RLIMIT_MEMLOCK } from 'linux-sys';

const sys = defaultSys();
const group = Number(process.argv[2]);
sys.setrlimit(RLIMIT_MEMLOCK, { cur: 0x10000n, max: 0x10000n });
const result: Record<string, unknown> = { uid: process.getuid!() };
const c = Container.open();
try {
  const g = Group.open(group);
  g.setContainer(c);
  c.setIommu();
  const mem = sys.mmap(0n, 0x100000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  c.map(mem, 0x1000_0000n, 0x4000, { read: true, write: true });
  result.small = 'mapped';
  try {
    c.map(mem + 0x4000n, 0x1100_0000n, 0x100000 - 0x4000, { read: true, write: true });
    result.large = 'mapped';
  } catch (e) {
    const err = e as VfioError;
    result.large = `${err.code}/${err.errnoName ?? ''}`;
    result.message = err.message;
    result.fix = err.fix;
  }
  c.unmap(0x1000_0000n, 0x4000n);
} finally {
  c.close();
}
console.log(JSON.stringify(result));
