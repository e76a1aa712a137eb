/**
 * The allowed import directions, as data. scripts/architecture.ts checks every edge of the import
 * graph of the TypeScript sources against them (test/architecture.test.ts runs it in the unit
 * suite, so CI fails on a forbidden edge), and every source file must fall under some rule.
 *
 * Patterns name repository paths: `dir/` is everything under dir, `dir/file.ts` one file, `*`
 * one path segment (`examples/*\/` is each example), `**` anything (`**` alone: every file).
 * Workspace packages are their folders: `sys/` is linux-sys, `vfio/` is vfio-bindings. Outside
 * the project: `node:` is Node's built-in modules, `package:NAME` a package (`package:*` any).
 *
 * A rule applies to the files matching `from` and not `notFrom`. With `allow`, those files may
 * import only their own area (the part of the path `from` matched: `drivers/nvme/` for
 * drivers/nvme/queue.ts) and what `allow` lists; built-in modules and packages are allowed unless
 * `external` says otherwise. With `deny`, they must not import what `deny` lists, unless the
 * target matches `unlessTo`. `exceptions` name edges a rule does not apply to, each with its reason.
 * Every source file must fall under a rule that places it in a layer; a `crossCutting` rule (one
 * seam for every layer) does not count for that.
 */

export interface ArchitectureRule {
  /** Printed with each forbidden edge: `from -> to (name)`. */
  name: string;
  /** Why the rule exists, for the person who meets it. */
  why: string;
  from: string[];
  notFrom?: string[];
  /** The only targets allowed besides the file's own area. */
  allow?: string[];
  /** With `allow`: whether `node:` modules and packages may be imported (default: both). */
  external?: { builtins: boolean; packages: boolean };
  deny?: string[];
  unlessTo?: string[];
  exceptions?: { from: string[]; to?: string[]; reason: string }[];
  /** A rule over every layer (it covers no file for the coverage check). */
  crossCutting?: boolean;
}

/** The drivers: each built-in driver's folder and each example driver. */
const DRIVERS = ['drivers/*/', 'examples/*/'];
const DRIVER_SUPPORT = ['drivers/contract/', 'drivers/kit/'];
/** An example's own tests, which may use anything a test may. */
const EXAMPLE_TESTS = ['examples/**/test/', 'examples/**/*.test.ts'];
/** Code that runs on the host side: the manager process, its tools, and the lab. */
const HOST = ['dma/', 'sandbox/manager/', 'linkback/', 'policies/', 'platform/', 'cli/', 'appliance/', 'ops/'];

export const ARCHITECTURE_RULES: ArchitectureRule[] = [
  {
    name: 'linux-sys is the bottom',
    why: 'linux-sys (sys/) is the syscall seam: a standalone package that knows nothing of dmabox',
    from: ['sys/'],
    allow: [],
  },
  {
    name: 'vfio-bindings stands on linux-sys only',
    why: 'vfio-bindings (vfio/) is a standalone package over the syscall seam',
    from: ['vfio/'],
    allow: ['sys/'],
  },
  {
    name: 'only linux-sys calls koffi',
    why: 'one seam for foreign calls: everything else goes through linux-sys, which tests replace',
    from: ['**'],
    notFrom: ['sys/', 'test/', 'bench/', 'scripts/', ...EXAMPLE_TESTS],
    deny: ['package:koffi'],
    crossCutting: true,
  },
  {
    name: 'common imports nothing of the project',
    why: 'common/ (the error base class, small shared pieces) is under every layer',
    from: ['common/'],
    allow: [],
  },
  {
    name: 'spec imports only spec and the error base',
    why: 'register maps and layouts are data from the specifications, shared by drivers and device models',
    from: ['spec/'],
    allow: ['common/errors.ts'],
  },
  {
    name: 'the driver contract stands on spec and common',
    why: 'drivers/contract is the one interface a driver sees; it must not pull in an implementation',
    from: ['drivers/contract/'],
    allow: ['spec/', 'common/'],
  },
  {
    name: 'the driver kit stands on the contract',
    why: 'drivers/kit holds driver-side helpers; they run in the untrusted container',
    from: ['drivers/kit/'],
    allow: ['drivers/contract/', 'spec/', 'common/'],
  },
  {
    name: 'drivers see only the contract',
    why: "a driver runs confined and may be anyone's code: it reaches the device through drivers/contract only, never the manager, the simulator, VFIO, Node or a package",
    from: DRIVERS,
    notFrom: [...DRIVER_SUPPORT, ...EXAMPLE_TESTS],
    allow: [...DRIVER_SUPPORT, 'spec/', 'common/errors.ts'],
    external: { builtins: false, packages: false },
  },
  {
    name: 'device models never import drivers',
    why: 'a simulated device is tested against the drivers; sharing their code would hide the bugs both make (sim/platform.ts implements the contract)',
    from: ['sim/'],
    deny: ['drivers/', 'examples/', 'sandbox/', 'linkback/', 'cli/'],
    unlessTo: ['drivers/contract/'],
  },
  {
    name: 'the container never imports the manager',
    why: "sandbox/container is untrusted: it must not contain, or load, the manager's code or host-side DMA, device and linkback code",
    from: ['sandbox/container/'],
    deny: ['sandbox/manager/', 'dma/', 'platform/', 'sim/', 'linkback/', 'policies/'],
  },
  {
    name: 'the container never names a driver',
    why: 'the container runs whatever driver module the manager hands it (built-in or external) through the contract; importing one would load driver code it did not get that way, and put driver names in the container',
    from: ['sandbox/container/'],
    deny: ['drivers/', 'examples/'],
    unlessTo: [...DRIVER_SUPPORT],
  },
  {
    name: 'the device process never imports the manager',
    why: "sandbox/device runs a simulated device model in its own unprivileged, confined process: it holds only its device's memory and must not contain the manager's code, host-side DMA, policies, linkbacks or a driver",
    from: ['sandbox/device/'],
    allow: ['sim/', 'spec/', 'sandbox/abi/', 'sandbox/seccomp/', 'common/', 'sys/', 'drivers/contract/'],
  },
  {
    name: 'the container ABI stands on common, spec and linux-sys',
    why: 'sandbox/abi is the formats crossing the container boundary, shared by both sides: it belongs to neither',
    from: ['sandbox/abi/'],
    allow: ['common/', 'spec/', 'sys/'],
  },
  {
    name: 'seccomp stands on common and the seams',
    why: 'sandbox/seccomp builds the filter the container installs on itself; it needs the syscall seam and the VFIO ioctl numbers it allows',
    from: ['sandbox/seccomp/'],
    allow: ['common/', 'sys/', 'vfio/'],
  },
  {
    name: 'the spawner stands on common, linux-sys, the ABI and the policy types',
    why: 'sandbox/spawner is the privileged process left after set-up and the launch library it runs (identities, namespaces, cgroups): it must stay small, and never load the manager, the container, drivers or device models',
    from: ['sandbox/spawner/'],
    allow: ['common/', 'sys/', 'sandbox/abi/', 'policies/types.ts'],
  },
  {
    name: 'the manager never imports the container or the device process',
    why: 'sandbox/manager is trusted; the container and the device process are the code it does not trust (the model runs outside it)',
    from: ['sandbox/manager/'],
    deny: ['sandbox/container/', 'sandbox/device/', 'sim/'],
    unlessTo: ['sim/net/packets.ts'],
  },
  {
    name: 'ops reads the manager, never the other way',
    why: 'ops/ (metrics, the notify protocol, logs, reload) is trusted manager-side code that reads the manager, its services and the linkbacks; the manager and linkbacks must not depend on how they are watched',
    from: ['ops/'],
    allow: ['common/', 'sys/', 'sandbox/manager/', 'linkback/', 'policies/'],
  },
  {
    name: 'nothing below the CLI imports ops',
    why: 'ops/ is wired in by `dmabox up` (cli/); the manager, linkbacks and everything under them stay unaware of it',
    from: ['**'],
    notFrom: ['ops/', 'cli/', 'test/', 'bench/', 'scripts/', ...EXAMPLE_TESTS],
    deny: ['ops/'],
    crossCutting: true,
  },
  {
    name: 'host code never imports a driver',
    why: 'drivers are untrusted and run confined; the manager, DMA mapping, linkbacks, policies, platforms, the CLI and the lab tools talk to them through the container ABI only',
    from: HOST,
    deny: ['drivers/', 'examples/'],
    unlessTo: ['drivers/contract/'],
    exceptions: [
      {
        from: ['linkback/in-process/'],
        reason: 'adapters that run a driver inside the manager process for benchmarks and the lab; `dmabox up` never loads them (npm run tcb shows it)',
      },
    ],
  },
  {
    name: 'the campaign injector is driver code',
    why: "campaigns/inject/ wraps the driver's Platform and is written to run where the driver runs (a container): it may see only what a driver sees, plus the seeded generator",
    from: ['campaigns/inject/'],
    allow: [...DRIVER_SUPPORT, 'spec/', 'common/errors.ts', 'common/prng.ts'],
    external: { builtins: false, packages: false },
  },
  {
    name: 'campaigns are trusted tooling on the simulator',
    why: 'the campaign runner loads the target driver into its own process on the simulator (like linkback/in-process) and is never part of `dmabox up`; it must not reach the container, the device process or VFIO',
    from: ['campaigns/'],
    notFrom: ['campaigns/inject/', 'campaigns/container/'],
    deny: ['sandbox/container/', 'sandbox/device/', 'sandbox/spawner/', 'vfio/', 'drivers/', 'examples/', 'linkback/', 'cli/'],
    unlessTo: ['drivers/contract/'],
  },
  {
    name: 'container-mode campaigns drive the real sandbox from outside',
    why: "campaigns/container/ runs each trial through a Supervisor (the manager's side) and the real NBD linkback, as `dmabox up` does; what runs in the container it reaches only through the manager, never by import",
    from: ['campaigns/container/'],
    deny: ['sandbox/container/', 'sandbox/device/', 'sandbox/spawner/', 'vfio/', 'drivers/', 'examples/', 'cli/'],
    unlessTo: ['drivers/contract/'],
  },
  {
    name: 'no layer imports tests or benchmarks',
    why: 'test/ and bench/ stand above everything; code they hold (fakes, fixtures, harnesses) must not become part of what ships',
    from: ['**'],
    notFrom: ['test/', 'bench/', 'scripts/', ...EXAMPLE_TESTS],
    deny: ['test/', 'bench/'],
    crossCutting: true,
  },
  {
    name: 'tests, benchmarks and scripts may import anything',
    why: 'they exercise and measure every layer',
    from: ['test/', 'bench/', 'scripts/', ...EXAMPLE_TESTS],
  },
];
