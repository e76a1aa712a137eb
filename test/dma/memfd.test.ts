import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { defaultSys } from 'linux-sys';
import { hugePages, MemfdMemoryProvider, MFD_HUGETLB, type MemfdSys } from '../../dma/memfd.js';

const MEMINFO_HUGE = 'MemTotal: 2000000 kB\nHugePages_Total:      16\nHugePages_Free:        8\nHugepagesize:       2048 kB\n';
const MEMINFO_NONE = 'MemTotal: 2000000 kB\nHugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n';

test('the same memfd mapped twice shows the same bytes (real syscalls through the seam)', () => {
  const provider = new MemfdMemoryProvider({ sys: defaultSys(), hugePages: 'never' });
  const m = provider.allocate(10000, { label: 'shared' });
  assert.is(m.size, 12288);
  assert.is(m.pageSize, 4096);
  assert.ok(m.fd >= 0);
  assert.ok(typeof m.address === 'bigint' && m.address > 0n);
  assert.ok(
    m.bytes.every((b) => b === 0),
    'fresh memory is zeroed',
  );
  const again = m.mapAgain();
  assert.is.not(again.bytes.buffer, m.bytes.buffer, 'a second, independent mapping');
  m.bytes[4097] = 0xab;
  assert.is(again.bytes[4097], 0xab);
  again.bytes[12287] = 0x5c;
  assert.is(m.bytes[12287], 0x5c);
  again.unmap();
  m.release();
  m.release();
  assert.is(provider.smallBlocks, 1);
});

test('another process handed the fd maps the same pages: it sees our bytes and we see its writes', () => {
  const provider = new MemfdMemoryProvider({ sys: defaultSys(), hugePages: 'never' });
  const m = provider.allocate(4096, { label: 'to share' });
  try {
    m.bytes[10] = 0x7b;
    // The child gets the memfd as its fd 3 and maps it through the same seam.
    const child = [
      "import { defaultSys, PROT_READ, PROT_WRITE, MAP_SHARED } from 'linux-sys';",
      'const sys = defaultSys();',
      'const a = sys.mmap(0n, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0n);',
      'const b = new Uint8Array(sys.view(a, 4096));',
      'process.stdout.write(String(b[10]));',
      'b[20] = 99;',
      'sys.munmap(a, 4096);',
    ].join('\n');
    const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', child], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe', m.fd],
      timeout: 30_000,
    });
    assert.is(r.status, 0, `child failed: ${r.stderr?.toString()}`);
    assert.is(r.stdout.toString(), '123', 'the child read what we wrote');
    assert.is(m.bytes[20], 99, 'we see what the child wrote');
  } finally {
    m.release();
  }
});

test('huge pages from /proc/meminfo: used when free and the size is a multiple, else 4 KiB', () => {
  assert.equal(hugePages(MEMINFO_HUGE), { size: 2 << 20, free: 8 });
  assert.is(hugePages('MemTotal: 1 kB\n'), undefined);
  const flags: number[] = [];
  const fake: MemfdSys = {
    memfdCreate: (_n, f) => {
      flags.push(f);
      return 7;
    },
    ftruncate: () => {},
    mmap: () => 0x1000n,
    munmap: () => {},
    view: (_a, len) => new ArrayBuffer(len),
    close: () => {},
  };
  const p = new MemfdMemoryProvider({ sys: fake, meminfo: MEMINFO_HUGE });
  assert.is(p.allocate(4 << 20).pageSize, 2 << 20);
  assert.is(flags.pop()! & MFD_HUGETLB, MFD_HUGETLB);
  assert.is(p.allocate(8192).pageSize, 4096, 'small blocks stay on small pages');
  assert.is(flags.pop()! & MFD_HUGETLB, 0);
  assert.is(p.allocate(32 << 20).pageSize, 4096, 'more than the free huge pages');
  const none = new MemfdMemoryProvider({ sys: fake, meminfo: MEMINFO_NONE, hugePages: 'always' });
  assert.throws(
    () => none.allocate(2 << 20),
    (e: { code: string; message: string }) => e.code === 'ERR_DMA_MEMORY' && /nr_hugepages/.test(e.message),
  );
});

test('MFD_HUGETLB refused by the kernel: falls back to 4 KiB pages', () => {
  const fake: MemfdSys = {
    memfdCreate: (_n, f) => {
      if (f & MFD_HUGETLB) throw new Error('EINVAL');
      return 9;
    },
    ftruncate: () => {},
    mmap: () => 0x2000n,
    munmap: () => {},
    view: (_a, len) => new ArrayBuffer(len),
    close: () => {},
  };
  const p = new MemfdMemoryProvider({ sys: fake, meminfo: MEMINFO_HUGE });
  const m = p.allocate(2 << 20);
  assert.is(m.pageSize, 4096);
  assert.is(m.fd, 9);
});

test('a failure part-way closes what was opened', () => {
  const closed: number[] = [];
  const fake: MemfdSys = {
    memfdCreate: () => 11,
    ftruncate: () => {
      throw new Error('ENOSPC');
    },
    mmap: () => 0n,
    munmap: () => {},
    view: (_a, len) => new ArrayBuffer(len),
    close: (fd) => {
      closed.push(fd);
    },
  };
  const p = new MemfdMemoryProvider({ sys: fake, hugePages: 'never' });
  assert.throws(
    () => p.allocate(4096),
    (e: { code: string }) => e.code === 'ERR_DMA_MEMORY',
  );
  assert.equal(closed, [11]);
});

test.run();
