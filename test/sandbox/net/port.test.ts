/**
 * SandboxNicPort without a container: a stand-in supervisor (events, kill) and the test playing the
 * container by writing into the ring memory. Slot ownership both ways, every kind of container
 * lie refused with a kill, the reset at exit (losses counted), and the bridge suspended at exit
 * and resumed at the next READY.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { defaultSys } from 'linux-sys';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { SandboxNicPort, type SuspendableBridge } from '../../../sandbox/manager/services/net.js';
import { N, entry } from '../../../sandbox/abi/net.js';

const sys = defaultSys();

/** The net service's part: the port's owner (violations), and READY and exit passed on to the port. */
class FakeSupervisor extends EventEmitter {
  readonly name: string;
  readonly kills: string[] = [];
  port: SandboxNicPort | undefined;
  constructor(name: string) {
    super();
    this.name = name;
  }
  violation(reason: string): void {
    this.kills.push(`violation: ${reason}`);
  }
  ready(): void {
    this.port!.onReady();
  }
  exit(): void {
    this.port!.onExit();
  }
}

/** The container's part: publish a MAC, link and SERVING (what NicServer.start does). */
function serve(p: SandboxNicPort, mac = [0x52, 0x54, 0, 1, 2, 3]): void {
  const u = (p as unknown as { u32: Uint32Array }).u32;
  u[N.MAC_LO] = (mac[0]! | (mac[1]! << 8) | (mac[2]! << 16) | (mac[3]! << 24)) >>> 0;
  u[N.MAC_HI] = mac[4]! | (mac[5]! << 8);
  u[N.LINK] = 1;
  u[N.SERVING] = 1;
}
const u32 = (p: SandboxNicPort): Uint32Array => (p as unknown as { u32: Uint32Array }).u32;

function setup(name: string): { sup: FakeSupervisor; port: SandboxNicPort } {
  const sup = new FakeSupervisor(name);
  const port = new SandboxNicPort(sup, { sys, geometry: { txSlots: 32, rxSlots: 32 } });
  sup.port = port;
  serve(port);
  sup.ready();
  return { sup, port };
}

const PEER_MAC = [0x52, 0x55, 0x0a, 0, 2, 2];

/**
 * The container hands over RX slot `slot` with `len` bytes, a frame from a peer to the port's MAC
 * (the addresses a NIC delivers); `forged` writes the port's own MAC as the source instead.
 */
function handOver(port: SandboxNicPort, ...entries: [number, number][]): void {
  handOverFrames(port, false, ...entries);
}
function handOverFrames(port: SandboxNicPort, forged: boolean, ...entries: [number, number][]): void {
  const u = u32(port),
    L = port.layout;
  let t = u[N.RXC_TAIL]!;
  for (const [slot, len] of entries) {
    if (slot < L.rxSlots) {
      const off = port.rxOffset(slot);
      port.rxBytes.set(port.mac, off);
      port.rxBytes.set(forged ? port.mac : PEER_MAC, off + 6);
    }
    u[(L.rxc >>> 2) + (t % L.rxSlots)] = entry(slot, len);
    t++;
  }
  Atomics.store(u, N.RXC_TAIL, t);
}

test('attach at READY: MAC and link taken from the ring', () => {
  const { port } = setup('p-attach');
  try {
    assert.ok(port.isAttached);
    assert.ok(port.linkUp());
    assert.equal([...port.mac], [0x52, 0x54, 0, 1, 2, 3]);
  } finally {
    port.close();
  }
});

test('RX: frames with forged addresses are dropped, counted and their slots offered back; one named twice is still a duplicate', () => {
  const { sup, port } = setup('p-forged');
  try {
    const u = u32(port),
      L = port.layout;
    const rxfTail = u[N.RXF_TAIL]!;
    handOverFrames(port, true, [3, 60], [4, 60]);
    handOver(port, [5, 60]);
    const b = new PacketBatch(8);
    assert.is(port.rx(b), 1);
    assert.is(b.buf[0], 5, 'only the honest frame');
    assert.is(port.counters.spoofed, 2);
    assert.is(port.counters.rxFrames, 1);
    // the refused slots are the container's again, on RXF at once
    assert.is(u[N.RXF_TAIL], rxfTail + 2);
    assert.equal([u[(L.rxf >>> 2) + (rxfTail % L.rxSlots)], u[(L.rxf >>> 2) + ((rxfTail + 1) % L.rxSlots)]], [3, 4]);
    port.rxFree(b);
    // a multicast source, another station as destination: dropped too; a broadcast destination is fine
    const put = (slot: number, dst: number[], src: number[]) => {
      port.rxBytes.set(dst, port.rxOffset(slot));
      port.rxBytes.set(src, port.rxOffset(slot) + 6);
      const t = u[N.RXC_TAIL]!;
      u[(L.rxc >>> 2) + (t % L.rxSlots)] = entry(slot, 60);
      Atomics.store(u, N.RXC_TAIL, t + 1);
    };
    put(6, [...port.mac], [0x01, 0, 0x5e, 0, 0, 1]);
    put(7, [0x52, 0x54, 0, 9, 9, 9], PEER_MAC);
    put(8, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], PEER_MAC);
    b.clear();
    assert.is(port.rx(b), 1);
    assert.is(b.buf[0], 8);
    assert.is(port.counters.spoofed, 4);
    port.rxFree(b);
    // the same slot named twice in one drain: the first is refused, the second is a duplicate
    handOverFrames(port, true, [9, 60], [9, 60]);
    b.clear();
    port.rx(b);
    assert.ok(
      sup.kills.some((k) => /does not hold \(a duplicate\)/.test(k)),
      sup.kills.join('\n'),
    );
  } finally {
    port.close();
  }
});

test('RX: more forged frames within a second than the limit is a violation', () => {
  const sup = new FakeSupervisor('p-forged-flood');
  const port = new SandboxNicPort(sup, { sys, geometry: { txSlots: 32, rxSlots: 32 }, spoofLimit: 4 });
  sup.port = port;
  serve(port);
  sup.ready();
  try {
    handOverFrames(port, true, [0, 60], [1, 60], [2, 60], [3, 60]);
    port.rx(new PacketBatch(8));
    assert.equal(sup.kills, []);
    handOverFrames(port, true, [4, 60]);
    port.rx(new PacketBatch(8));
    assert.is(sup.kills.length, 1);
    assert.match(sup.kills[0]!, /5 received frames with forged addresses within a second/);
    assert.is(port.isAttached, false);
  } finally {
    port.close();
  }
});

test('TX: slots go bridge -> container -> back; a slot not held is refused', () => {
  const { port } = setup('p-tx');
  try {
    const b = new PacketBatch(32);
    const got: number[] = [];
    for (let i = 0; i < 32; i++) {
      const s = port.txAlloc();
      assert.ok(s >= 0);
      got.push(s);
      b.push(s, 60);
    }
    assert.is(port.txAlloc(), -1, 'all 32 slots out');
    assert.is(port.tx(b), 32);
    assert.is(b.count, 0);
    const u = u32(port),
      L = port.layout;
    assert.is(u[N.TXS_TAIL], 32);
    assert.is(u[L.txs >>> 2]! >>> 16, 60);
    assert.throws(() => port.txFree(got[0]!), /not a TX slot the bridge holds/);
    // the container copies 3 out and returns them
    for (let i = 0; i < 3; i++) u[(L.txc >>> 2) + i] = got[i]!;
    Atomics.store(u, N.TXC_TAIL, 3);
    const s = port.txAlloc();
    assert.ok(got.slice(0, 3).includes(s), 'a returned slot is reused');
    port.txFree(s);
  } finally {
    port.close();
  }
});

test('RX: a good handover, then a duplicate kills', () => {
  const { sup, port } = setup('p-rx');
  try {
    handOver(port, [4, 60], [9, 1514]);
    const b = new PacketBatch(32);
    assert.is(port.rx(b), 2);
    assert.equal([b.buf[0], b.len[0], b.buf[1], b.len[1]], [4, 60, 9, 1514]);
    handOver(port, [4, 60]); // slot 4 is the bridge's now
    const b2 = new PacketBatch(32);
    assert.is(port.rx(b2), 0);
    assert.is(sup.kills.length, 1);
    assert.match(sup.kills[0]!, 'a duplicate');
    assert.is(port.isAttached, false);
    port.rxFree(b); // the bridge can still give back what it holds
  } finally {
    port.close();
  }
});

for (const [what, act, says] of [
  ['an impossible RX index', (p: SandboxNicPort) => Atomics.store(u32(p), N.RXC_TAIL, 1000), 'RX completion index moved by 1000 while the container holds 32'],
  [
    'an RX index beyond the slots held',
    (p: SandboxNicPort) => {
      const b = new PacketBatch(32);
      handOver(p, [0, 60]);
      p.rx(b);
      Atomics.store(u32(p), N.RXC_TAIL, 33);
    },
    'RX completion index moved by 32 while the container holds 31 RX slots',
  ],
  ['an unknown RX slot', (p: SandboxNicPort) => handOver(p, [32, 60]), 'names slot 32; there are 32'],
  ['a runt', (p: SandboxNicPort) => handOver(p, [1, 13]), 'RX completion of 13 bytes'],
  ['an oversized frame', (p: SandboxNicPort) => handOver(p, [1, 1515]), 'RX completion of 1515 bytes'],
  ['a TX index with nothing posted', (p: SandboxNicPort) => Atomics.store(u32(p), N.TXC_TAIL, 1), 'TX completion index moved by 1 while the container holds 0'],
] as const) {
  test(`${what} kills the container and stops the port reading`, () => {
    const { sup, port } = setup(`p-bad-${what.replace(/\W/g, '')}`.slice(0, 30));
    try {
      act(port);
      const b = new PacketBatch(32);
      assert.is(port.rx(b), 0);
      assert.is(b.count, 0);
      assert.is(sup.kills.length, 1);
      assert.ok(sup.kills[0]!.includes(says), `${sup.kills[0]} says ${says}`);
      assert.is(port.counters.violations, 1);
      assert.is(port.rx(b), 0, 'nothing more is read');
      assert.is(port.tx(b), 0);
    } finally {
      port.close();
    }
  });
}

test('frames after a bad entry are not read; those before it are', () => {
  const { sup, port } = setup('p-partial');
  try {
    handOver(port, [1, 60], [2, 60], [3, 9000 & 0xffff], [4, 60]);
    const b = new PacketBatch(32);
    assert.is(port.rx(b), 2);
    assert.is(b.count, 2, 'count and batch agree (the bridge checks that)');
    assert.is(sup.kills.length, 1);
  } finally {
    port.close();
  }
});

test('a READY with a multicast or zero MAC, or without SERVING, or with another MAC after a restart, kills', () => {
  for (const [mac, serving, says] of [
    [[1, 0, 0, 0, 0, 1], 1, 'not a unicast'],
    [[0, 0, 0, 0, 0, 0], 1, 'not a unicast'],
    [[0x52, 0, 0, 0, 0, 1], 0, 'SERVING is not 1'],
  ] as const) {
    const sup = new FakeSupervisor('p-mac');
    const port = new SandboxNicPort(sup, { sys, geometry: { txSlots: 32, rxSlots: 32 } });
    sup.port = port;
    try {
      serve(port, [...mac]);
      u32(port)[N.SERVING] = serving;
      sup.ready();
      assert.is(port.isAttached, false);
      assert.ok(sup.kills[0]?.includes(says), `${sup.kills[0]} says ${says}`);
    } finally {
      port.close();
    }
  }
  const { sup, port } = setup('p-mac2');
  try {
    sup.exit();
    serve(port, [0x52, 0x54, 0, 9, 9, 9]);
    sup.ready();
    assert.is(port.isAttached, false);
    assert.match(sup.kills[0]!, 'another MAC');
  } finally {
    port.close();
  }
});

test('exit: TX slots the container held are counted lost and come back; the ring is fresh; the bridge is suspended, then resumed at READY', async () => {
  const { sup, port } = setup('p-exit');
  const calls: string[] = [];
  const bridge: SuspendableBridge = {
    isRunning: true,
    state: 'reading',
    suspend: async () => {
      calls.push('suspend');
    },
    resume: (p) => {
      calls.push(p === port ? 'resume' : 'resume-other');
    },
  };
  try {
    port.join(bridge);
    const b = new PacketBatch(32);
    for (let i = 0; i < 5; i++) b.push(port.txAlloc(), 100);
    port.tx(b);
    const held = port.txAlloc(); // one the bridge keeps (queued)
    handOver(port, [0, 60]); // one handed over, never taken
    sup.exit();
    assert.is(port.isAttached, false);
    assert.is(port.counters.lostInRestart, 6);
    const u = u32(port);
    assert.is(u[N.TXS_TAIL], 0);
    assert.is(u[N.RXC_TAIL], 0);
    assert.is(u[N.RXF_TAIL], 32, 'every RX slot offered to the next container');
    assert.is(u[N.SERVING], 0);
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, ['suspend']);
    port.txFree(held); // the bridge gives back its queued slot (what suspend does)
    let free = 0;
    while (port.txAlloc() >= 0) free++;
    assert.is(free, 32, 'every TX slot is free again');
    serve(port);
    sup.ready();
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, ['suspend', 'resume']);
    assert.is(port.counters.attaches, 2);
  } finally {
    port.close();
  }
});

test('a bridge that failed (a port broke its contract) is suspended at the exit and resumed with the next container', async () => {
  const { sup, port } = setup('p-failed');
  const calls: string[] = [];
  const bridge: SuspendableBridge = {
    isRunning: false,
    state: 'failed',
    suspend: async () => {
      calls.push('suspend');
    },
    resume: () => {
      calls.push('resume');
    },
  };
  try {
    port.join(bridge);
    sup.exit();
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, ['suspend']);
    serve(port);
    sup.ready();
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, ['suspend', 'resume'], 'the failed bridge is revived with the new container');
  } finally {
    port.close();
  }
});

test('kicks follow the ring rule: none while the container is behind on a ring or polls it, one once it caught up', () => {
  const { port } = setup('p-kicks');
  try {
    const u = u32(port),
      L = port.layout;
    sys.eventfdRead(port.kickFd);
    const kicked = (): boolean => sys.eventfdRead(port.kickFd) > 0n;
    const send = (n: number): void => {
      const b = new PacketBatch(32);
      for (let i = 0; i < n; i++) b.push(port.txAlloc(), 60);
      port.tx(b);
    };
    send(2);
    assert.ok(kicked(), 'TXS: the container had taken everything before: kick');
    send(2);
    assert.not.ok(kicked(), 'TXS: it has not taken the first two yet: no kick');
    Atomics.store(u, N.TXS_HEAD, 4); // the container takes all four
    Atomics.store(u, N.TXS_POLLED, 1); // and polls TXS
    send(1);
    assert.not.ok(kicked(), 'TXS: polled: no kick');
    Atomics.store(u, N.TXS_POLLED, 0);
    Atomics.store(u, N.TXS_HEAD, 5);
    send(1);
    assert.ok(kicked(), 'TXS: caught up and not polling: kick');
    // RXF: the ring starts with every slot offered; the container has taken none of them.
    handOver(port, [3, 60]);
    const b = new PacketBatch(32);
    assert.is(port.rx(b), 1);
    port.rxFree(b);
    assert.not.ok(kicked(), 'RXF: the container is behind (it has not taken the slots offered at start)');
    Atomics.store(u, N.RXF_HEAD, L.rxSlots + 1); // it takes them all
    handOver(port, [4, 60]);
    port.rx(b);
    port.rxFree(b);
    assert.ok(kicked(), 'RXF: caught up: kick');
  } finally {
    port.close();
  }
});

test('waitRx is bounded and wakes on the notify eventfd', async () => {
  const { port } = setup('p-wait');
  try {
    const t0 = performance.now();
    assert.is(await port.waitRx(30), false);
    assert.ok(performance.now() - t0 < 1000);
    const w = port.waitRx(5000);
    handOver(port, [2, 60]);
    sys.eventfdWrite(port.notifyFd, 1n);
    assert.is(await w, true);
  } finally {
    port.close();
  }
});

test.run();
