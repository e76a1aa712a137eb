/**
 * The lab machine as data, and the QEMU command line that builds it. Pure: no files, no processes.
 *
 * A q35 PC with an emulated Intel VT-d IOMMU (`intel-iommu`, interrupt remapping on by default),
 * NVMe controllers (`nvme`, one raw disk each, serial lab0, lab1, ...) and e1000e NICs (the 82574L
 * model) at fixed PCI slots, the isa-debug-exit port at 0xf4 for the guest's exit status, the host
 * root and the run channel over virtio-9p, and the serial console on stdio. Under TCG (no /dev/kvm,
 * the default of the project's machines) or KVM, where VT-d interrupt remapping needs
 * `kernel-irqchip=split`.
 *
 * PCI slots: NVMe i at 00:(1+i).0, then the e1000e NICs; so the suite's one NVMe and one e1000e are
 * 00:01.0 and 00:02.0. The 9p devices sit at 00:1d.0 and 00:1e.0, out of the way. The device-error
 * extras (`deviceErrors`) take the slots below them: the blkdebug NVMe at 00:1b.0 and a PCIe root
 * port at 00:1c.0 with an e1000e behind it at 01:00.0, so the devices above keep their addresses.
 */

import { ApplianceError } from '../image/errors.js';
import { DMAR_TRACE_EVENT } from './dmar.js';

export type Accel = 'tcg' | 'kvm';

export interface NvmeSpec {
  /** Host path of the raw disk image. */
  image: string;
  /** Controller serial number (Identify Controller SN): lab0, lab1, ... */
  serial: string;
}

/** slirp: QEMU's user-mode network (the guest is 10.0.2.15, slirp answers for 10.0.2.2).
 *  { fd }: a connected socket (stream or datagram) handed to QEMU as that fd (`-netdev socket,fd=N`). */
export type NicNet = 'slirp' | { fd: number };

export interface E1000eSpec {
  net: NicNet;
  mac: string;
  /** slirp only: host TCP ports forwarded to guest ports (QEMU's hostfwd, host side bound to 127.0.0.1). */
  hostForward?: readonly { hostPort: number; guestAddress: string; guestPort: number }[];
}

export interface ShareSpec {
  tag: string;
  path: string;
  readonly: boolean;
}

/**
 * The devices of the device-error tests (issue 14), added beside the others:
 * - an NVMe whose disk goes through QEMU's blkdebug driver (`raw` over `blkdebug` over the file, so
 *   the raw format's read_aio/write_aio events fire the config's `[inject-error]` rules: EIO on the
 *   sectors they name, which the NVMe model completes with a media error);
 * - an e1000e behind a `pcie-root-port` (hotplug off), where `pcie_aer_inject_error` on it reaches
 *   the guest's AER driver through the port (on the root complex's own bus it has no port to report to);
 * - QEMU's QMP monitor on a unix socket, for the host's relay (relay.ts).
 */
export interface DeviceErrorSpec {
  blkdebugNvme: { image: string; config: string; serial: string };
  aerE1000e: E1000eSpec;
  qmpSocket: string;
}

/** Where the device-error extras sit, and the QEMU ids the relay may name. */
export const DEVICE_ERROR_SLOTS = {
  blkdebugNvme: { slot: 0x1b, bdf: '0000:00:1b.0' },
  rootPort: { slot: 0x1c, bdf: '0000:00:1c.0', id: 'labrp0' },
  aerE1000e: { bdf: '0000:01:00.0', id: 'labaer0' },
} as const;

export interface MachineSpec {
  kernel: string;
  initrd: string;
  /** Extra kernel command-line words after the lab's own. */
  append?: readonly string[];
  accel: Accel;
  memMiB: number;
  cpus: number;
  nvme: readonly NvmeSpec[];
  e1000e: readonly E1000eSpec[];
  shares: readonly ShareSpec[];
  /** When set, QEMU's vtd_dmar_fault trace events go to this file (`-trace vtd_dmar_fault -D FILE`). */
  dmarTraceFile?: string;
  /** The whole kernel command line (an appliance image's own), instead of the lab's plus `append`. */
  cmdline?: string;
  /** Without the emulated VT-d IOMMU (default: with): a machine that cannot confine DMA. */
  noIommu?: boolean;
  /** Read-only virtio block disks (an appliance's root image is the first: /dev/vda). */
  disks?: readonly { image: string }[];
  /** The device-error extras (DeviceErrorSpec). */
  deviceErrors?: DeviceErrorSpec;
}

/** A device of the machine and where the guest sees it. */
export interface PlacedDevice {
  kind: 'nvme' | 'e1000e';
  index: number;
  bdf: string;
}

/** Slots 0x01.. for the devices under test; 0x1d/0x1e for the 9p shares; 0x1f is the ICH9 LPC bridge. */
const FIRST_SLOT = 0x01;
const SHARE_SLOTS = [0x1e, 0x1d];
const LAST_DEVICE_SLOT = 0x1c;

/** `deviceErrors`: the extras take 00:1b and 00:1c, so fewer slots are left for the others. */
export function placeDevices(nvme: number, e1000e: number, deviceErrors = false): PlacedDevice[] {
  const out: PlacedDevice[] = [];
  let slot = FIRST_SLOT;
  const last = deviceErrors ? DEVICE_ERROR_SLOTS.blkdebugNvme.slot - 1 : LAST_DEVICE_SLOT;
  const take = (kind: 'nvme' | 'e1000e', index: number): void => {
    if (slot > last)
      throw new ApplianceError(
        'ERR_LAB_OPTIONS',
        `too many devices: at most ${last - FIRST_SLOT + 1} NVMe and e1000e together${deviceErrors ? ' beside the device-error extras' : ''}`,
      );
    out.push({ kind, index, bdf: `0000:00:${slot.toString(16).padStart(2, '0')}.0` });
    slot++;
  };
  for (let i = 0; i < nvme; i++) take('nvme', i);
  for (let i = 0; i < e1000e; i++) take('e1000e', i);
  return out;
}

/** The default MAC of e1000e i: QEMU's own prefix 52:54:00, then 12:34:56+i (the first is QEMU's usual default). */
export function labMac(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index > 0xa9) throw new ApplianceError('ERR_LAB_OPTIONS', `e1000e index ${index} out of range 0..169`);
  return `52:54:00:12:34:${(0x56 + index).toString(16).padStart(2, '0')}`;
}

/**
 * The kernel command line: serial console, reboot on panic (QEMU exits with -no-reboot), VT-d on,
 * and `no_timer_check`: on a loaded 2-core host the TCG guest can miss the IO-APIC timer check and
 * panic with "timer doesn't work through Interrupt-remapped IO-APIC" (seen here at load 8); the
 * check proves nothing about an emulated timer, so it is skipped.
 */
export function kernelCommandLine(extra: readonly string[] = []): string {
  return ['console=ttyS0', 'panic=-1', 'intel_iommu=on', 'no_timer_check', 'rdinit=/init', ...extra].join(' ');
}

function checkOption(value: string, what: string): string {
  // QEMU's option syntax splits on ',' (doubled to escape): refuse instead of guessing.
  if (value.includes(','))
    throw new ApplianceError('ERR_LAB_OPTIONS', `${what} '${value}' contains a ',', which QEMU's option parser would split`, {
      fix: 'use a path or name without commas',
    });
  return value;
}

/** The qemu-system-x86_64 argument list for `spec` (the program name not included). */
export function qemuArgs(spec: MachineSpec): string[] {
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1) throw new ApplianceError('ERR_LAB_OPTIONS', `cpus must be a positive integer, got ${spec.cpus}`);
  if (!Number.isInteger(spec.memMiB) || spec.memMiB < 256) throw new ApplianceError('ERR_LAB_OPTIONS', `memMiB must be an integer >= 256, got ${spec.memMiB}`);
  if (spec.shares.length > SHARE_SLOTS.length)
    throw new ApplianceError('ERR_LAB_OPTIONS', `at most ${SHARE_SLOTS.length} 9p shares, got ${spec.shares.length}`);
  const placed = placeDevices(spec.nvme.length, spec.e1000e.length, spec.deviceErrors !== undefined);
  const machine = spec.accel === 'kvm' ? 'q35,accel=kvm,kernel-irqchip=split' : 'q35,accel=tcg';
  const args = [
    '-M',
    machine,
    '-cpu',
    spec.accel === 'kvm' ? 'host' : 'max',
    '-m',
    `${spec.memMiB}M`,
    '-smp',
    String(spec.cpus),
    '-nodefaults',
    '-no-reboot',
    '-display',
    'none',
    '-serial',
    'stdio',
    ...(spec.noIommu ? [] : ['-device', spec.accel === 'kvm' ? 'intel-iommu,intremap=on' : 'intel-iommu']),
  ];
  for (const p of placed) {
    const addr = p.bdf.slice('0000:00:'.length, -2);
    if (p.kind === 'nvme') {
      const n = spec.nvme[p.index]!;
      args.push(
        '-drive',
        `if=none,id=nvme${p.index},file=${checkOption(n.image, 'NVMe image path')},format=raw`,
        '-device',
        `nvme,drive=nvme${p.index},serial=${checkOption(n.serial, 'NVMe serial')},bus=pcie.0,addr=0x${addr}`,
      );
    } else {
      const e = spec.e1000e[p.index]!;
      args.push('-netdev', netdev(`net${p.index}`, `e1000e ${p.index}`, e));
      args.push('-device', `e1000e,netdev=net${p.index},romfile=,mac=${checkOption(e.mac, 'MAC')},bus=pcie.0,addr=0x${addr}`);
    }
  }
  if (spec.deviceErrors) args.push(...deviceErrorArgs(spec.deviceErrors));
  args.push('-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04');
  for (const [i, s] of spec.shares.entries()) {
    args.push(
      '-fsdev',
      `local,id=fs${i},path=${checkOption(s.path, '9p share path')},security_model=none,multidevs=remap${s.readonly ? ',readonly=on' : ''}`,
      '-device',
      `virtio-9p-pci,fsdev=fs${i},mount_tag=${checkOption(s.tag, '9p tag')},bus=pcie.0,addr=0x${SHARE_SLOTS[i]!.toString(16)}`,
    );
  }
  if (spec.dmarTraceFile !== undefined) args.push('-trace', DMAR_TRACE_EVENT, '-D', checkOption(spec.dmarTraceFile, 'trace file'));
  if ((spec.disks?.length ?? 0) > 0 && spec.shares.length > 0)
    throw new ApplianceError('ERR_LAB_OPTIONS', 'virtio disks and 9p shares use the same slots: one or the other');
  for (const [i, d] of (spec.disks ?? []).entries()) {
    if (i >= SHARE_SLOTS.length) throw new ApplianceError('ERR_LAB_OPTIONS', `at most ${SHARE_SLOTS.length} virtio disks`);
    args.push(
      '-drive',
      `if=none,id=disk${i},file=${checkOption(d.image, 'disk image path')},format=raw,readonly=on`,
      '-device',
      `virtio-blk-pci,drive=disk${i},bus=pcie.0,addr=0x${SHARE_SLOTS[i]!.toString(16)}`,
    );
  }
  args.push('-kernel', spec.kernel, '-initrd', spec.initrd, '-append', spec.cmdline ?? kernelCommandLine(spec.append));
  return args;
}

/** The -netdev value of one e1000e: slirp (with its forwarded ports) or a socket fd of QEMU's. */
function netdev(id: string, what: string, e: E1000eSpec): string {
  if (e.net === 'slirp') {
    const fwd = (e.hostForward ?? []).map((f) => {
      if (!Number.isInteger(f.hostPort) || f.hostPort < 1 || f.hostPort > 65535 || !Number.isInteger(f.guestPort) || f.guestPort < 1 || f.guestPort > 65535)
        throw new ApplianceError('ERR_LAB_OPTIONS', `${what}: forwarded ports must be 1..65535, got ${f.hostPort} -> ${f.guestPort}`);
      return `,hostfwd=tcp:127.0.0.1:${f.hostPort}-${checkOption(f.guestAddress, 'guest address')}:${f.guestPort}`;
    });
    return `user,id=${id}${fwd.join('')}`;
  }
  if (!Number.isInteger(e.net.fd) || e.net.fd < 3) throw new ApplianceError('ERR_LAB_OPTIONS', `${what}: socket fd must be an integer >= 3, got ${e.net.fd}`);
  return `socket,id=${id},fd=${e.net.fd}`;
}

/** QEMU arguments of the device-error extras (DeviceErrorSpec, DEVICE_ERROR_SLOTS). */
function deviceErrorArgs(d: DeviceErrorSpec): string[] {
  const { blkdebugNvme: slotN, rootPort, aerE1000e } = DEVICE_ERROR_SLOTS;
  const n = d.blkdebugNvme;
  return [
    '-drive',
    `if=none,id=nvmebd,format=raw,file.driver=blkdebug,file.config=${checkOption(n.config, 'blkdebug config path')},file.image.filename=${checkOption(n.image, 'NVMe image path')}`,
    '-device',
    `nvme,drive=nvmebd,serial=${checkOption(n.serial, 'NVMe serial')},bus=pcie.0,addr=0x${slotN.slot.toString(16)}`,
    '-device',
    `pcie-root-port,id=${rootPort.id},chassis=1,slot=1,hotplug=off,bus=pcie.0,addr=0x${rootPort.slot.toString(16)}`,
    '-netdev',
    netdev('netaer', 'the AER e1000e', d.aerE1000e),
    '-device',
    `e1000e,netdev=netaer,romfile=,mac=${checkOption(d.aerE1000e.mac, 'MAC')},bus=${rootPort.id},addr=0x0,id=${aerE1000e.id}`,
    '-qmp',
    `unix:${checkOption(d.qmpSocket, 'QMP socket path')},server=on,wait=off`,
  ];
}
