/**
 * An IOMMU status report from sysfs and procfs, for `dmabox doctor` and the lab: which IOMMUs the
 * kernel runs (Intel DMAR / AMD-Vi, /sys/class/iommu), each IOMMU group and its default domain
 * (translated or passthrough, /sys/kernel/iommu_groups/N/type), whether interrupts are remapped,
 * and whether VFIO is there and in which mode. What cannot be told is reported as 'unknown', never
 * guessed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { iommuGroupDevices, type GroupMember } from './sysfs.js';

export interface IommuStatusOptions {
  /** Default /sys. */
  root?: string;
  /** Default /proc. */
  procRoot?: string;
  /** Default /dev. */
  devRoot?: string;
}

export type IommuKind = 'intel-vt-d' | 'amd-vi' | 'other';

/**
 * The default domain of a group, from its `type` file: DMA, DMA-FQ (translated with a flush
 * queue) and `unmanaged` (VFIO owns it) are translated; `identity` is passthrough; `blocked`
 * blocks all DMA.
 */
export type DomainKind = 'translated' | 'passthrough' | 'blocked' | 'unknown';

export interface GroupReport {
  group: number;
  /** The raw `type` text, or undefined when the file is missing (kernels before 5.11). */
  type: string | undefined;
  domain: DomainKind;
  devices: GroupMember[];
}

export interface InterruptRemapping {
  state: 'enabled' | 'disabled' | 'unknown';
  /** How it was told. */
  evidence: string;
}

export interface IommuStatus {
  iommus: Array<{ name: string; kind: IommuKind }>;
  groups: GroupReport[];
  interruptRemapping: InterruptRemapping;
  /** /dev/vfio/vfio exists. */
  vfio: boolean;
  /** vfio's enable_unsafe_noiommu_mode is on: devices do DMA with NO confinement. */
  noIommuMode: boolean;
  /** vfio_iommu_type1's allow_unsafe_interrupts is on. */
  unsafeInterrupts: boolean;
  /** A one-line summary: can VFIO confine DMA here? */
  summary: string;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function list(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

export function domainKind(type: string | undefined): DomainKind {
  switch (type) {
    case 'DMA':
    case 'DMA-FQ':
    case 'unmanaged':
      return 'translated';
    case 'identity':
      return 'passthrough';
    case 'blocked':
      return 'blocked';
    default:
      return 'unknown';
  }
}

/**
 * From /proc/interrupts: IR-PCI-MSI / IR-IO-APIC chips mean remapping is on; PCI-MSI or IO-APIC
 * lines with no IR- chip at all mean it is off; anything else is unknown.
 */
export function interruptRemappingFrom(procInterrupts: string | undefined): InterruptRemapping {
  if (procInterrupts === undefined) return { state: 'unknown', evidence: '/proc/interrupts is not readable' };
  const ir = /\bIR-(PCI-MSI|PCI-MSIX|IO-APIC|PCI-MSI-\S+)/.exec(procInterrupts);
  if (ir) return { state: 'enabled', evidence: `/proc/interrupts lists ${ir[0]} chips` };
  const plain = /\b(PCI-MSI|PCI-MSIX|IO-APIC)\b/.exec(procInterrupts);
  if (plain) return { state: 'disabled', evidence: `/proc/interrupts lists ${plain[1]} without IR- (no remapping)` };
  return { state: 'unknown', evidence: '/proc/interrupts names no MSI or IO-APIC chip to tell from' };
}

export function iommuStatus(options: IommuStatusOptions = {}): IommuStatus {
  const root = options.root ?? '/sys';
  const iommus = list(join(root, 'class/iommu')).map((name) => ({
    name,
    kind: (name.startsWith('dmar') ? 'intel-vt-d' : name.startsWith('ivhd') ? 'amd-vi' : 'other') as IommuKind,
  }));
  const groups: GroupReport[] = list(join(root, 'kernel/iommu_groups'))
    .filter((g) => /^\d+$/.test(g))
    .map(Number)
    .sort((a, b) => a - b)
    .map((group) => {
      const type = read(join(root, 'kernel/iommu_groups', String(group), 'type'));
      let devices: GroupMember[] = [];
      try {
        devices = iommuGroupDevices(group, { root });
      } catch {
        // an empty or unreadable group is reported with no devices
      }
      return { group, type, domain: domainKind(type), devices };
    });
  const interruptRemapping = interruptRemappingFrom(read(join(options.procRoot ?? '/proc', 'interrupts')));
  const vfio = existsSync(join(options.devRoot ?? '/dev', 'vfio/vfio'));
  const noIommuMode = read(join(root, 'module/vfio/parameters/enable_unsafe_noiommu_mode')) === 'Y';
  const unsafeInterrupts = read(join(root, 'module/vfio_iommu_type1/parameters/allow_unsafe_interrupts')) === 'Y';

  let summary: string;
  if (noIommuMode) summary = 'UNCONFINED: VFIO runs in no-IOMMU mode; devices can DMA anywhere';
  else if (iommus.length === 0) summary = 'no IOMMU: VFIO cannot confine DMA (use the simulator or the QEMU lab)';
  else if (groups.some((g) => g.domain === 'passthrough' && g.devices.some((d) => d.driver !== 'vfio-pci'))) {
    summary = `IOMMU on (${iommus.map((i) => i.kind).join(', ')}); some groups are in passthrough (iommu.passthrough=1?): their host drivers are unconfined`;
  } else
    summary = `IOMMU on (${iommus.map((i) => i.kind).join(', ')}), ${groups.length} group(s), interrupt remapping ${interruptRemapping.state}${vfio ? '' : ', /dev/vfio/vfio missing (modprobe vfio-pci)'}`;
  return { iommus, groups, interruptRemapping, vfio, noIommuMode, unsafeInterrupts, summary };
}
