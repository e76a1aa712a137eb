import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { diagnose, formatReport, run, type Check, type DoctorOptions } from '../../cli/doctor.js';

interface Machine {
  release?: string;
  iommus?: string[];
  /** group -> [type, devices (address -> driver or undefined)] */
  groups?: Record<number, { type?: string; devices: Record<string, string | undefined> }>;
  interrupts?: string;
  modules?: string[];
  builtin?: string[];
  devVfio?: boolean;
  devGroups?: number[];
  memlock?: string;
  hugePagesTotal?: number;
  cmdline?: string;
  noiommu?: boolean;
  unsafeInterrupts?: boolean;
}

const IR_INTERRUPTS =
  '           CPU0       CPU1\n  0:         18          0   IR-IO-APIC    2-edge      timer\n 24:          0          0  IR-PCI-MSI-0000:00:01.0    0-edge      nvme0q0\n';
const PLAIN_INTERRUPTS =
  '           CPU0       CPU1\n  0:         18          0   IO-APIC    2-edge      timer\n 24:          0          0  PCI-MSI-0000:00:01.0    0-edge      nvme0q0\n';

/** A fake machine: sys, proc and dev trees laid out like the kernel's. */
function machine(m: Machine): DoctorOptions & { root: string } {
  const root = mkdtempSync(join(tmpdir(), 'dmabox-doctor-'));
  const sys = join(root, 'sys');
  const proc = join(root, 'proc');
  const dev = join(root, 'dev');
  const file = (p: string, text: string) => {
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
  };
  mkdirSync(join(sys, 'class/iommu'), { recursive: true });
  mkdirSync(join(sys, 'kernel/iommu_groups'), { recursive: true });
  mkdirSync(dev, { recursive: true });
  for (const i of m.iommus ?? []) mkdirSync(join(sys, 'class/iommu', i), { recursive: true });
  for (const [g, { type, devices }] of Object.entries(m.groups ?? {})) {
    const gdir = join(sys, 'kernel/iommu_groups', g);
    mkdirSync(join(gdir, 'devices'), { recursive: true });
    if (type) file(join(gdir, 'type'), `${type}\n`);
    for (const [addr, driver] of Object.entries(devices)) {
      const ddir = join(sys, 'devices/pci0000:00', addr);
      mkdirSync(ddir, { recursive: true });
      mkdirSync(join(sys, 'bus/pci/devices'), { recursive: true });
      symlinkSync(ddir, join(sys, 'bus/pci/devices', addr));
      symlinkSync(ddir, join(gdir, 'devices', addr));
      if (driver) {
        mkdirSync(join(sys, 'bus/pci/drivers', driver), { recursive: true });
        symlinkSync(join(sys, 'bus/pci/drivers', driver), join(ddir, 'driver'));
      }
    }
  }
  for (const mod of m.builtin ?? []) mkdirSync(join(sys, 'module', mod), { recursive: true });
  if (m.noiommu !== undefined) file(join(sys, 'module/vfio/parameters/enable_unsafe_noiommu_mode'), m.noiommu ? 'Y\n' : 'N\n');
  if (m.unsafeInterrupts !== undefined) file(join(sys, 'module/vfio_iommu_type1/parameters/allow_unsafe_interrupts'), m.unsafeInterrupts ? 'Y\n' : 'N\n');
  file(join(proc, 'sys/kernel/osrelease'), `${m.release ?? '6.1.0-18-amd64'}\n`);
  file(join(proc, 'interrupts'), m.interrupts ?? IR_INTERRUPTS);
  file(join(proc, 'modules'), (m.modules ?? []).map((x) => `${x} 45056 2 - Live 0x0000000000000000\n`).join(''));
  file(join(proc, 'cmdline'), `${m.cmdline ?? 'console=ttyS0 intel_iommu=on'}\n`);
  file(
    join(proc, 'self/limits'),
    `Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 4096                 files     \nMax locked memory         ${m.memlock ?? 'unlimited'}              ${m.memlock ?? 'unlimited'}              bytes     \n`,
  );
  file(
    join(proc, 'meminfo'),
    `MemTotal:        2000000 kB\nHugePages_Total:     ${m.hugePagesTotal ?? 0}\nHugePages_Free:      ${m.hugePagesTotal ?? 0}\nHugepagesize:       2048 kB\n`,
  );
  if (m.devVfio) file(join(dev, 'vfio/vfio'), '');
  for (const g of m.devGroups ?? []) file(join(dev, 'vfio', String(g)), '');
  return { root, sysRoot: sys, procRoot: proc, devRoot: dev, euid: 1000 };
}

const LAB: Machine = {
  iommus: ['dmar0'],
  groups: {
    0: { type: 'DMA', devices: { '0000:00:00.0': undefined } },
    1: { type: 'DMA', devices: { '0000:00:01.0': 'vfio-pci' } },
    2: { type: 'DMA-FQ', devices: { '0000:00:02.0': 'vfio-pci' } },
  },
  modules: ['vfio_pci', 'vfio_iommu_type1', 'vfio'],
  devVfio: true,
  devGroups: [1, 2],
  hugePagesTotal: 64,
};

const byId = (checks: Check[]) => Object.fromEntries(checks.map((c) => [c.id, c]));

test('a machine with an IOMMU, interrupt remapping and bound devices: all OK, exit 0', async () => {
  const m = machine(LAB);
  const r = diagnose(m);
  assert.equal(
    r.checks.map((c) => `${c.id} ${c.status}`),
    ['kernel OK', 'iommu OK', 'translation OK', 'interrupt-remapping OK', 'vfio-modules OK', 'dev-vfio OK', 'vfio-groups OK', 'memlock OK', 'huge-pages OK'],
  );
  assert.is(r.verdict, 'ok');
  assert.is(r.alternatives, undefined);
  const c = byId(r.checks);
  assert.match(c.iommu!.summary, /dmar0 \(intel-vt-d\)/);
  assert.match(c['interrupt-remapping']!.summary, /IR-IO-APIC/);
  assert.match(c['vfio-groups']!.summary, /1 \(0000:00:01\.0\), 2 \(0000:00:02\.0\)/);
  assert.match(c['dev-vfio']!.summary, /group nodes: 1, 2/);
  const io = {
    out: '',
    err: '',
    o(s: string) {
      io.out += s;
    },
  };
  assert.is(await run([], { out: (s) => io.o(s), err: () => {} }, m), 0);
  assert.match(io.out, /\n {2}OK {4}iommu/);
  assert.match(io.out, /\nOK: IOMMU on/);
});

test('a machine without an IOMMU says exactly that, and points at the simulator and the lab', async () => {
  const m = machine({ interrupts: PLAIN_INTERRUPTS, memlock: '8388608' });
  const r = diagnose(m);
  const c = byId(r.checks);
  assert.is(r.verdict, 'fail');
  assert.is(c.iommu!.status, 'FAIL');
  assert.match(c.iommu!.summary, /^no IOMMU: .*VFIO cannot confine DMA on this machine/);
  assert.match(c.iommu!.fix!, /intel_iommu=on/);
  assert.is(c.translation!.status, 'SKIP');
  assert.is(c['interrupt-remapping']!.status, 'SKIP');
  assert.is(c['vfio-modules']!.status, 'FAIL');
  assert.is(c['dev-vfio']!.status, 'FAIL');
  assert.is(c.memlock!.status, 'WARN');
  assert.match(c.memlock!.summary, /^8 MiB: VFIO pins every DMA window/);
  assert.is(c['huge-pages']!.status, 'WARN');
  const text = formatReport(r);
  assert.match(text, /npm start/);
  assert.match(text, /sim:nvme/);
  assert.match(text, /dmabox lab run/);
  const out: string[] = [];
  assert.is(await run(['--json'], { out: (s) => out.push(s), err: () => {} }, m), 1);
  const j = JSON.parse(out.join(''));
  assert.is(j.verdict, 'fail');
  assert.is(j.alternatives.length, 2);
  assert.is(j.checks.find((x: Check) => x.id === 'iommu').status, 'FAIL');
});

test('an IOMMU switched off on the kernel command line: the fix names the parameter', () => {
  const r = diagnose(machine({ cmdline: 'console=ttyS0 intel_iommu=off' }));
  assert.match(byId(r.checks).iommu!.fix!, /booted with intel_iommu=off: remove it/);
});

test('passthrough: a warning that explains what is and is not confined', () => {
  const m = machine({
    ...LAB,
    groups: { 0: { type: 'identity', devices: { '0000:00:00.0': undefined } }, 1: { type: 'identity', devices: { '0000:00:01.0': 'vfio-pci' } } },
    devGroups: [1],
  });
  const r = diagnose(m);
  const t = byId(r.checks).translation!;
  assert.is(t.status, 'WARN');
  assert.match(t.summary, /all 2 IOMMU groups are in passthrough/);
  assert.match(t.fix!, /iommu=pt/);
  assert.is(r.verdict, 'warn');
});

test('an unviable group: FAIL naming the device, its driver and how to unbind it', async () => {
  const m = machine({
    ...LAB,
    groups: { 7: { type: 'DMA', devices: { '0000:00:1f.0': 'pcieport', '0000:00:1f.2': 'vfio-pci', '0000:00:1f.3': 'snd_hda_intel' } } },
    devGroups: [7],
  });
  const r = diagnose(m);
  const g = byId(r.checks)['vfio-groups']!;
  assert.is(g.status, 'FAIL');
  assert.is(g.summary, 'group 7 is not viable: 0000:00:1f.3 is bound to snd_hda_intel');
  assert.match(g.fix!, /echo 0000:00:1f\.3 > \/sys\/bus\/pci\/devices\/0000:00:1f\.3\/driver\/unbind/);
  assert.is(await run([], { out: () => {}, err: () => {} }, m), 1);
});

test('interrupt remapping off: FAIL with the EPERM it causes; with allow_unsafe_interrupts: WARN', () => {
  const off = byId(diagnose(machine({ ...LAB, interrupts: PLAIN_INTERRUPTS })).checks)['interrupt-remapping']!;
  assert.is(off.status, 'FAIL');
  assert.match(off.summary, /VFIO_SET_IOMMU will fail with EPERM/);
  const unsafe = byId(diagnose(machine({ ...LAB, interrupts: PLAIN_INTERRUPTS, unsafeInterrupts: true })).checks)['interrupt-remapping']!;
  assert.is(unsafe.status, 'WARN');
  assert.match(unsafe.summary, /allow_unsafe_interrupts=Y/);
});

test('VFIO no-IOMMU mode is a FAIL: nothing is confined', () => {
  const r = diagnose(machine({ ...LAB, noiommu: true }));
  assert.is(byId(r.checks).iommu!.status, 'FAIL');
  assert.match(byId(r.checks).iommu!.summary, /no-IOMMU mode/);
});

test('modules: built-in ones (in /sys/module) count as loaded; missing ones are named', () => {
  const built = byId(diagnose(machine({ ...LAB, modules: [], builtin: ['vfio', 'vfio_iommu_type1', 'vfio_pci'] })).checks)['vfio-modules']!;
  assert.is(built.status, 'OK');
  const partial = byId(diagnose(machine({ ...LAB, modules: ['vfio'] })).checks)['vfio-modules']!;
  assert.is(partial.status, 'FAIL');
  assert.is(partial.summary, 'not loaded: vfio_iommu_type1, vfio_pci');
});

test('no device bound to vfio-pci is a warning with the bind commands', () => {
  const g = byId(diagnose(machine({ ...LAB, groups: { 1: { type: 'DMA', devices: { '0000:00:01.0': 'nvme' } } } })).checks)['vfio-groups']!;
  assert.is(g.status, 'WARN');
  assert.match(g.fix!, /driver_override/);
});

test('memlock: root is not limited; a large limit is fine', () => {
  const root = machine({ ...LAB, memlock: '65536' });
  assert.is(byId(diagnose({ ...root, euid: 0 }).checks).memlock!.status, 'OK');
  assert.is(byId(diagnose(machine({ ...LAB, memlock: String(1024 * 2 ** 20) })).checks).memlock!.status, 'OK');
  assert.is(byId(diagnose(machine({ ...LAB, memlock: '65536' })).checks).memlock!.summary.startsWith('64 KiB'), true);
});

test('old kernels: WARN below 5.11, FAIL below 4.0', () => {
  assert.is(byId(diagnose(machine({ ...LAB, release: '5.10.0-28-amd64' })).checks).kernel!.status, 'WARN');
  assert.is(byId(diagnose(machine({ ...LAB, release: '3.16.0-6-amd64' })).checks).kernel!.status, 'FAIL');
});

test('unknown arguments exit 2', async () => {
  assert.is(await run(['--verbose'], { out: () => {}, err: () => {} }), 2);
});

test('isolation: identities, namespaces and cgroups OK when there, WARN with what it costs when not', () => {
  const ok = byId(
    diagnose({
      ...machine(LAB),
      isolation: {
        root: true,
        namespaces: { bwrap: '/usr/bin/bwrap' },
        cgroups: { version: 2, base: '/sys/fs/cgroup/dmabox', controllers: ['memory', 'pids', 'cpu'] },
      },
    }).checks,
  );
  assert.is(ok.identities!.status, 'OK');
  assert.is(ok.namespaces!.status, 'OK');
  assert.match(ok.cgroups!.summary, /cgroup v2 with memory, pids, cpu at \/sys\/fs\/cgroup\/dmabox/);
  const r = diagnose({
    ...machine(LAB),
    isolation: { root: false, namespaces: { why: 'bubblewrap (bwrap) is not installed' }, cgroups: { version: 0, why: 'not root' } },
  });
  const bad = byId(r.checks);
  assert.is(r.verdict, 'warn', 'the sandbox still runs (identity and seccomp), loudly');
  assert.match(bad.identities!.summary, /every container runs as the invoking user/);
  assert.match(bad.namespaces!.summary, /no namespaces for containers: bubblewrap \(bwrap\) is not installed\. .*see the host's processes/);
  assert.match(bad.cgroups!.summary, /no cgroups for containers: not root\. A container's memory is bounded only by Node's heap limit/);
  assert.match(bad.namespaces!.fix!, /apt-get install bubblewrap/);
});

test.run();
