/**
 * `dmabox devices [--json] [--all]`, `dmabox bind BDF...`, `dmabox unbind BDF... [--driver NAME]`.
 *
 * devices: the PCI functions a policy can name (by default those with an IOMMU group or a DMA-capable
 * class; --all for every one), each with its ids, class, driver, IOMMU group, and whether the group
 * is viable for VFIO (and, when not, which member blocks it and how to free it).
 * bind: hand functions to vfio-pci (driver_override + drivers_probe); prints the driver each had,
 * which `unbind --driver` gives it back to. unbind: clear the override, leave vfio-pci, re-probe.
 * Reads sysfs only (no root needed) except bind/unbind, which write it (root).
 */
import {
  bindToVfio,
  groupBlockers,
  iommuGroupDevices,
  listPciFunctions,
  pciFunction,
  releaseFromVfio,
  type GroupMember,
  type PciFunction,
  type SysfsOptions,
} from 'vfio-bindings';
import { CliError } from './errors.js';

export interface DeviceRow {
  address: string;
  ids: string;
  class: string;
  kind: string;
  driver: string | null;
  group: number | null;
  /** null when the function has no IOMMU group (no IOMMU): VFIO cannot use it at all. */
  viable: boolean | null;
  blockers: GroupMember[];
}

/** PCI base classes (PCI Code and ID Assignment Specification §1) worth a name here. */
const CLASS_NAMES: Record<number, string> = {
  0x01: 'storage',
  0x02: 'network',
  0x03: 'display',
  0x04: 'multimedia',
  0x06: 'bridge',
  0x0c: 'serial bus',
};
const NVME_CLASS = 0x010802;

function kindOf(f: PciFunction): string {
  if (f.class === NVME_CLASS) return 'nvme';
  return CLASS_NAMES[f.class >> 16] ?? `class ${(f.class >> 16).toString(16).padStart(2, '0')}`;
}

const hex4 = (n: number): string => n.toString(16).padStart(4, '0');

export function deviceRows(options: SysfsOptions & { all?: boolean } = {}): DeviceRow[] {
  const groups = new Map<number, GroupMember[]>();
  const rows: DeviceRow[] = [];
  for (const f of listPciFunctions(options)) {
    const base = f.class >> 16;
    if (!options.all && f.iommuGroup === undefined && base !== 0x01 && base !== 0x02) continue;
    if (!options.all && base === 0x06) continue; // bridges are not what a policy names
    let members: GroupMember[] = [];
    if (f.iommuGroup !== undefined) {
      members = groups.get(f.iommuGroup) ?? iommuGroupDevices(f.iommuGroup, options);
      groups.set(f.iommuGroup, members);
    }
    // The function itself is what goes to vfio-pci, so only the OTHER members can block it.
    const blockers = groupBlockers(members).filter((m) => m.address !== f.address);
    rows.push({
      address: f.address,
      ids: `${hex4(f.vendor)}:${hex4(f.device)}`,
      class: f.class.toString(16).padStart(6, '0'),
      kind: kindOf(f),
      driver: f.driver ?? null,
      group: f.iommuGroup ?? null,
      viable: f.iommuGroup === undefined ? null : blockers.length === 0,
      blockers,
    });
  }
  return rows;
}

export function formatDevices(rows: readonly DeviceRow[]): string {
  if (rows.length === 0) return 'no PCI functions found\n';
  const lines = rows.map((r) => {
    const group = r.group === null ? 'no IOMMU group' : `group ${r.group}`;
    const viability =
      r.viable === null ? 'VFIO unusable (no IOMMU)' : r.viable ? 'viable' : `NOT viable: ${r.blockers.map((b) => `${b.address} on ${b.driver}`).join(', ')}`;
    return `${r.address}  ${r.ids}  ${r.kind.padEnd(8)} driver ${(r.driver ?? '-').padEnd(10)}  ${group.padEnd(14)}   ${viability}`;
  });
  const noGroup = rows.every((r) => r.group === null);
  const tail = noGroup
    ? '\nNo function has an IOMMU group: this machine has no IOMMU (see `dmabox doctor`); use the simulator (`npm start`) or the lab (`dmabox lab run`).\n'
    : '';
  return `${lines.join('\n')}\n${tail}`;
}

function usage(cmd: string): never {
  throw new CliError('ERR_CLI_USAGE', `usage: dmabox ${cmd}`);
}

const BDF = /^([0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i;
function address(a: string): string {
  if (!BDF.test(a)) throw new CliError('ERR_CLI_USAGE', `'${a}' is not a PCI address`, { fix: 'give it as 0000:00:01.0 (see `dmabox devices`)' });
  const lower = a.toLowerCase();
  return lower.length === 7 ? `0000:${lower}` : lower;
}

export async function run(argv: string[], options: SysfsOptions = {}): Promise<number> {
  const json = argv.includes('--json');
  const all = argv.includes('--all');
  const rest = argv.filter((a) => a !== '--json' && a !== '--all');
  if (rest.length) usage('devices [--json] [--all]');
  const rows = deviceRows({ ...options, all });
  process.stdout.write(json ? `${JSON.stringify(rows, null, 2)}\n` : formatDevices(rows));
  return 0;
}

export async function bind(argv: string[], options: SysfsOptions = {}): Promise<number> {
  if (argv.length === 0) usage('bind BDF...');
  for (const a of argv.map(address)) {
    pciFunction(a, options); // a clear error for a function that does not exist
    const r = bindToVfio(a, options);
    process.stdout.write(
      r.alreadyBound
        ? `${a}: already on vfio-pci\n`
        : `${a}: bound to vfio-pci (was ${r.originalDriver ?? 'no driver'}; give it back with: dmabox unbind ${a}${r.originalDriver ? ` --driver ${r.originalDriver}` : ''})\n`,
    );
  }
  return 0;
}

export async function unbind(argv: string[], options: SysfsOptions = {}): Promise<number> {
  const at = argv.indexOf('--driver');
  const driver = at >= 0 ? argv[at + 1] : undefined;
  if (at >= 0 && !driver) usage('unbind BDF... [--driver NAME]');
  const addrs = argv.filter((_, i) => at < 0 || (i !== at && i !== at + 1));
  if (addrs.length === 0) usage('unbind BDF... [--driver NAME]');
  for (const a of addrs.map(address)) {
    const f = pciFunction(a, options);
    if (f.driver !== 'vfio-pci') {
      process.stdout.write(`${a}: not on vfio-pci (driver ${f.driver ?? 'none'}), left alone\n`);
      continue;
    }
    releaseFromVfio({ address: a, originalDriver: driver, alreadyBound: false }, options);
    process.stdout.write(`${a}: released from vfio-pci, now on ${pciFunction(a, options).driver ?? 'no driver'}\n`);
  }
  return 0;
}
