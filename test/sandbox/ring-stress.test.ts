/**
 * The block ring's notification rules across two processes, under stress: the manager's side here
 * (SandboxBlockClient, with the hybrid poller switching on and off every few dozen microseconds),
 * the container's side in a child process (fixtures/ring-server.ts: polling while busy, completing
 * after random delays). Bursts of reads and writes of every size the slot allows, more at once than
 * the ring holds, for a few seconds. A lost wake-up (a kick left out when the other side was about
 * to sleep: "Kicks" and "Polling" in sandbox/abi/ring.ts) shows as a request that never
 * completes; every read must return what was last written.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSys, EFD_CLOEXEC, EFD_NONBLOCK } from 'linux-sys';
import { SandboxBlockClient } from '../../sandbox/manager/services/block.js';
import { B, ringBytes } from '../../sandbox/abi/block.js';
import { HybridPoller } from '../../sandbox/abi/hybrid-poll.js';
import { createShared } from '../../sandbox/abi/shm.js';

const sys = defaultSys();
const G = { entries: 8, slotBytes: 8192 };
const BS = 512,
  COUNT = 4096;

test('two processes, bursts, polling on and off: every request completes, every read sees the last write', async () => {
  const ring = createShared(sys, 'ring-stress', ringBytes(G));
  const dataBytes = 2 * G.entries * G.slotBytes;
  const data = createShared(sys, 'ring-stress-data', dataBytes);
  const req = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
    cpl = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const client = new SandboxBlockClient(G, { read: data.bytes.subarray(0, dataBytes / 2), write: data.bytes.subarray(dataBytes / 2) });
  client.initRing(ring);
  const entry = fileURLToPath(new URL('./fixtures/ring-server.js', import.meta.url));
  const child = spawn(process.execPath, [entry, JSON.stringify({ ringBytes: ringBytes(G), dataBytes, seed: 12345 })], {
    stdio: ['pipe', 'inherit', 'inherit', ring.fd, data.fd, req, cpl],
  });
  let exited: string | undefined;
  child.on('exit', (code, sig) => {
    exited = `the ring server exited (${code ?? sig})`;
  });
  const violations: string[] = [];
  client.onViolation = (v) => violations.push(v);
  let idleMs = 0.05;
  const poller = new HybridPoller({ idleMs: 0.05, queues: () => [client], yield: () => sys.schedYield() });
  try {
    // The child publishes the geometry before serving.
    const t0 = Date.now();
    while (ring.u32[B.BLOCK_SIZE] === 0) {
      if (exited || Date.now() - t0 > 20_000) throw new Error(exited ?? 'the ring server did not start within 20 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    client.attach({ sys, shm: ring, requestFd: req, completionFd: cpl });
    const shadow = new Uint8Array(BS * COUNT);
    let x = 99;
    const rand = (n: number): number => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return (x >>> 8) % n;
    };
    let done = 0,
      bad = 0;
    const end = Date.now() + 3000;
    for (let burst = 0; Date.now() < end; burst++) {
      // Polling in bursts of bursts: on with a tiny window (it stops and starts all the time), then off.
      if (burst % 50 === 0) {
        idleMs = idleMs > 0 ? 0 : 0.05;
        client.onPost = idleMs > 0 ? () => poller.wake() : () => {};
      }
      const n = 1 + rand(24); // up to three times the ring
      const batch: Promise<void>[] = [];
      // Each burst touches disjoint blocks, so every read has one right answer.
      let lba = rand(COUNT - 16 * 24);
      for (let i = 0; i < n; i++) {
        const blocks = 1 + rand(16);
        const at = lba;
        lba += blocks;
        if (rand(2) === 0) {
          const d = new Uint8Array(blocks * BS).fill((burst * 31 + i) & 0xff);
          shadow.set(d, at * BS);
          batch.push(client.write(at, d));
        } else {
          const want = shadow.slice(at * BS, (at + blocks) * BS);
          batch.push(
            client.read(at, blocks).then((got) => {
              if (!got.every((b, k) => b === want[k])) bad++;
            }),
          );
        }
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(batch),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`burst ${burst}: ${client.pending} request(s) never completed (a lost wake-up), polling ${idleMs > 0 ? 'on' : 'off'}`)),
            5000,
          );
        }),
      ]);
      clearTimeout(timer);
      done += n;
      if (exited) throw new Error(exited);
      const gap = rand(4);
      if (gap === 1) await new Promise((r) => setImmediate(r));
      else if (gap === 2) await new Promise((r) => setTimeout(r, 0));
    }
    assert.is(bad, 0, 'reads returned what was last written');
    assert.equal(violations, []);
    assert.ok(done > 500, `only ${done} requests in 3 s`);
    assert.ok(client.kicks > 0 && client.kicksSaved > 0, `both kinds of kick decisions were taken (${client.kicks} sent, ${client.kicksSaved} left out)`);
  } finally {
    poller.close();
    client.detach();
    child.stdin!.end();
    child.kill();
    ring.close();
    data.close();
    sys.close(req);
    sys.close(cpl);
  }
});

test.run();
