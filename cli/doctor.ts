/**
 * `dmabox doctor [--json]`: can this machine confine a device's DMA with VFIO, and if not, why
 * not and what to do. Each check is OK, WARN or FAIL with its fix (SKIP when a check cannot run
 * because an earlier one failed); the exit status is 1 when any check FAILs. On a machine with no
 * IOMMU it says so and points at what works without one: the simulator and the QEMU lab.
 *
 * Everything is read from sysfs, procfs and /dev, whose roots are injectable so tests run against
 * fake trees. IOMMU, group and interrupt-remapping facts come from vfio-bindings' iommuStatus().
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { groupBlockers, iommuStatus, type IommuStatus } from 'vfio-bindings';
import type { CgroupHost } from '../sandbox/spawner/cgroup.js';
import { IDENTITY_RANGE } from '../sandbox/spawner/identity.js';
import { launchHost, type LaunchHost } from '../sandbox/spawner/host.js';

export type CheckStatus = 'OK' | 'WARN' | 'FAIL' | 'SKIP';

export interface Check {
  id: string;
  status: CheckStatus;
  /** What was found, in one line. */
  summary: string;
  /** What to do about it (absent when OK). */
  fix?: string;
}

export interface DoctorOptions {
  /** Default /sys. */
  sysRoot?: string;
  /** Default /proc. */
  procRoot?: string;
  /** Default /dev. */
  devRoot?: string;
  /** Effective uid (default process.geteuid()). */
  euid?: number;
  /**
   * What the host offers sandboxed processes (identities, namespaces, cgroups). Default: detected
   * (sandbox/spawner/host.ts) when no fake root is given; with fake roots and none given, those
   * checks are left out.
   */
  isolation?: Pick<LaunchHost, 'root' | 'namespaces' | 'cgroups'>;
}

export interface DoctorReport {
  verdict: 'ok' | 'warn' | 'fail';
  /** vfio-bindings' one-line summary. */
  summary: string;
  checks: Check[];
  /** What to use instead, when real VFIO is not possible here. */
  alternatives?: string[];
}

const MODULES = ['vfio', 'vfio_iommu_type1', 'vfio_pci'];
const MiB = 2 ** 20;
/** Below this memlock limit an unprivileged manager cannot pin a typical set of windows. */
const MEMLOCK_WANTED = 256 * MiB;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function list(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

export function diagnose(options: DoctorOptions = {}): DoctorReport {
  const sys = options.sysRoot ?? '/sys';
  const proc = options.procRoot ?? '/proc';
  const dev = options.devRoot ?? '/dev';
  const euid = options.euid ?? process.geteuid?.() ?? -1;
  const status = iommuStatus({ root: sys, procRoot: proc, devRoot: dev });
  const cmdline = read(join(proc, 'cmdline'))?.trim() ?? '';
  const hasIommu = status.iommus.length > 0 && !status.noIommuMode;

  const checks: Check[] = [
    kernelCheck(read(join(proc, 'sys/kernel/osrelease'))?.trim()),
    iommuCheck(status, cmdline),
    translationCheck(status, hasIommu),
    interruptCheck(status, hasIommu),
    modulesCheck(sys, read(join(proc, 'modules'))),
    devVfioCheck(status, dev),
    groupsCheck(status, hasIommu, dev),
    memlockCheck(read(join(proc, 'self/limits')), euid),
    hugePagesCheck(read(join(proc, 'meminfo'))),
  ];
  const isolation = options.isolation ?? (options.sysRoot || options.procRoot || options.devRoot ? undefined : launchHost());
  if (isolation) checks.push(identityCheck(isolation.root), namespaceCheck(isolation.namespaces), cgroupCheck(isolation.cgroups));
  const verdict = checks.some((c) => c.status === 'FAIL') ? 'fail' : checks.some((c) => c.status === 'WARN') ? 'warn' : 'ok';
  const report: DoctorReport = { verdict, summary: status.summary, checks };
  if (!hasIommu) {
    report.alternatives = [
      'the simulator (software IOMMU and device models, no root): `npm start` runs the demo; policies with `device: sim:nvme` or `device: sim:e1000e` (see policies/examples/sim-nvme.yaml) run anywhere',
      'the QEMU lab (an emulated Intel VT-d IOMMU, real VFIO in a guest): `dmabox lab run`',
    ];
  }
  return report;
}

function kernelCheck(release: string | undefined): Check {
  if (!release) return { id: 'kernel', status: 'WARN', summary: 'kernel version unknown (/proc/sys/kernel/osrelease unreadable)', fix: 'is /proc mounted?' };
  const m = /^(\d+)\.(\d+)/.exec(release);
  const v = m ? Number(m[1]) * 1000 + Number(m[2]) : 0;
  if (v < 4000)
    return { id: 'kernel', status: 'FAIL', summary: `Linux ${release}: too old for VFIO type1v2`, fix: 'run Linux 5.11 or newer (Debian 12 ships 6.1)' };
  if (v < 5011)
    return {
      id: 'kernel',
      status: 'WARN',
      summary: `Linux ${release}: no IOMMU group type in sysfs before 5.11, so passthrough cannot be detected`,
      fix: 'run Linux 5.11 or newer (Debian 12 ships 6.1)',
    };
  return { id: 'kernel', status: 'OK', summary: `Linux ${release}` };
}

function iommuCheck(s: IommuStatus, cmdline: string): Check {
  if (s.noIommuMode) {
    return {
      id: 'iommu',
      status: 'FAIL',
      summary: 'VFIO is in no-IOMMU mode (enable_unsafe_noiommu_mode=Y): devices can DMA anywhere, nothing is confined',
      fix: 'echo N > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode, and enable a real IOMMU',
    };
  }
  if (s.iommus.length === 0) {
    const off = /\b(intel_iommu=off|amd_iommu=off|iommu=off)\b/.exec(cmdline);
    return {
      id: 'iommu',
      status: 'FAIL',
      summary: 'no IOMMU: /sys/class/iommu is empty, so VFIO cannot confine DMA on this machine',
      fix: off
        ? `the kernel was booted with ${off[1]}: remove it from the kernel command line and reboot`
        : 'enable VT-d (Intel) or AMD-Vi in the firmware, boot with intel_iommu=on (or amd_iommu=on); in a VM give it a virtual IOMMU (QEMU: -device intel-iommu)',
    };
  }
  const names = s.iommus.map((i) => `${i.name} (${i.kind})`).join(', ');
  return { id: 'iommu', status: 'OK', summary: `IOMMU present: ${names}` };
}

function translationCheck(s: IommuStatus, hasIommu: boolean): Check {
  if (!hasIommu) return { id: 'translation', status: 'SKIP', summary: 'no IOMMU, nothing to translate' };
  if (s.groups.length === 0)
    return {
      id: 'translation',
      status: 'FAIL',
      summary: 'an IOMMU is present but there are no IOMMU groups: it is not translating',
      fix: 'boot with intel_iommu=on (or amd_iommu=on) and check dmesg for DMAR / AMD-Vi errors',
    };
  const pt = s.groups.filter((g) => g.domain === 'passthrough');
  if (pt.length === s.groups.length) {
    return {
      id: 'translation',
      status: 'WARN',
      summary: `all ${pt.length} IOMMU groups are in passthrough (identity): devices on host drivers are not confined; devices bound to vfio-pci still get a translated domain of VFIO's`,
      fix: 'for full translation boot without iommu=pt / iommu.passthrough=1; dmabox sandboxes stay confined either way',
    };
  }
  if (pt.length > 0) {
    return {
      id: 'translation',
      status: 'WARN',
      summary: `groups ${pt.map((g) => g.group).join(', ')} are in passthrough (identity) while others translate`,
      fix: 'boot without iommu=pt to translate every group',
    };
  }
  const unknown = s.groups.filter((g) => g.domain === 'unknown').length;
  return { id: 'translation', status: 'OK', summary: `IOMMU translating: ${s.groups.length} group(s)${unknown ? `, ${unknown} of unknown type` : ''}` };
}

function interruptCheck(s: IommuStatus, hasIommu: boolean): Check {
  if (!hasIommu) return { id: 'interrupt-remapping', status: 'SKIP', summary: 'no IOMMU, no interrupt remapping' };
  const ir = s.interruptRemapping;
  if (ir.state === 'enabled') return { id: 'interrupt-remapping', status: 'OK', summary: `enabled (${ir.evidence})` };
  if (s.unsafeInterrupts) {
    return {
      id: 'interrupt-remapping',
      status: 'WARN',
      summary: `not enabled, and vfio_iommu_type1 allow_unsafe_interrupts=Y: a device can forge MSI writes (${ir.evidence})`,
      fix: 'enable interrupt remapping (drop intremap=off; in QEMU with KVM use -M q35,kernel-irqchip=split) and set allow_unsafe_interrupts=N',
    };
  }
  if (ir.state === 'disabled') {
    return {
      id: 'interrupt-remapping',
      status: 'FAIL',
      summary: `not enabled: VFIO_SET_IOMMU will fail with EPERM ("No interrupt remapping support") (${ir.evidence})`,
      fix: 'enable interrupt remapping: drop intremap=off from the kernel command line (in QEMU with KVM: -M q35,kernel-irqchip=split)',
    };
  }
  return { id: 'interrupt-remapping', status: 'WARN', summary: `cannot tell (${ir.evidence})`, fix: 'look for "Enabled IRQ remapping" in dmesg' };
}

function modulesCheck(sys: string, procModules: string | undefined): Check {
  const loaded = new Set(
    (procModules ?? '')
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter(Boolean),
  );
  const missing = MODULES.filter((m) => !loaded.has(m) && !existsSync(join(sys, 'module', m)));
  if (missing.length === 0) return { id: 'vfio-modules', status: 'OK', summary: `${MODULES.join(', ')} loaded` };
  return {
    id: 'vfio-modules',
    status: 'FAIL',
    summary: `not loaded: ${missing.join(', ')}`,
    fix: 'modprobe vfio-pci (it loads vfio and vfio_iommu_type1 too)',
  };
}

function devVfioCheck(s: IommuStatus, dev: string): Check {
  if (!s.vfio) return { id: 'dev-vfio', status: 'FAIL', summary: `${join(dev, 'vfio/vfio')} is missing`, fix: 'modprobe vfio-pci' };
  const groups = list(join(dev, 'vfio'))
    .filter((n) => /^\d+$/.test(n))
    .sort((a, b) => Number(a) - Number(b));
  return { id: 'dev-vfio', status: 'OK', summary: `${join(dev, 'vfio/vfio')} present; group nodes: ${groups.length ? groups.join(', ') : 'none yet'}` };
}

function groupsCheck(s: IommuStatus, hasIommu: boolean, dev: string): Check {
  if (!hasIommu) return { id: 'vfio-groups', status: 'SKIP', summary: 'no IOMMU, no groups' };
  const vfioGroups = s.groups.filter((g) => g.devices.some((d) => d.driver === 'vfio-pci'));
  if (vfioGroups.length === 0) {
    return {
      id: 'vfio-groups',
      status: 'WARN',
      summary: 'no device is bound to vfio-pci',
      fix: 'bind the device a policy names: echo vfio-pci > /sys/bus/pci/devices/BDF/driver_override; echo BDF > /sys/bus/pci/drivers_probe',
    };
  }
  const problems: string[] = [];
  const fixes: string[] = [];
  for (const g of vfioGroups) {
    const blockers = groupBlockers(g.devices);
    if (blockers.length) {
      problems.push(`group ${g.group} is not viable: ${blockers.map((d) => `${d.address} is bound to ${d.driver}`).join(', ')}`);
      for (const d of blockers) fixes.push(`echo ${d.address} > /sys/bus/pci/devices/${d.address}/driver/unbind (or bind it to vfio-pci too)`);
    } else if (!existsSync(join(dev, 'vfio', String(g.group)))) {
      problems.push(`group ${g.group} has no ${join(dev, 'vfio', String(g.group))}`);
      fixes.push('reload vfio-pci, or check that devtmpfs is mounted on /dev');
    }
  }
  if (problems.length) return { id: 'vfio-groups', status: 'FAIL', summary: problems.join('; '), fix: fixes.join('; ') };
  const desc = vfioGroups.map((g) => `${g.group} (${g.devices.map((d) => d.address).join(', ')})`).join(', ');
  return { id: 'vfio-groups', status: 'OK', summary: `viable vfio-pci group(s): ${desc}` };
}

function formatBytes(n: number): string {
  return n >= MiB ? `${Math.floor(n / MiB)} MiB` : `${Math.floor(n / 1024)} KiB`;
}

function memlockCheck(limits: string | undefined, euid: number): Check {
  const line = limits?.split('\n').find((l) => l.startsWith('Max locked memory'));
  const m = line ? /^Max locked memory\s+(\S+)\s+(\S+)/.exec(line) : null;
  if (!m) return { id: 'memlock', status: 'WARN', summary: 'memlock limit unknown (/proc/self/limits unreadable)', fix: 'check `ulimit -l`' };
  const soft = m[1] === 'unlimited' ? Infinity : Number(m[1]);
  const shown = soft === Infinity ? 'unlimited' : formatBytes(soft);
  if (euid === 0) return { id: 'memlock', status: 'OK', summary: `${shown}; running as root (CAP_IPC_LOCK), so VFIO pinning is not limited by it` };
  if (soft >= MEMLOCK_WANTED) return { id: 'memlock', status: 'OK', summary: `${shown}` };
  return {
    id: 'memlock',
    status: 'WARN',
    summary: `${shown}: VFIO pins every DMA window, and pinning beyond it fails (vfio_pin_pages_remote: RLIMIT_MEMLOCK exceeded)`,
    fix: `raise it to at least the windows' total: ulimit -l unlimited, LimitMEMLOCK=infinity in the systemd unit, or a memlock line in /etc/security/limits.conf; or run the manager as root`,
  };
}

function hugePagesCheck(meminfo: string | undefined): Check {
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(meminfo ?? '');
    return m ? Number(m[1]) : undefined;
  };
  const total = field('HugePages_Total');
  const free = field('HugePages_Free');
  const sizeKb = field('Hugepagesize');
  if (total === undefined || free === undefined) return { id: 'huge-pages', status: 'WARN', summary: 'huge pages unknown (/proc/meminfo unreadable)' };
  if (total === 0) {
    return {
      id: 'huge-pages',
      status: 'WARN',
      summary: `none reserved (${sizeKb ?? '?'} kB pages): windows with hugePages: true will fail`,
      fix: 'echo 256 > /proc/sys/vm/nr_hugepages (512 MiB of 2 MiB pages), or leave hugePages: false',
    };
  }
  return { id: 'huge-pages', status: 'OK', summary: `${free} of ${total} free (${sizeKb ?? '?'} kB each)` };
}

/** The report as people read it. */
export function formatReport(r: DoctorReport): string {
  const lines = ['dmabox doctor: can VFIO confine device DMA on this machine?', ''];
  for (const c of r.checks) {
    lines.push(`  ${c.status.padEnd(5)} ${c.id.padEnd(20)} ${c.summary}`);
    if (c.fix && c.status !== 'OK') lines.push(`  ${''.padEnd(5)} ${''.padEnd(20)} fix: ${c.fix}`);
  }
  lines.push('', `${r.verdict.toUpperCase()}: ${r.summary}`);
  if (r.alternatives) {
    lines.push('', 'Real devices cannot be sandboxed here. What works without an IOMMU:');
    for (const a of r.alternatives) lines.push(`  - ${a}`);
  }
  return `${lines.join('\n')}\n`;
}

export interface Io {
  out(s: string): void;
  err(s: string): void;
}
const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

export async function run(argv: string[], io: Io = stdio, options: DoctorOptions = {}): Promise<number> {
  const unknown = argv.filter((a) => a !== '--json');
  if (unknown.length) {
    io.err(`dmabox doctor: unknown argument ${unknown.join(' ')}\nusage: dmabox doctor [--json]\n`);
    return 2;
  }
  const report = diagnose(options);
  io.out(argv.includes('--json') ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.verdict === 'fail' ? 1 : 0;
}

/** Each sandbox under its own uid needs root to switch to it. */
function identityCheck(root: boolean): Check {
  if (root)
    return {
      id: 'identities',
      status: 'OK',
      summary: `each sandbox runs as an identity of its own (uid = gid, from ${IDENTITY_RANGE.first}-${IDENTITY_RANGE.last})`,
    };
  return {
    id: 'identities',
    status: 'WARN',
    summary: 'not root: every container runs as the invoking user, so one container can signal another and open its /proc/PID/mem and window memfds',
    fix: 'run dmabox as root (it switches each container to an identity of its own)',
  };
}

function namespaceCheck(ns: LaunchHost['namespaces']): Check {
  if (ns.bwrap !== undefined)
    return {
      id: 'namespaces',
      status: 'OK',
      summary: `${ns.bwrap} builds user, PID, mount, network, IPC and UTS namespaces: each confined container sees a minimal read-only root, only its own processes, no network`,
    };
  return {
    id: 'namespaces',
    status: 'WARN',
    summary: `no namespaces for containers: ${ns.why}. Containers still run under their own identity with seccomp, but see the host's processes, its files (as far as their uid may read them) and its network namespace`,
    fix: 'apt-get install bubblewrap; allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0); a chroot (not a pivot_root) also forbids them',
  };
}

function cgroupCheck(cg: CgroupHost): Check {
  if (cg.version !== 0) {
    const where = cg.version === 2 ? cg.base : Object.values(cg.bases).join(', ');
    const noCpu = cg.controllers.includes('cpu') ? '' : ' (no cpu controller: the CPU weight is not applied)';
    return {
      id: 'cgroups',
      status: 'OK',
      summary: `cgroup v${cg.version} with ${cg.controllers.join(', ')} at ${where}: each container gets its memory and pids limits and CPU weight${noCpu}`,
    };
  }
  return {
    id: 'cgroups',
    status: 'WARN',
    summary: `no cgroups for containers: ${cg.why}. A container's memory is bounded only by Node's heap limit (not its native memory), its tasks and CPU not at all`,
    fix: 'run as root on a host with cgroup v2 (memory and pids controllers) or the v1 memory and pids hierarchies mounted',
  };
}
