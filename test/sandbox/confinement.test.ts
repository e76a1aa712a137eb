/**
 * The container really is unprivileged: its uid and gid (its sandbox's own when the manager is root),
 * NoNewPrivs 1 and Seccomp 2 in /proc/PID/status, and /dev/vfio out of reach (the filter refuses
 * the open itself: EPERM, whether or not the file exists). An unconfined policy says so.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { defaultSys } from 'linux-sys';
import { parsePolicies } from '../../policies/index.js';
import { SimDevice } from '../../sandbox/manager/sim-device.js';
import { VfioDevice } from '../../sandbox/manager/vfio-device.js';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { IDENTITY_RANGE } from '../../sandbox/spawner/identity.js';
import { simPolicy, until } from './helpers.js';

const root = process.getuid?.() === 0;

function field(status: string, name: string): string {
  const line = status.split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no ${name} in /proc status`);
  return line.slice(name.length + 1).trim();
}

test('the container runs as the policy uid/gid, no_new_privs, seccomp mode 2, /dev/vfio refused', async () => {
  const s = new Supervisor(simPolicy('confined'));
  try {
    await s.start();
    const status = readFileSync(`/proc/${s.pid}/status`, 'utf8');
    if (root) {
      // Its sandbox's own identity, from the dynamic range, as status says.
      const uid = Number(field(status, 'Uid').split(/\s+/)[0]);
      assert.ok(uid >= IDENTITY_RANGE.first && uid <= IDENTITY_RANGE.last && uid !== 65534, `uid ${uid}`);
      assert.is(Number(field(status, 'Gid').split(/\s+/)[0]), uid);
      assert.is(s.status().uid, uid);
      assert.is(s.status().gid, uid);
      assert.is(s.status().uidFromPolicy, true);
    } else {
      assert.is(field(status, 'Uid').split(/\s+/)[0], String(process.getuid!()));
      assert.is(s.status().uidFromPolicy, false, 'status says the container runs as the invoking user');
    }
    assert.is(field(status, 'NoNewPrivs'), '1');
    assert.is(field(status, 'Seccomp'), '2');
    await until('the confinement check log', () => s.events.some((e) => e.text.includes('open of /dev/vfio/vfio refused')), 5000);
    assert.ok(s.events.some((e) => e.text.includes('refused with EPERM')));
    // The container holds no fd to /dev/vfio and none it was not given.
    const { readdirSync, readlinkSync } = await import('node:fs');
    const fds = readdirSync(`/proc/${s.pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${s.pid}/fd/${fd}`);
      } catch {
        return '?';
      }
    });
    assert.ok(!fds.some((l) => l.startsWith('/dev/vfio')), fds.join(' '));
  } finally {
    await s.stop();
  }
});

test('an unconfined policy: no seccomp, and every status and spawn line says UNCONFINED', async () => {
  const s = new Supervisor(simPolicy('loose', 'unconfined: true\ncontainer: { seccomp: none }'));
  try {
    await s.start();
    const status = readFileSync(`/proc/${s.pid}/status`, 'utf8');
    assert.is(field(status, 'Seccomp'), '0');
    assert.is(s.status().unconfined, true);
    assert.ok(s.events.find((e) => e.kind === 'spawn')!.text.includes('UNCONFINED'));
  } finally {
    await s.stop();
  }
});

test('least privilege of the windows: block write data device-read-only, read data device-write-only, access honoured', async () => {
  const s = new Supervisor(simPolicy('windows'));
  try {
    const bd = s.device.blockData!;
    const wr = s.device.grants[bd.writeGrant]!.window,
      rd = s.device.grants[bd.readGrant]!.window;
    assert.equal(s.device.grants[bd.writeGrant]!.perm, { read: true, write: false });
    assert.equal(s.device.grants[bd.readGrant]!.perm, { read: false, write: true });
    // What every device process is told to map (test/sandbox/device/device.test.ts: it maps exactly that, and its IOMMU enforces it).
    const announced = (iova: bigint) => s.sim!.mappings.find((m) => m.iova === iova)!.perm;
    assert.equal(announced(wr.iova), { read: true, write: false }, 'the device cannot write the write-data area');
    assert.equal(announced(rd.iova), { read: false, write: true }, 'the device cannot read the read-data area');
    assert.is(s.sim!.mappings.length, s.device.grants.length, 'one mapping per grant, nothing else');
  } finally {
    await s.stop();
  }
});

test("a policy's explicit access: one mapping with exactly that permission", () => {
  const p = parsePolicies(
    `version: 1
name: explicit
device: sim:nvme
driver: nvme
windows: [ { size: 64KiB, access: read, label: a }, { size: 64KiB, access: write, label: b }, { size: 64KiB, access: read-write, label: c }, { size: 2MiB } ]
`,
    'x.yaml',
  ).policies[0]!.policy;
  const d = new SimDevice(p, defaultSys());
  try {
    assert.equal(
      d.grants.map((g) => [g.label, g.perm.read, g.perm.write]),
      [
        ['a', true, false],
        ['b', false, true],
        ['c', true, true],
        ['window3.device-reads', true, false],
        ['window3.device-writes', false, true],
      ],
    );
  } finally {
    d.release();
  }
});

test('a real device the IOMMU would not confine is refused before anything is opened, unless unconfined', () => {
  const lab = (extra: string) =>
    parsePolicies(
      `version: 1
name: real
device: { pci: "0000:00:01.0" }
driver: nvme
windows: [ { size: 2MiB } ]
${extra}`,
      'x.yaml',
    ).policies[0]!.policy;
  const none = {
    iommus: [],
    groups: [],
    interruptRemapping: { state: 'unknown' as const, evidence: '' },
    vfio: false,
    noIommuMode: false,
    unsafeInterrupts: false,
    summary: '',
  };
  try {
    new VfioDevice(lab(''), defaultSys(), { iommu: none });
    assert.unreachable('no IOMMU must be refused');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_SANDBOX_NOT_CONFINED');
    assert.match((e as Error).message, /no IOMMU is active/);
    assert.match((e as Error).message, /dmabox doctor/);
  }
  const noiommu = { ...none, iommus: [{ name: 'dmar0', kind: 'intel-vt-d' as const }], noIommuMode: true };
  assert.throws(() => new VfioDevice(lab(''), defaultSys(), { iommu: noiommu }), /enable_unsafe_noiommu_mode/);
});

test.run();
