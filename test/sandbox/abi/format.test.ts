/**
 * Every shared-memory format carries a magic and a version (sandbox/abi/format.ts): the container
 * refuses memory of another format or version when it maps it, with an error naming the format,
 * both versions and the fix; the manager, reading back a header the container could have written,
 * treats a changed one as a violation. One test per format: the block ring, the register mailbox,
 * the packet rings.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSys, EFD_CLOEXEC, EFD_NONBLOCK } from 'linux-sys';
import { AbiError } from '../../../sandbox/abi/errors.js';
import { checkFormat, formatProblem, writeFormat, type SharedFormat } from '../../../sandbox/abi/format.js';
import { B, BLOCK_FORMAT, BLOCK_VERSION, dataAreaBytes, ringBytes } from '../../../sandbox/abi/block.js';
import { MAILBOX_BYTES, MAILBOX_FORMAT, MAILBOX_VERSION, W, initMailbox } from '../../../sandbox/abi/mailbox.js';
import { N, NET_FORMAT, NET_VERSION } from '../../../sandbox/abi/net.js';
import { createShared } from '../../../sandbox/abi/shm.js';
import { SandboxBlockClient } from '../../../sandbox/manager/services/block.js';
import { BlockServer } from '../../../sandbox/container/services/block.js';
import { GuestMailbox } from '../../../sandbox/container/mailbox.js';
import { NicServer } from '../../../sandbox/container/services/net.js';
import { SandboxNicPort } from '../../../sandbox/manager/services/net.js';
import type { NetDevice } from '../../../drivers/contract/net.js';

const sys = defaultSys();

/** What a refusal must say: the format, both versions, and that both sides must be one build. */
function refused(make: () => unknown, f: SharedFormat, got: number): void {
  try {
    make();
    assert.unreachable(`${f.name} of version ${got} was accepted`);
  } catch (e) {
    assert.instance(e, AbiError);
    const err = e as AbiError;
    assert.is(err.code, 'ERR_ABI_VERSION');
    assert.ok(err.message.startsWith(`${f.name}: version ${got}, and this build speaks version ${f.version} only`), err.message);
    assert.match(err.fix ?? '', /same dmabox build/);
  }
}

test('checkFormat: a foreign magic is ERR_ABI_MAGIC, another version ERR_ABI_VERSION, this build passes', () => {
  const f: SharedFormat = { name: 'test page', magic: 0x74736574, version: 3, magicWord: 0, versionWord: 5 };
  const u32 = new Uint32Array(8);
  assert.throws(
    () => checkFormat(u32, f),
    (e: AbiError) => e.code === 'ERR_ABI_MAGIC' && /test page: magic 0x00000000 where 0x74736574 belongs/.test(e.message),
  );
  writeFormat(u32, f);
  assert.is(formatProblem(u32, f), null);
  checkFormat(u32, f);
  u32[5] = 4;
  assert.throws(
    () => checkFormat(u32, f),
    (e: AbiError) => e.code === 'ERR_ABI_VERSION' && e.message.includes('version 4, and this build speaks version 3'),
  );
});

test('block ring: the container refuses another version; the manager refuses a header the container changed', () => {
  const G = { entries: 4, slotBytes: 4096 };
  const client = new SandboxBlockClient(G, { read: new Uint8Array(dataAreaBytes(G)), write: new Uint8Array(dataAreaBytes(G)) });
  const shm = createShared(sys, 'format-block', ringBytes(G));
  const req = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
    cpl = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  try {
    client.initRing(shm);
    assert.is(shm.u32[B.VERSION], BLOCK_VERSION);
    new BlockServer(sys, shm, req, cpl); // this build's ring is accepted
    shm.u32[B.VERSION] = BLOCK_VERSION + 1;
    refused(() => new BlockServer(sys, shm, req, cpl), BLOCK_FORMAT, BLOCK_VERSION + 1);
    shm.u32[B.VERSION] = 0; // a ring from before the version word
    refused(() => new BlockServer(sys, shm, req, cpl), BLOCK_FORMAT, 0);
    // The manager reads the header back at READY: the container wrote the geometry, and a new version.
    shm.u32[B.BLOCK_SIZE] = 512;
    shm.u32[B.BLOCKS_LO] = 64;
    const seen: string[] = [];
    client.onViolation = (r) => seen.push(r);
    assert.throws(() => client.attach({ sys, shm, requestFd: req, completionFd: cpl }), /changed the block ring's header/);
    assert.match(seen[0]!, /block ring: version 0/);
    assert.not.ok(client.attached);
  } finally {
    shm.close();
    sys.close(req);
    sys.close(cpl);
  }
});

test('register mailbox: the container refuses one without the magic or of another version', () => {
  const shm = createShared(sys, 'format-mailbox', MAILBOX_BYTES);
  const kick = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  try {
    assert.throws(
      () => new GuestMailbox(sys, shm, kick),
      (e: AbiError) => e.code === 'ERR_ABI_MAGIC' && e.message.startsWith('register mailbox: magic 0x00000000'),
    );
    initMailbox(shm.u32);
    assert.is(shm.u32[W.VERSION], MAILBOX_VERSION);
    new GuestMailbox(sys, shm, kick);
    shm.u32[W.VERSION] = MAILBOX_VERSION + 1;
    refused(() => new GuestMailbox(sys, shm, kick), MAILBOX_FORMAT, MAILBOX_VERSION + 1);
  } finally {
    shm.close();
    sys.close(kick);
  }
});

/** The port's owner: a sandbox's name, and where a violation goes (the supervisor kills the container). */
class FakeOwner {
  readonly name = 'format-net';
  readonly kills: string[] = [];
  violation(reason: string): void {
    this.kills.push(`violation: ${reason}`);
  }
}

test('packet rings: the container refuses another version; the manager kills a container that changed the header', () => {
  const sup = new FakeOwner();
  const port = new SandboxNicPort(sup, { sys, geometry: { txSlots: 32, rxSlots: 32 } });
  const u = (port as unknown as { u32: Uint32Array }).u32;
  const shm = { fd: -1, size: port.layout.bytes, bytes: new Uint8Array(u.buffer), u32: u, view: new DataView(u.buffer), close() {} };
  // NicServer reads only its pools' memory before it checks the header.
  const pool = { window: { bytes: new Uint8Array(4096) } };
  const nic = { txPool: pool, rxPool: pool } as unknown as NetDevice;
  try {
    assert.is(u[N.VERSION], NET_VERSION);
    new NicServer(sys, shm, port.kickFd, port.notifyFd, nic);
    u[N.VERSION] = 1; // the rings before they followed ring.ts
    refused(() => new NicServer(sys, shm, port.kickFd, port.notifyFd, nic), NET_FORMAT, 1);
    // READY with the header changed: a violation, the container killed, the port not attached.
    u[N.MAC_LO] = 0x01005452;
    u[N.MAC_HI] = 0x0302;
    u[N.SERVING] = 1;
    port.onReady();
    assert.not.ok(port.isAttached);
    assert.match(sup.kills[0]!, /violation: net ring: the container changed the ring header: packet rings: version 1/);
  } finally {
    port.close();
  }
});

test.run();
