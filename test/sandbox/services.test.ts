/**
 * Services per driver kind: a block sandbox gets the block ring and its data areas, a NIC sandbox
 * the packet rings and nothing of the block service; each container's boot parameters list what
 * its service handed over; the manager and the container make services by kind, never by driver name.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { PARAM } from '../../sandbox/abi/boot.js';
import { simPolicy } from './helpers.js';
import { nicPolicy } from './net/helpers.js';

/** The boot parameters of the sandbox's current container. */
function params(s: Supervisor): Map<string, string> {
  return (s as unknown as { current: { params: Map<string, string> } }).current.params;
}

test('a NIC sandbox: the net service only, no block ring, no block data areas in its windows', async () => {
  const s = new Supervisor(nicPolicy('svc-nic'));
  try {
    await s.start();
    assert.is(s.kind, 'net');
    assert.is(s.device.blockData, undefined, 'no block data areas reserved');
    const p = params(s);
    assert.is(p.get(PARAM.SERVICES), 'net');
    assert.is(p.get(PARAM.DRIVER_KIND), 'net');
    for (const k of [PARAM.NET_RING_FD, PARAM.NET_RING_BYTES, PARAM.NET_KICK_FD, PARAM.NET_NOTIFY_FD]) assert.ok(p.has(k), k);
    assert.not.ok(
      [...p.keys()].some((k) => k.startsWith('block.')),
      'no block parameter',
    );
    assert.ok(s.nic);
    assert.throws(
      () => s.block,
      (e: { code?: string }) => e.code === 'ERR_SANDBOX_STATE',
    );
    const st = s.status();
    assert.ok('net' in st && !('io' in st));
  } finally {
    await s.stop();
  }
});

test('a block sandbox: the block service only; its ring is made fresh for every container', async () => {
  const s = new Supervisor(simPolicy('svc-block'));
  try {
    await s.start();
    assert.is(s.kind, 'block');
    const p = params(s);
    assert.is(p.get(PARAM.SERVICES), 'block');
    for (const k of [
      PARAM.BLOCK_RING_FD,
      PARAM.BLOCK_REQUEST_FD,
      PARAM.BLOCK_COMPLETION_FD,
      PARAM.BLOCK_DATA_READ_WINDOW,
      PARAM.BLOCK_DATA_WRITE_WINDOW,
      PARAM.BLOCK_DATA_BYTES,
    ])
      assert.ok(p.has(k), k);
    assert.not.ok(
      [...p.keys()].some((k) => k.startsWith('net.')),
      'no net parameter',
    );
    assert.is(s.nic, undefined);
    // fd slots are announced in order after the fixed ones; none is reused within a container
    const slots = [...p.entries()].filter(([k]) => k.endsWith('.fd')).map(([, v]) => Number(v));
    assert.ok(slots.every((x) => x >= 5) && new Set(slots).size === slots.length, slots.join(','));
    const st = s.status();
    assert.ok('io' in st && !('net' in st));
  } finally {
    await s.stop();
  }
});

test('no driver-name branch and no driver import in the manager or the container: services are chosen by kind', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = join(here, here.split(sep).includes('dist') ? '../../..' : '../..', sep);
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.ts')) files.push(p);
    }
  };
  walk(join(root, 'sandbox', 'manager'));
  walk(join(root, 'sandbox', 'container'));
  // A branch on the driver's name, an import of a driver, or the old side channel.
  const offenders = files.filter((f) => /driver\.name\s*[!=]==|from '[./]*drivers\/(nvme|e1000e)\/|attachToContainers/.test(readFileSync(f, 'utf8')));
  assert.equal(
    offenders.map((f) => f.slice(root.length)),
    [],
  );
});

test.run();
