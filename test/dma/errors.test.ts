import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DmaboxError } from '../../common/errors.js';
import { DmaError, type DmaCode } from '../../dma/errors.js';
import { MemlockAccount } from '../../dma/memlock.js';
import { VfioType1Backend } from '../../dma/vfio-backend.js';
import { HeapMemoryProvider } from '../../dma/memory.js';
import { DEVICE_READS } from '../../drivers/contract/platform.js';
import type { Container } from 'vfio-bindings';

test('DmaError is a DmaboxError whose code is one of the DMA codes', () => {
  const e = new DmaError('ERR_DMA_ARG', 'a size of 0 bytes', { fix: 'ask for at least one byte' });
  assert.instance(e, DmaboxError);
  assert.is(e.name, 'DmaError');
  const c: DmaCode = e.code;
  assert.is(c, 'ERR_DMA_ARG');
  // @ts-expect-error: a code of another area is not a DmaCode (the build fails if it ever becomes one)
  assert.ok(new DmaError('ERR_SIM_ARG', 'x'));
});

test('memlock: releasing more than was charged is refused and leaves the account as it was', () => {
  const m = new MemlockAccount({ limit: 1 << 20 });
  m.charge(8192, 'window "a"');
  let err: DmaError | undefined;
  try {
    m.release(12288);
  } catch (e) {
    err = e as DmaError;
  }
  assert.instance(err, DmaError);
  assert.is(err!.code, 'ERR_DMA_ARG');
  assert.match(err!.message, /only 8192 are charged/);
  assert.is(m.charged, 8192);
  assert.throws(
    () => m.release(-1),
    (e: DmaError) => e.code === 'ERR_DMA_ARG',
  );
  m.release(8192);
  assert.is(m.charged, 0);
  assert.throws(
    () => new MemlockAccount({ limit: Number.NaN }),
    (e: DmaError) => e instanceof DmaError && e.code === 'ERR_DMA_ARG',
  );
});

test('the VFIO backend refuses heap memory (no process address) with ERR_DMA_MAP, before the kernel', () => {
  let mapped = 0;
  const container = {
    map: () => {
      mapped++;
    },
    unmap: () => {},
  } as unknown as Container;
  const memory = new HeapMemoryProvider().allocate(4096, { label: 'ring' });
  const backend = new VfioType1Backend(container);
  assert.throws(
    () => backend.map(memory, 0, 0x10000n, 4096, DEVICE_READS),
    (e: DmaError) => e instanceof DmaError && e.code === 'ERR_DMA_MAP' && /memfd provider/.test(e.message),
  );
  assert.is(mapped, 0);
});

test.run();
