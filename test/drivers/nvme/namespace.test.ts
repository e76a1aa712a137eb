/**
 * Namespace on its own, against a fake NamespaceHost: the block API needs nothing of its
 * controller but the transfer limits and "run this command". Splitting at the slot buffer and at
 * MDTS, range checks before anything is posted, data taken out of the slot on success, errors
 * passed through.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Namespace } from '../../../drivers/nvme/namespace.js';
import type { Describe, NamespaceHost, PostCommand, TakeData } from '../../../drivers/nvme/dispatch.js';
import type { IoQueue } from '../../../drivers/nvme/ioqueue.js';
import { NvmOpcode, RW_CDW12 } from '../../../spec/nvme/commands.js';
import { NvmeStatusError } from '../../../drivers/nvme/errors.js';
import { GenericSc, Sct, statusOf } from '../../../spec/nvme/status.js';

interface Posted {
  op: string;
  args: unknown[];
}

/** A host that runs each command at once on a fake queue, recording what was posted, completing it with `status`. */
function fakeHost(limits: { maxTransferBytes: number; mdtsBytes: number }, status = 0) {
  const posted: Posted[] = [];
  const buffer = new Uint8Array(1 << 20);
  // Each submit call is recorded without its slot and its completion handler.
  const record =
    (op: string) =>
    (_slot: number, ...rest: unknown[]): void => {
      posted.push({ op, args: rest.filter((a) => typeof a !== 'function') });
    };
  const queue = {
    read: record('read'),
    write: record('write'),
    flush: record('flush'),
    writeZeroes: record('writeZeroes'),
    discard: record('discard'),
    raw: record('raw'),
    rwPrps: record('rwPrps'),
    rwWindow: record('rwWindow'),
    readData: () => buffer,
    writeData: () => buffer,
  } as unknown as IoQueue;
  const run = (post: PostCommand, take?: TakeData): number => {
    post(queue, 0, () => undefined);
    if (status === 0) take?.(queue, 0);
    return status;
  };
  const host: NamespaceHost = {
    ...limits,
    execute: (what: Describe, post, take) => {
      const st = run(post, take);
      return st === 0 ? Promise.resolve() : Promise.reject(new NvmeStatusError(what(), st));
    },
    executeForStatus: (_what, post) => Promise.resolve(run(post)),
  };
  return { host, posted, buffer };
}

const info = (blocks: number, lbads = 9) => ({
  nsze: BigInt(blocks),
  ncap: BigInt(blocks),
  nuse: 0n,
  nlbaf: 0,
  flbas: 0,
  lbaf: [{ ms: 0, lbads, rp: 0 }],
  blockSize: 2 ** lbads,
});

test('reads and writes are split at the slot buffer; each piece at its own LBA', async () => {
  const { host, posted, buffer } = fakeHost({ maxTransferBytes: 8192, mdtsBytes: 65536 });
  const ns = new Namespace(host, 1, info(1000));
  assert.is(ns.maxBlocksPerCommand, 16);
  buffer.fill(7);
  const got = await ns.read(10, 40);
  assert.equal(
    posted.map((p) => [p.op, p.args[1], p.args[2]]),
    [
      ['read', 10, 16],
      ['read', 26, 16],
      ['read', 42, 8],
    ],
  );
  assert.ok(got.length === 40 * 512 && got.every((b) => b === 7), 'data taken out of the slot buffer');
  posted.length = 0;
  await ns.write(0, new Uint8Array(20 * 512), { fua: true });
  assert.equal(
    posted.map((p) => [p.op, p.args[1], p.args[2], p.args[5]]),
    [
      ['write', 0, 16, true],
      ['write', 16, 4, true],
    ],
  );
});

test("readTo: into the caller's array at its start, split like read; one command for a small read; bad ranges and short arrays rejected, nothing posted", async () => {
  const { host, posted, buffer } = fakeHost({ maxTransferBytes: 8192, mdtsBytes: 65536 });
  const ns = new Namespace(host, 1, info(1000));
  for (let i = 0; i < 8192; i++) buffer[i] = i & 0xff;
  const into = new Uint8Array(40 * 512 + 100).fill(0xee);
  await ns.readTo(10, 40, into);
  assert.equal(
    posted.map((p) => [p.op, p.args[1], p.args[2]]),
    [
      ['read', 10, 16],
      ['read', 26, 16],
      ['read', 42, 8],
    ],
  );
  assert.is(into[8192 + 3], 3, 'the second piece lands 16 blocks in');
  assert.is(into[40 * 512 - 1], 0xff);
  assert.is(into[40 * 512], 0xee, 'nothing written past the blocks read');
  posted.length = 0;
  const small = new Uint8Array(4096);
  await ns.readTo(7, 8, small);
  assert.equal(
    posted.map((p) => [p.op, p.args[1], p.args[2]]),
    [['read', 7, 8]],
  );
  assert.is(small[4095], 4095 & 0xff);
  const code = (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: { code?: string }) => e.code,
    );
  posted.length = 0;
  assert.is(await code(ns.readTo(999, 2, new Uint8Array(1024))), 'ERR_NVME_ARGUMENT', 'past the end');
  assert.is(await code(ns.readTo(0, 2, new Uint8Array(1000))), 'ERR_NVME_ARGUMENT', 'array too small');
  assert.is(posted.length, 0);
  assert.equal(
    await ns.write(0, new Uint8Array(8 * 512)).then(() => posted.map((p) => [p.op, p.args[1], p.args[2]])),
    [['write', 0, 8]],
    'a small write is one command',
  );
});

test("transferPrps: one command over the caller's memory, bounded by MDTS only; FUA on writes", async () => {
  const { host, posted } = fakeHost({ maxTransferBytes: 4096, mdtsBytes: 16384 });
  const ns = new Namespace(host, 3, info(1000));
  await ns.transferPrps(NvmOpcode.WRITE, 5, 32, 0x10000, 0x20000, true);
  assert.equal(posted[0]!.op, 'rwPrps');
  assert.equal(posted[0]!.args, [NvmOpcode.WRITE, 3, 5, 32, 0x10000, 0x20000, RW_CDW12.FUA.mask]);
  await ns.transferPrps(NvmOpcode.READ, 5, 1, 0x10000, 0, true);
  assert.is((posted[1]!.args as number[])[6], 0, 'no FUA on a read');
  const code = (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: { code?: string }) => e.code,
    );
  assert.is(await code(ns.transferPrps(NvmOpcode.READ, 0, 33, 0, 0)), 'ERR_NVME_ARGUMENT', 'beyond MDTS');
  assert.is(await code(ns.transferPrps(NvmOpcode.READ, 999, 2, 0, 0)), 'ERR_NVME_ARGUMENT', 'past the end');
  assert.is(posted.length, 2, 'nothing posted for refused transfers');
});

test('range and size checks come before the host sees anything; device statuses become NvmeStatusError', async () => {
  const { host, posted } = fakeHost({ maxTransferBytes: 65536, mdtsBytes: 65536 }, statusOf(Sct.GENERIC, GenericSc.LBA_OUT_OF_RANGE, true));
  const ns = new Namespace(host, 2, info(100));
  const err = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e: { code?: string; sc?: number; message: string }) => e,
    );
  assert.is((await err(ns.read(100, 1)))?.code, 'ERR_NVME_ARGUMENT');
  assert.is((await err(ns.write(0, new Uint8Array(100))))?.code, 'ERR_NVME_ARGUMENT');
  assert.is((await err(ns.read(0, 1, { bufferOffset: 2 })))?.code, 'ERR_NVME_ARGUMENT');
  assert.is(posted.length, 0);
  const e = await err(ns.read(0, 1));
  assert.is(e?.code, 'ERR_NVME_STATUS');
  assert.is(e?.sc, GenericSc.LBA_OUT_OF_RANGE);
  assert.match(e!.message, /namespace 2: read of 1 block\(s\) at LBA 0 failed: LBA_OUT_OF_RANGE/);
  assert.is(await ns.rawStatus(0x7f, 0, 0, 0), statusOf(Sct.GENERIC, GenericSc.LBA_OUT_OF_RANGE, true), 'raw commands resolve with the status');
});

test('write zeroes and discard split at their own limits', async () => {
  const { host, posted } = fakeHost({ maxTransferBytes: 65536, mdtsBytes: 65536 });
  const ns = new Namespace(host, 1, info(200000));
  await ns.writeZeroes(0, 150000, { deallocate: true });
  assert.equal(
    posted.map((p) => [p.op, p.args[1], p.args[2], p.args[3]]),
    [
      ['writeZeroes', 0, 65536, true],
      ['writeZeroes', 65536, 65536, true],
      ['writeZeroes', 131072, 18928, true],
    ],
  );
  posted.length = 0;
  await ns.discard(7, 150000);
  assert.equal(
    posted.map((p) => [p.op, p.args[1], p.args[2]]),
    [['discard', 7, 150000]],
  );
});

test.run();
