import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEVICE_READS, DEVICE_READS_WRITES, DEVICE_WRITES } from '../../drivers/contract/platform.js';
import { IommuDmaAllocator } from '../../dma/allocator.js';
import { MemlockAccount } from '../../dma/memlock.js';
import { HeapMemoryProvider } from '../../dma/memory.js';
import { Window } from '../../dma/window.js';
import { RecordingBackend } from './fake-backend.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'no error';
};

function make(options: { avail?: number; memlock?: MemlockAccount } = {}) {
  const backend = new RecordingBackend(undefined, options.avail ?? 65535);
  const memory = new HeapMemoryProvider();
  const dma = new IommuDmaAllocator({ backend, memory, memlock: options.memlock });
  return { backend, memory, dma };
}

test('a window is one mapping with exactly the permission asked for', () => {
  const { backend, dma } = make();
  assert.is(dma.pageSize, 4096);
  const w = dma.alloc(10000, DEVICE_READS, { label: 'sq' });
  assert.is(w.size, 12288);
  assert.is(w.bytes.length, 12288);
  assert.is(w.iova % 4096n, 0n);
  assert.ok(w.iova >= 4096n);
  assert.is(backend.maps.size, 1);
  assert.equal(backend.maps.get(w.iova)!.perm, { read: true, write: false });
  assert.is(backend.maps.get(w.iova)!.size, 12288);
  const rw = dma.alloc(4096, DEVICE_WRITES);
  assert.equal(backend.maps.get(rw.iova)!.perm, { read: false, write: true });
  w.view.setUint32(0, 0xdeadbeef, true);
  assert.is(w.bytes[0], 0xef);
});

test('bad sizes, permissions and alignments are refused with ERR_DMA_ARG', () => {
  const { dma } = make();
  assert.is(
    code(() => dma.alloc(0, DEVICE_READS)),
    'ERR_DMA_ARG',
  );
  assert.is(
    code(() => dma.alloc(1.5, DEVICE_READS)),
    'ERR_DMA_ARG',
  );
  assert.is(
    code(() => dma.alloc(4096, { read: false, write: false })),
    'ERR_DMA_ARG',
  );
  assert.is(
    code(() => dma.alloc(4096, DEVICE_READS, { align: 12 })),
    'ERR_DMA_ARG',
  );
});

test('alignment applies to the IOVA', () => {
  const { dma } = make();
  dma.alloc(4096, DEVICE_READS);
  const w = dma.alloc(4096, DEVICE_READS, { align: 1 << 21 });
  assert.is(w.iova % (1n << 21n), 0n);
});

test('revoke unmaps but keeps memory and IOVA; free releases everything once', () => {
  const { backend, memory, dma } = make();
  const w = dma.alloc(8192, DEVICE_READS_WRITES);
  w.bytes[5] = 7;
  dma.revoke(w);
  assert.is(backend.maps.size, 0);
  assert.is((w as Window).state, 'revoked');
  assert.is(w.bytes[5], 7);
  assert.is(memory.allocated, 8192);
  const other = dma.alloc(4096, DEVICE_READS);
  assert.is.not(other.iova, w.iova, 'a revoked window keeps its IOVA reserved');
  dma.free(w);
  assert.is(memory.allocated, 4096);
  assert.is(
    code(() => dma.free(w)),
    'ERR_DMA_WINDOW_STATE',
  );
  assert.is(
    code(() => dma.revoke(w)),
    'ERR_DMA_WINDOW_STATE',
  );
  const stranger = make().dma.alloc(4096, DEVICE_READS);
  assert.is(
    code(() => dma.free(stranger)),
    'ERR_DMA_WINDOW_STATE',
  );
});

test('mappings are counted against DMA_AVAIL and refused before the kernel would', () => {
  const { dma } = make({ avail: 3 });
  const ws = [dma.alloc(4096, DEVICE_READS), dma.alloc(4096, DEVICE_READS), dma.alloc(4096, DEVICE_READS)];
  assert.is(dma.mappingsLeft, 0);
  let err: { code: string; message: string } | undefined;
  try {
    dma.alloc(4096, DEVICE_READS);
  } catch (e) {
    err = e as never;
  }
  assert.is(err?.code, 'ERR_DMA_MAPPINGS');
  assert.match(err!.message, /BufferPool/);
  dma.free(ws[1]!);
  assert.is(dma.mappingsLeft, 1);
  dma.alloc(4096, DEVICE_READS);
  // A revoked window no longer holds a mapping.
  dma.revoke(ws[0]!);
  dma.alloc(4096, DEVICE_READS);
});

test('memlock: refused with ERR_DMA_MEMLOCK and the way to raise it, before pinning', () => {
  const memlock = new MemlockAccount({ limit: 64 * 1024, alreadyLocked: 16 * 1024 });
  const { dma, backend } = make({ memlock });
  dma.alloc(32 * 1024, DEVICE_READS);
  assert.is(memlock.remaining, 16 * 1024);
  let err: { code: string; message: string } | undefined;
  try {
    dma.alloc(20 * 1024, DEVICE_READS);
  } catch (e) {
    err = e as never;
  }
  assert.is(err?.code, 'ERR_DMA_MEMLOCK');
  assert.match(err!.message, /ulimit -l 68/);
  assert.match(err!.message, /48 KiB of 64 KiB/);
  assert.is(backend.maps.size, 1, 'nothing was mapped for the refused window');
  const w = dma.alloc(16 * 1024, DEVICE_READS);
  assert.is(memlock.remaining, 0);
  dma.free(w);
  assert.is(memlock.remaining, 16 * 1024);
});

test('memlock from the process: RLIM_INFINITY is unlimited; VmLck is the baseline; CAP_IPC_LOCK exempts', () => {
  const user = 'Name:\tnode\nVmLck:\t      12 kB\nCapEff:\t0000000000000000\n';
  const root = 'Name:\tnode\nVmLck:\t       0 kB\nCapEff:\t000001ffffffffff\n';
  const inf = MemlockAccount.fromProcess(0xffff_ffff_ffff_ffffn, user);
  assert.is(inf.limit, Infinity);
  const lim = MemlockAccount.fromProcess(8n * 1024n * 1024n, user);
  assert.is(lim.limit, 8 * 1024 * 1024);
  assert.is(lim.baseline, 12 * 1024);
  assert.is(lim.exempt, false);
  const r = MemlockAccount.fromProcess(8n * 1024n * 1024n, root);
  assert.is(r.exempt, true);
  assert.is(r.limit, Infinity, 'the kernel does not limit a CAP_IPC_LOCK process, so neither do we');
  assert.ok(MemlockAccount.fromProcess(65536n).baseline >= 0, 'the real /proc/self/status parses');
});

test('a failed map rolls everything back', () => {
  const memlock = new MemlockAccount({ limit: 1 << 20 });
  const { dma, backend, memory } = make({ memlock });
  backend.failNextMap = true;
  assert.throws(() => dma.alloc(8192, DEVICE_READS), /injected/);
  assert.is(memory.allocated, 0);
  assert.is(memlock.charged, 0);
  assert.is(dma.iova.allocated, 0n);
  assert.is(dma.mappings, 0);
});

test('close frees every window', () => {
  const { dma, memory, backend } = make();
  dma.alloc(4096, DEVICE_READS);
  const r = dma.alloc(4096, DEVICE_WRITES);
  dma.revoke(r);
  dma.close();
  assert.is(dma.live, 0);
  assert.is(memory.allocated, 0);
  assert.is(backend.maps.size, 0);
  assert.is(dma.iova.freeRuns, 1, 'freed IOVAs merged back into the one range');
});

test('merged windows: one memory block, one mapping, laid out with their alignments', () => {
  const { dma, backend, memory } = make({ avail: 2 });
  const [sq, cq, big] = dma.allocMerged(
    [
      { size: 1024, label: 'sq' },
      { size: 256, label: 'cq' },
      { size: 5000, label: 'lists', align: 16384 },
    ],
    DEVICE_READS_WRITES,
  );
  assert.is(backend.maps.size, 1);
  assert.is(dma.mappings, 1);
  assert.is(cq!.iova - sq!.iova, 4096n);
  assert.is(big!.iova % 16384n, 0n);
  assert.is(big!.size, 8192);
  assert.is(sq!.label, 'sq');
  assert.is(backend.maps.values().next().value!.size, Number(big!.iova - sq!.iova) + 8192);
  cq!.bytes[0] = 1;
  assert.is((sq as Window).memory, (cq as Window).memory, 'one memory block');
  // Freeing some members keeps the mapping; the last one releases everything.
  dma.free(sq!);
  dma.free(big!);
  assert.is(backend.maps.size, 1);
  assert.is(cq!.bytes[0], 1);
  dma.free(cq!);
  assert.is(backend.maps.size, 0);
  assert.is(memory.allocated, 0);
  assert.is(dma.mappings, 0);
  assert.is(
    code(() => dma.free(cq!)),
    'ERR_DMA_WINDOW_STATE',
  );
});

test('merged windows are revoked together (type1 v2 cannot split a mapping)', () => {
  const { dma, backend } = make();
  const [a, b] = dma.allocMerged([{ size: 4096 }, { size: 4096 }], DEVICE_WRITES, 'rx ring');
  dma.revoke(b!);
  assert.is((a as Window).state, 'revoked');
  assert.is((b as Window).state, 'revoked');
  assert.is(backend.maps.size, 0);
  dma.free(a!);
  dma.free(b!);
  assert.is(dma.iova.allocated, 0n);
  assert.is(
    code(() => dma.allocMerged([], DEVICE_READS)),
    'ERR_DMA_ARG',
  );
  assert.is(
    code(() => dma.allocMerged([{ size: -1 }], DEVICE_READS)),
    'ERR_DMA_ARG',
  );
});

test('huge-page memory gets a huge-page-aligned IOVA', () => {
  const backend = new RecordingBackend();
  const heap = new HeapMemoryProvider();
  const hugeish = {
    name: 'huge',
    allocate(size: number, o?: { label?: string }) {
      const m = heap.allocate(Math.ceil(size / (2 << 20)) * (2 << 20), o);
      return { ...m, pageSize: 2 << 20 };
    },
  };
  const dma = new IommuDmaAllocator({ backend, memory: hugeish });
  dma.alloc(4096, DEVICE_READS);
  const w = dma.alloc(2 << 20, DEVICE_READS);
  assert.is(w.iova % (2n << 20n), 0n);
});

test.run();
