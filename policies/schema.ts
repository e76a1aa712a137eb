/**
 * The policy schema: what a sandbox may be given, written once as data (see schema-dsl.ts). A policy
 * file holds one or more YAML documents (separated by `---`), each the policy of one sandbox: one
 * device, one driver, its DMA windows, its container, its restart policy and its linkback.
 * `policies/schema.json` is generated from this file (`dmabox policy schema > policies/schema.json`);
 * a test fails when the two differ.
 */
import type { ObjectSchema, Schema, VariantSchema } from './schema-dsl.js';

/** The only policy format version this dmabox reads. */
export const POLICY_VERSION = 1;

/** The IOMMU page size every window is sized in (VT-d and AMD-Vi smallest page: 4 KiB). */
export const PAGE_SIZE = 4096;
/** A huge page (x86-64 PMD size, 2 MiB): windows backed by huge pages are sized in these. */
export const HUGE_PAGE_SIZE = 2 * 1024 * 1024;

const MiB = 2 ** 20;
const GiB = 2 ** 30;

const PCI_ADDRESS = '^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[01][0-9a-fA-F]\\.[0-7]$';
const PCI_ID = '^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$';

const interrupts: Schema = {
  t: 'string',
  enum: ['polling', 'msix'],
  hint: `'polling' or 'msix'`,
};

const simNvme: ObjectSchema = {
  t: 'object',
  fields: {
    sim: { schema: { t: 'string', enum: ['nvme'], hint: `'nvme'` }, required: true, doc: 'The simulated device model.' },
    capacity: { schema: { t: 'size', min: MiB, max: 4 * GiB }, default: '64MiB', doc: 'Namespace 1 capacity (held in memory by the simulator).' },
    blockSize: {
      schema: { t: 'int', min: 512, max: 4096, values: [512, 4096] },
      default: 512,
      doc: 'Logical block size (NVMe 1.4 §5.15.2.2, LBA Format LBADS).',
    },
    maxQueues: { schema: { t: 'int', min: 1, max: 64 }, default: 8, doc: 'I/O queue pairs the controller grants (NVMe 1.4 §5.21.1.7, Number of Queues).' },
    mqes: { schema: { t: 'int', min: 2, max: 4096 }, default: 1024, doc: 'Maximum entries per queue (NVMe 1.4 §3.1.1, CAP.MQES, here not 0-based).' },
    serial: {
      schema: { t: 'string', hint: 'up to 20 printable ASCII characters', pattern: '^[ -~]{1,20}$' },
      default: 'sim0',
      doc: 'Serial number (NVMe 1.4 §5.15.2.1, Identify Controller SN, 20 bytes).',
    },
  },
};

const simE1000e: ObjectSchema = {
  t: 'object',
  fields: {
    sim: { schema: { t: 'string', enum: ['e1000e'], hint: `'e1000e'` }, required: true, doc: 'The simulated device model.' },
    mac: {
      schema: { t: 'string', hint: `a MAC address like '52:54:00:12:34:56'`, pattern: '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$' },
      default: '52:54:00:12:34:56',
      doc: 'Station address (82574 datasheet §10.2.5.1, RAL/RAH).',
    },
    peer: {
      schema: { t: 'string', enum: ['none', 'echo'], hint: `'none' or 'echo'` },
      default: 'echo',
      doc: `The simulated link partner: 'echo' answers ARP and ICMP echo for 10.0.2.2 (like QEMU's slirp); 'none' drops every frame.`,
    },
  },
};

/** A real device's `bind`: the manager hands it to vfio-pci at start and back to its driver at stop. */
const BIND_FIELD = {
  schema: { t: 'bool' as const },
  default: false,
  doc: 'Bind the function to vfio-pci when the sandbox starts (driver_override, drivers_probe) and give it back to the driver it had when the sandbox stops. Without it the function must already be on vfio-pci (`dmabox bind`).',
};

export const deviceSchema: VariantSchema = {
  t: 'variant',
  doc: `The device the sandbox owns: a PCI address, a vendor:device id, or a simulated model.`,
  variants: [
    {
      key: 'pci',
      schema: {
        t: 'object',
        fields: {
          pci: {
            schema: { t: 'string', hint: `a PCI address like '0000:00:01.0'`, pattern: PCI_ADDRESS },
            required: true,
            doc: 'PCI address (domain:bus:device.function; the domain defaults to 0000).',
          },
          bind: BIND_FIELD,
        },
      },
    },
    {
      key: 'id',
      schema: {
        t: 'object',
        fields: {
          id: { schema: { t: 'string', hint: `a vendor:device id like '1b36:0010'`, pattern: PCI_ID }, required: true, doc: 'PCI vendor:device id, in hex.' },
          index: { schema: { t: 'int', min: 0, max: 255 }, default: 0, doc: 'Which of the matching functions, in bus order (0 = the first).' },
          bind: BIND_FIELD,
        },
      },
    },
    { key: 'sim', equals: 'nvme', schema: simNvme },
    { key: 'sim', equals: 'e1000e', schema: simE1000e },
  ],
  shorthand: {
    pattern: `${PCI_ADDRESS}|${PCI_ID}|^sim:(nvme|e1000e)$`,
    hint: `a string like '0000:00:01.0', '1b36:0010' or 'sim:nvme'`,
    expand(s): Record<string, string> {
      if (s.startsWith('sim:')) return { sim: s.slice(4) };
      return new RegExp(PCI_ID).test(s) ? { id: s } : { pci: s };
    },
  },
};

export const driverSchema: VariantSchema = {
  t: 'variant',
  doc: 'The driver and its options: a built-in driver by `name`, or an external driver `module` (exactly one of the two).',
  variants: [
    {
      key: 'name',
      equals: 'nvme',
      schema: {
        t: 'object',
        fields: {
          name: { schema: { t: 'string', enum: ['nvme'], hint: `'nvme'` }, required: true, doc: 'The driver.' },
          queues: { schema: { t: 'int', min: 1, max: 64 }, default: 1, doc: 'I/O queue pairs to create.' },
          depth: { schema: { t: 'int', min: 2, max: 4096 }, default: 128, doc: 'Entries per I/O queue (at most CAP.MQES + 1, NVMe 1.4 §3.1.1).' },
          interrupts: { schema: interrupts, default: 'polling', doc: `Completion by 'polling' or by 'msix' interrupts.` },
        },
      },
    },
    {
      key: 'name',
      equals: 'e1000e',
      schema: {
        t: 'object',
        fields: {
          name: { schema: { t: 'string', enum: ['e1000e'], hint: `'e1000e'` }, required: true, doc: 'The driver.' },
          queues: { schema: { t: 'int', min: 1, max: 2 }, default: 1, doc: 'RX/TX queue pairs (the 82574 has two, datasheet §7.1.1).' },
          depth: {
            schema: { t: 'int', min: 8, max: 4096, multipleOf: 8 },
            default: 256,
            doc: 'Descriptors per ring, a multiple of 8 (RDLEN/TDLEN are 128-byte multiples, 82574 datasheet §10.2.6.2).',
          },
          interrupts: { schema: interrupts, default: 'polling', doc: `Completion by 'polling' or by 'msix' interrupts.` },
        },
      },
    },
    {
      key: 'module',
      schema: {
        t: 'object',
        fields: {
          module: {
            schema: {
              t: 'string',
              hint: 'a path to a .js or .mjs driver module, relative to this policy file',
              pattern: '^[^\\x00]+\\.m?js$',
              maxLength: 4096,
            },
            required: true,
            doc: "An external driver module (drivers/README.md says how to write one): it declares its kind (block or net), which must be the device's, and runs under the same confinement, services and supervision as a built-in driver.",
          },
          queues: { schema: { t: 'int', min: 1, max: 64 }, default: 1, doc: 'Queue pairs, as the driver reads them (ctx.options.queues).' },
          depth: { schema: { t: 'int', min: 2, max: 4096 }, default: 128, doc: 'Entries per queue or ring (ctx.options.depth).' },
          interrupts: { schema: interrupts, default: 'polling', doc: `'polling' or 'msix' (ctx.options.interrupts; MSI-X vectors: queues + 1).` },
        },
      },
    },
  ],
  shorthand: { pattern: '^(nvme|e1000e)$', hint: `'nvme' or 'e1000e'`, expand: (s) => ({ name: s }) },
};

const windowSchema: ObjectSchema = {
  t: 'object',
  fields: {
    size: {
      schema: { t: 'size', min: PAGE_SIZE, max: GiB, multipleOf: PAGE_SIZE, multipleWhy: 'the IOMMU page size' },
      required: true,
      doc: 'Bytes the device may reach through this window (at most 1GiB: split larger grants).',
    },
    hugePages: { schema: { t: 'bool' }, default: false, doc: 'Back the window with 2MiB huge pages (fewer IOTLB misses; needs vm.nr_hugepages).' },
    label: {
      schema: { t: 'string', hint: 'a label of letters, digits and dashes', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$' },
      doc: 'A name for logs and fault reports.',
    },
    access: {
      schema: { t: 'string', enum: ['split', 'read', 'write', 'read-write'], hint: `'split', 'read', 'write' or 'read-write'` },
      default: 'split',
      doc: `What the device may do to the window: 'read' (the host writes, the device reads: queues, write data), 'write' (the device writes: completions, read data), 'read-write', or 'split' (two mappings: the first half device-read, the second device-write; what the nvme and e1000e drivers need when one window serves both).`,
    },
  },
};

const durationMs = (min: number, max: number): Schema => ({ t: 'duration', min, max });

export const policySchema: ObjectSchema = {
  t: 'object',
  doc: 'A dmabox sandbox policy: what one driver sandbox is given and how it is supervised.',
  fields: {
    version: { schema: { t: 'int', min: POLICY_VERSION, max: POLICY_VERSION }, required: true, doc: 'The policy format version (1).' },
    name: {
      schema: { t: 'string', hint: 'a name of lower-case letters, digits and dashes (at most 32)', pattern: '^[a-z][a-z0-9-]{0,31}$' },
      required: true,
      doc: 'The sandbox name, unique among the policies loaded together.',
    },
    device: { schema: deviceSchema, required: true, doc: deviceSchema.doc! },
    driver: { schema: driverSchema, required: true, doc: driverSchema.doc! },
    windows: {
      schema: { t: 'array', items: windowSchema, minItems: 1, maxItems: 64 },
      required: true,
      doc: 'The DMA windows: all the memory the device may ever reach.',
    },
    container: {
      schema: {
        t: 'object',
        fields: {
          uid: {
            schema: { t: 'int', min: 0, max: 4294967294 },
            doc: "User id the driver runs as. Leave it out: each sandbox gets an identity of its own from the dynamic range (sandbox/README.md, 'Identities'). Given, it must be no other sandbox's, not 65534 (nobody), and 0 only with unconfined: true.",
          },
          gid: {
            schema: { t: 'int', min: 0, max: 4294967294 },
            doc: 'Group id the driver runs as: given together with uid, with the same rules.',
          },
          memory: {
            schema: { t: 'size', min: 16 * MiB, max: 64 * GiB },
            default: '256MiB',
            doc: "Memory limit of the driver process, windows included: its cgroup's memory limit (the whole process) where cgroups are available.",
          },
          pids: {
            schema: { t: 'int', min: 16, max: 4096 },
            default: 64,
            doc: "Tasks (processes and threads) the driver's cgroup may hold; Node needs about a dozen.",
          },
          cpuWeight: {
            schema: { t: 'int', min: 1, max: 10000 },
            default: 100,
            doc: "CPU weight of the driver's cgroup (cgroup v2 cpu.weight; v1 cpu.shares = weight * 1024 / 100); 100 is an equal share.",
          },
          seccomp: {
            schema: { t: 'string', hint: 'a profile name of lower-case letters, digits and dashes', pattern: '^[a-z][a-z0-9-]{0,31}$' },
            default: 'driver',
            doc: `Seccomp profile ('none' only with unconfined: true).`,
          },
        },
      },
      default: {},
      doc: 'The process the driver runs in.',
    },
    restart: {
      schema: {
        t: 'object',
        fields: {
          maxRestarts: { schema: { t: 'int', min: 0, max: 1000 }, default: 3, doc: 'Restarts allowed within `window` before the sandbox is stopped.' },
          window: { schema: durationMs(1000, 86_400_000), default: '60s', doc: 'The time window restarts are counted in.' },
          backoff: {
            schema: {
              t: 'object',
              fields: {
                initial: { schema: durationMs(1, 3_600_000), default: '100ms', doc: 'Delay before the first restart; doubled each time.' },
                max: { schema: durationMs(1, 3_600_000), default: '30s', doc: 'The longest delay between restarts.' },
              },
            },
            default: {},
            doc: 'Exponential backoff between restarts.',
          },
          spare: {
            schema: { t: 'bool' },
            default: false,
            doc: 'Keep a spare container (and, on the simulator, a spare device process) started and waiting, under the sandbox identity and holding nothing of it, so a restart skips the process launch and Node start-up (costs two idle processes).',
          },
        },
      },
      default: {},
      doc: 'What to do when the driver dies.',
    },
    onIommuFault: {
      schema: { t: 'string', enum: ['log', 'restart', 'stop'], hint: `'log', 'restart' or 'stop'` },
      default: 'stop',
      doc: 'What to do when the device touches memory outside its windows.',
    },
    linkback: {
      schema: {
        t: 'object',
        oneOf: ['nbd', 'tap'],
        fields: {
          nbd: {
            schema: {
              t: 'object',
              oneOf: ['socket', 'port', 'address'],
              fields: {
                socket: {
                  schema: { t: 'string', hint: 'an absolute path of at most 107 bytes', pattern: '^/', maxLength: 107 },
                  doc: 'Unix socket path (sun_path holds 108 bytes with the NUL).',
                },
                port: { schema: { t: 'int', min: 1, max: 65535 }, doc: 'TCP port on 127.0.0.1 (loopback only).' },
                address: {
                  schema: {
                    t: 'string',
                    hint: "'HOST:PORT' (an IPv4 address, or an IPv6 one in brackets: '[::]:10809')",
                    pattern: '^(\\d{1,3}(\\.\\d{1,3}){3}|\\[[0-9A-Fa-f:.]+\\]):\\d{1,5}$',
                  },
                  doc: 'TCP address to listen on, e.g. 0.0.0.0:10809 (the NBD port). An address other than loopback needs tls: require: NBD has no other authentication.',
                },
                tls: {
                  schema: { t: 'string', enum: ['off', 'on', 'require'], hint: `'off', 'on' or 'require'` },
                  default: 'off',
                  doc: "TLS through the protocol's STARTTLS, as nbdkit's --tls: 'on' lets a client upgrade, 'require' refuses every client that does not (needs tls-psk or tls-certificates).",
                },
                'tls-psk': {
                  schema: { t: 'string', hint: 'an absolute path', pattern: '^/' },
                  doc: "Pre-shared keys in GnuTLS psktool's format (identity:hexkey lines; make one with psktool -u NAME -p FILE), mode 0600. Clients: nbds://NAME@host/export?tls-psk-file=FILE.",
                },
                'tls-certificates': {
                  schema: { t: 'string', hint: 'an absolute path', pattern: '^/' },
                  doc: 'A directory with server-cert.pem and server-key.pem (mode 0600), and ca-cert.pem for tls-verify-peer, as for nbdkit --tls-certificates.',
                },
                'tls-verify-peer': {
                  schema: { t: 'bool' },
                  default: false,
                  doc: "With tls-certificates: clients must present a certificate signed by the directory's ca-cert.pem.",
                },
                export: {
                  schema: { t: 'string', hint: 'an export name of 1 to 4096 bytes', pattern: '^[^\\x00]+$', maxLength: 4096 },
                  required: true,
                  doc: 'NBD export name (at most 4096 bytes, NBD protocol, NBD_OPT_GO).',
                },
                poll: {
                  schema: durationMs(0, 10),
                  default: '500us',
                  doc: `Hybrid polling (sandbox/abi/hybrid-poll.ts): how long the manager keeps looking at the sandbox's block ring and device doorbells on every event-loop turn after the last request or completion, instead of sleeping until the container kicks an eventfd. Saves a wake-up per batch of requests for CPU spent while a client is active; '0ms' never polls.`,
                },
              },
            },
            doc: 'Serve the disk as an NBD export (a block driver: nvme, or a module of kind block).',
          },
          tap: {
            schema: {
              t: 'object',
              fields: {
                interface: {
                  schema: { t: 'string', hint: 'an interface name of at most 15 characters', pattern: '^[A-Za-z0-9_.-]{1,15}$' },
                  required: true,
                  doc: 'TAP interface name (IFNAMSIZ is 16 with the NUL).',
                },
                address: {
                  schema: { t: 'string', hint: "an IPv4 address with its prefix length, e.g. '10.0.2.15/24'", pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$' },
                  doc: "The interface's address on the host side, set and brought up by the manager at start (as `ip addr add` and `ip link set up`); absent: left to the host.",
                },
                gateway: {
                  schema: { t: 'string', hint: "an IPv4 address, e.g. '10.0.2.2'", pattern: '^\\d{1,3}(\\.\\d{1,3}){3}$' },
                  doc: "A default route through this address, on the interface's subnet (needs address): for an appliance whose network is this NIC.",
                },
              },
            },
            doc: 'Plug the NIC into a TAP interface (a net driver: e1000e, or a module of kind net).',
          },
        },
      },
      doc: 'How the driver is plugged back into the host (absent: none).',
    },
    unconfined: { schema: { t: 'bool' }, default: false, doc: 'Run without IOMMU confinement or privilege drop. Loud; for debugging only.' },
  },
};
