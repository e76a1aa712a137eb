import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyError, formatProblem, loadPolicyFiles, parsePolicies } from '../../policies/loader.js';

const GOOD = `version: 1
name: lab-nvme
device:
  pci: "0000:00:01.0"
driver:
  name: nvme
  queues: 2
windows:
  - size: 2MiB
    label: queues
  - size: 32MiB
    label: io-buffers
linkback:
  nbd: { port: 10809, export: lab-nvme }
`;

/** Every problem of a source, formatted as the user sees it. */
function problems(source: string, file = 'lab-nvme.yaml'): string[] {
  try {
    parsePolicies(source, file);
  } catch (e) {
    assert.instance(e, PolicyError);
    assert.is((e as PolicyError).code, 'ERR_POLICY_INVALID');
    return (e as PolicyError).problems.map(formatProblem);
  }
  assert.unreachable(`expected problems in:\n${source}`);
  return [];
}

/** GOOD with line `n` (1-based) replaced by `text` (several lines allowed). */
function edit(n: number, text: string): string {
  const lines = GOOD.split('\n');
  lines.splice(n - 1, 1, text);
  return lines.join('\n');
}

test('a good policy resolves with defaults filled in', () => {
  const { policies, warnings } = parsePolicies(GOOD, 'lab-nvme.yaml');
  assert.is(policies.length, 1);
  assert.is(warnings.length, 0);
  const p = policies[0]!.policy;
  assert.equal(p.device, { pci: '0000:00:01.0', bind: false });
  assert.equal(p.driver, { name: 'nvme', queues: 2, depth: 128, interrupts: 'polling' });
  assert.equal(p.windows, [
    { size: 2 * 2 ** 20, hugePages: false, label: 'queues', access: 'split' },
    { size: 32 * 2 ** 20, hugePages: false, label: 'io-buffers', access: 'split' },
  ]);
  // No uid or gid: each sandbox gets an identity of its own when it is launched.
  assert.equal(p.container, { memory: 256 * 2 ** 20, pids: 64, cpuWeight: 100, seccomp: 'driver' });
  assert.equal(p.restart, { maxRestarts: 3, window: 60_000, backoff: { initial: 100, max: 30_000 }, spare: false });
  assert.is(p.onIommuFault, 'stop');
  assert.equal(p.linkback, { nbd: { port: 10809, export: 'lab-nvme', poll: 0.5, tls: 'off', 'tls-verify-peer': false } });
  assert.is(p.unconfined, false);
});

test('the message of the brief: a bad size names file, line and field', () => {
  assert.equal(problems(edit(11, `  - size: big`)), [`lab-nvme.yaml:11: windows[1].size: expected a size like '64MiB' or a number of bytes, got 'big'`]);
});

test('window access: split by default, the device access given, anything else refused with the choices', () => {
  const p = parsePolicies(edit(10, `    label: queues\n    access: read`), 'x.yaml').policies[0]!.policy;
  assert.is(p.windows[0]!.access, 'read');
  assert.is(p.windows[1]!.access, 'split');
  const bad = problems(edit(10, `    label: queues\n    access: rw`));
  assert.is(bad.length, 1);
  assert.match(bad[0]!, /^lab-nvme\.yaml:11: windows\[0\]\.access: expected 'split', 'read', 'write' or 'read-write'/);
});

test('all problems are reported at once, in order', () => {
  const src = GOOD.replace('queues: 2', 'queues: 0').replace('size: 2MiB', 'size: 5000').replace('port: 10809', 'port: 70000');
  assert.equal(problems(src), [
    `lab-nvme.yaml:7: driver.queues: expected a whole number from 1 to 64, got 0`,
    `lab-nvme.yaml:9: windows[0].size: expected a multiple of 4KiB (the IOMMU page size), got 5000B`,
    `lab-nvme.yaml:14: linkback.nbd.port: expected a whole number from 1 to 65535, got 70000`,
  ]);
});

const CASES: Array<[string, string, string[]]> = [
  ['wrong version', edit(1, 'version: 2'), [`lab-nvme.yaml:1: version: expected a whole number from 1 to 1, got 2`]],
  ['missing version', edit(1, ''), [`lab-nvme.yaml:2: version: required field missing: expected a whole number from 1 to 1`]],
  ['bad name', edit(2, 'name: Lab_NVMe'), [`lab-nvme.yaml:2: name: expected a name of lower-case letters, digits and dashes (at most 32), got 'Lab_NVMe'`]],
  ['unknown field with suggestion', edit(7, '  queus: 2'), [`lab-nvme.yaml:7: driver.queus: unknown field; did you mean 'queues'?`]],
  [
    'unknown top-level field',
    GOOD + 'colour: blue\n',
    [`lab-nvme.yaml:15: colour: unknown field; known fields: version, name, device, driver, windows, container, restart, onIommuFault, linkback, unconfined`],
  ],
  ['bad PCI address', edit(4, '  pci: "00:1f.9"'), [`lab-nvme.yaml:4: device.pci: expected a PCI address like '0000:00:01.0', got '00:1f.9'`]],
  ['two device selectors', edit(4, '  pci: "0000:00:01.0"\n  sim: nvme'), [`lab-nvme.yaml:4: device: pci and sim cannot be used together: choose one`]],
  [
    'unknown sim model',
    GOOD.replace('device:\n  pci: "0000:00:01.0"', 'device: { sim: ahci }'),
    [`lab-nvme.yaml:3: device.sim: expected one of 'nvme', 'e1000e', got 'ahci'`],
  ],
  [
    'bad device shorthand',
    edit(3, 'device: nvme0').replace('  pci: "0000:00:01.0"\n', ''),
    [
      `lab-nvme.yaml:3: device: expected a mapping with pci | id | sim: nvme | sim: e1000e or a string like '0000:00:01.0', '1b36:0010' or 'sim:nvme', got 'nvme0'`,
    ],
  ],
  ['unknown driver', edit(6, '  name: ahci'), [`lab-nvme.yaml:6: driver.name: expected one of 'nvme', 'e1000e', got 'ahci'`]],
  ['e1000e option on nvme', edit(7, '  queues: 2\n  interrupts: msi'), [`lab-nvme.yaml:8: driver.interrupts: expected 'polling' or 'msix', got 'msi'`]],
  [
    'windows not a list',
    edit(8, 'windows: 64MiB')
      .split('\n')
      .filter((_, i) => i < 8 || i > 11)
      .join('\n'),
    [`lab-nvme.yaml:8: windows: expected a list of a mapping with size, hugePages, label, access, got '64MiB'`],
  ],
  [
    'no windows',
    edit(8, 'windows: []')
      .split('\n')
      .filter((_, i) => i < 8 || i > 11)
      .join('\n'),
    [`lab-nvme.yaml:8: windows: expected at least 1 entry, got 0`],
  ],
  ['window too large', edit(11, '  - size: 2GiB'), [`lab-nvme.yaml:11: windows[1].size: expected at most 1GiB, got 2GiB`]],
  [
    'decimal megabytes refused',
    edit(11, '  - size: 32MB'),
    [`lab-nvme.yaml:11: windows[1].size: expected a size like '64MiB' or a number of bytes, got '32MB'`],
  ],
  ['hugePages not a boolean', edit(10, '    label: queues\n    hugePages: yes'), [`lab-nvme.yaml:11: windows[0].hugePages: expected true or false, got 'yes'`]],
  [
    'hugePages window not 2MiB-sized',
    edit(9, '  - size: 4KiB\n    hugePages: true'),
    [`lab-nvme.yaml:9: windows[0].size: expected a multiple of 2MiB with hugePages: true, got 4KiB`],
  ],
  [
    'duplicate labels',
    edit(12, '    label: queues'),
    [`lab-nvme.yaml:12: windows[1].label: expected a label not used before, got 'queues' (also windows[0].label)`],
  ],
  [
    'windows exceed memory',
    GOOD + 'container: { memory: 32MiB }\n',
    [
      `lab-nvme.yaml:15: container.memory: expected at least the windows' total 34MiB (the driver maps its windows, so they count against its memory), got 32MiB`,
    ],
  ],
  [
    'root uid',
    GOOD + 'container:\n  uid: 0\n',
    [
      `lab-nvme.yaml:16: container.uid: expected an unprivileged uid (or none: an identity of its own is allocated), got 0: a driver running as root is not sandboxed (allowed only with unconfined: true)`,
    ],
  ],
  [
    'seccomp none',
    GOOD + 'container:\n  seccomp: none\n',
    [`lab-nvme.yaml:16: container.seccomp: expected a seccomp profile (default 'driver'), got 'none' (allowed only with unconfined: true)`],
  ],
  [
    'bad duration',
    GOOD + 'restart:\n  window: soon\n',
    [`lab-nvme.yaml:16: restart.window: expected a duration like '500us', '100ms' or '30s', or a number of milliseconds, got 'soon'`],
  ],
  [
    'backoff inverted',
    GOOD + 'restart:\n  backoff: { initial: 1m, max: 1s }\n',
    [`lab-nvme.yaml:16: restart.backoff.initial: expected at most restart.backoff.max (1000ms), got 60000ms`],
  ],
  ['fault action', GOOD + 'onIommuFault: ignore\n', [`lab-nvme.yaml:15: onIommuFault: expected 'log', 'restart' or 'stop', got 'ignore'`]],
  [
    'nbd socket and port',
    edit(14, '  nbd: { port: 10809, socket: /tmp/x.sock, export: e }'),
    [`lab-nvme.yaml:14: linkback.nbd: socket and port cannot be used together: choose one`],
  ],
  [
    'nbd without export',
    edit(14, '  nbd: { port: 10809 }'),
    [`lab-nvme.yaml:14: linkback.nbd.export: required field missing: expected an export name of 1 to 4096 bytes`],
  ],
  [
    'poll window too long',
    edit(14, '  nbd: { port: 10809, export: e, poll: 20ms }'),
    [`lab-nvme.yaml:14: linkback.nbd.poll: expected a duration from 0ms to 10ms, got 20ms`],
  ],
  [
    'poll window in seconds as a fraction',
    edit(14, '  nbd: { port: 10809, export: e, poll: 0.5ms }'),
    [`lab-nvme.yaml:14: linkback.nbd.poll: expected a duration like '500us', '100ms' or '30s', or a number of milliseconds, got '0.5ms'`],
  ],
  [
    'relative socket',
    edit(14, '  nbd: { socket: x.sock, export: e }'),
    [`lab-nvme.yaml:14: linkback.nbd.socket: expected an absolute path of at most 107 bytes, got 'x.sock'`],
  ],
  [
    'socket path too long',
    edit(14, `  nbd: { socket: /${'a'.repeat(110)}, export: e }`),
    [`lab-nvme.yaml:14: linkback.nbd.socket: expected at most 107 bytes, got 111`],
  ],
  [
    'nbd on every interface without TLS',
    edit(14, '  nbd: { address: "0.0.0.0:10809", export: e }'),
    [
      `lab-nvme.yaml:14: linkback.nbd.address: expected tls: require on 0.0.0.0:10809, got tls: off: an NBD export on an address other than loopback is a raw disk for anyone who reaches it; require TLS with tls-psk or tls-certificates`,
    ],
  ],
  [
    'nbd TLS without keys, keys without TLS, verify-peer with a PSK',
    edit(14, '  nbd: { address: "[::]:10809", export: e, tls: require }') +
      '---\n' +
      edit(14, '  nbd: { port: 1, export: e, tls-psk: /etc/k.psk, tls-verify-peer: true }'),
    [
      `lab-nvme.yaml:14: linkback.nbd.tls: expected exactly one of tls-psk and tls-certificates with tls: require, got neither`,
      `lab-nvme.yaml:29: linkback.nbd.tls-psk: expected tls: on or require with TLS keys, got tls: off`,
      `lab-nvme.yaml:29: linkback.nbd.tls-verify-peer: expected tls-certificates with tls-verify-peer (a PSK already authenticates the client)`,
    ],
  ],
  [
    'nbd address that is not an address',
    edit(14, '  nbd: { address: "999.1.1.1:99999", export: e, tls: require, tls-psk: /k }'),
    [
      `lab-nvme.yaml:14: linkback.nbd.address: expected a port from 1 to 65535, got 99999`,
      `lab-nvme.yaml:14: linkback.nbd.address: expected an IP address, got '999.1.1.1'`,
    ],
  ],
  [
    'tap on a disk',
    edit(14, '  tap: { interface: dmabox0 }'),
    [`lab-nvme.yaml:14: linkback.tap: expected a network driver (e1000e, or a module of kind net) for a TAP linkback, got 'nvme': use linkback.nbd`],
  ],
  [
    'tap gateway without an address, off the subnet, a bad address',
    edit(14, '  tap: { interface: eth0, gateway: 10.0.2.2 }') +
      '---\n' +
      edit(14, '  tap: { interface: eth0, address: 10.0.2.15/24, gateway: 10.0.3.2 }') +
      '---\n' +
      edit(14, '  tap: { interface: eth0, address: 10.0.2.300/24 }'),
    [
      `lab-nvme.yaml:14: linkback.tap: expected a network driver (e1000e, or a module of kind net) for a TAP linkback, got 'nvme': use linkback.nbd`,
      `lab-nvme.yaml:14: linkback.tap.gateway: expected linkback.tap.address with a gateway (the route goes through the interface)`,
      `lab-nvme.yaml:29: linkback.tap: expected a network driver (e1000e, or a module of kind net) for a TAP linkback, got 'nvme': use linkback.nbd`,
      `lab-nvme.yaml:29: linkback.tap.gateway: expected an address on 10.0.2.15/24's subnet, got 10.0.3.2`,
      `lab-nvme.yaml:44: linkback.tap: expected a network driver (e1000e, or a module of kind net) for a TAP linkback, got 'nvme': use linkback.nbd`,
      `lab-nvme.yaml:44: linkback.tap.address: expected an IPv4 address and a prefix length up to 32, got '10.0.2.300/24'`,
    ],
  ],
  [
    'interface name too long',
    edit(14, '  tap: { interface: a-very-long-interface }'),
    [`lab-nvme.yaml:14: linkback.tap.interface: expected an interface name of at most 15 characters, got 'a-very-long-interface'`],
  ],
  [
    'driver does not fit the device',
    edit(3, 'device: "1b36:0010"')
      .replace('  pci: "0000:00:01.0"\n', '')
      .replace('name: nvme', 'name: e1000e')
      .replace('  queues: 2\n', '')
      .replace(/linkback:\n.*\n/, ''),
    [`lab-nvme.yaml:5: driver.name: expected 'nvme' for device 1b36:0010, got 'e1000e'`],
  ],
  [
    'e1000e depth not a multiple of 8',
    'version: 1\nname: n\ndevice: sim:e1000e\ndriver: { name: e1000e, depth: 100 }\nwindows: [{ size: 1MiB }]\n',
    [`lab-nvme.yaml:4: driver.depth: expected a multiple of 8, got 100`],
  ],
  [
    'sim nvme depth above MQES',
    'version: 1\nname: n\ndevice: { sim: nvme, mqes: 64 }\ndriver: { name: nvme, depth: 128 }\nwindows: [{ size: 1MiB }]\n',
    [`lab-nvme.yaml:4: driver.depth: expected at most 64 (device.mqes), got 128`],
  ],
  [
    'sim nvme block size',
    'version: 1\nname: n\ndevice: { sim: nvme, blockSize: 1024 }\ndriver: nvme\nwindows: [{ size: 1MiB }]\n',
    [`lab-nvme.yaml:3: device.blockSize: expected one of 512, 4096, got 1024`],
  ],
  ['unconfined must be a boolean', GOOD + 'unconfined: "yes"\n', [`lab-nvme.yaml:15: unconfined: expected true or false, got 'yes'`]],
  [
    'empty section',
    GOOD + 'container:\n',
    [`lab-nvme.yaml:15: container: expected a mapping with uid, gid, memory, pids, cpuWeight, seccomp, got nothing (null)`],
  ],
  ['YAML syntax error', GOOD + 'restart: [\n', [`lab-nvme.yaml:16: YAML: `]],
  ['duplicate key', GOOD + 'name: again\n', [`lab-nvme.yaml:15: YAML: Map keys must be unique`]],
  [
    'aliases refused',
    GOOD + 'restart: &r { maxRestarts: 1 }\nx: *r\n',
    [`lab-nvme.yaml:16: anchors and aliases are not supported in policies: write the value out`],
  ],
  [
    'not a mapping',
    '- 1\n- 2\n',
    [`lab-nvme.yaml:1: expected a mapping with version, name, device, driver, windows, container, restart, onIommuFault, linkback, unconfined, got a list`],
  ],
  ['empty file', '# nothing\n', [`lab-nvme.yaml:1: no policy in this file: expected a YAML mapping with version, name, device, driver and windows`]],
];

for (const [name, source, expected] of CASES) {
  test(`malformed: ${name}`, () => {
    const got = problems(source);
    // YAML syntax errors: compare the start, the parser's own wording may grow.
    if (expected[0]!.includes(' YAML: ')) assert.ok(got[0]?.startsWith(expected[0]!), got.join('\n'));
    else assert.equal(got, expected);
  });
}

test('unconfined: true is accepted, loudly, and lifts the uid rule', () => {
  const { policies, warnings } = parsePolicies(GOOD + 'container: { uid: 0 }\nunconfined: true\n', 'x.yaml');
  assert.is(policies[0]!.policy.unconfined, true);
  assert.is(warnings.length, 1);
  assert.match(formatProblem(warnings[0]!), /^x\.yaml:16: unconfined: UNCONFINED: sandbox 'lab-nvme' may run without IOMMU confinement/);
});

test('device shorthands expand to the mapping form', () => {
  const base = 'version: 1\nname: n\ndriver: nvme\nwindows: [{ size: 4096 }]\ndevice: ';
  assert.equal(parsePolicies(base + '"0000:00:01.0"\n', 'a').policies[0]!.policy.device, { pci: '0000:00:01.0', bind: false });
  assert.equal(parsePolicies(base + '"1b36:0010"\n', 'a').policies[0]!.policy.device, { id: '1b36:0010', index: 0, bind: false });
  assert.equal(parsePolicies(base + '"00:1F.2"\n', 'a').policies[0]!.policy.device, { pci: '0000:00:1f.2', bind: false }, 'domain added, lower case');
  assert.equal(parsePolicies(base + '{ pci: "00:01.0", bind: true }\n', 'a').policies[0]!.policy.device, { pci: '0000:00:01.0', bind: true }, 'bind asked for');
  assert.equal(parsePolicies(base + '{ id: "1b36:0010", bind: true }\n', 'a').policies[0]!.policy.device, { id: '1b36:0010', index: 0, bind: true });
  assert.throws(
    () => parsePolicies(base + '{ pci: "00:01.0", bind: maybe }\n', 'a'),
    (e: Error) => /device\.bind/.test(e.message),
  );
  assert.equal(parsePolicies(base + '"1B36:0010"\n', 'a').policies[0]!.policy.device, { id: '1b36:0010', index: 0, bind: false });
  assert.equal(parsePolicies(base + 'sim:nvme\n', 'a').policies[0]!.policy.device, {
    sim: 'nvme',
    capacity: 64 * 2 ** 20,
    blockSize: 512,
    maxQueues: 8,
    mqes: 1024,
    serial: 'sim0',
  });
});

test('several documents in one file; problems name the right document line', () => {
  const second = GOOD.replace('name: lab-nvme', 'name: other').replace('size: 32MiB', 'size: lots');
  const got = problems(`${GOOD}---\n${second}`);
  assert.equal(got, [`lab-nvme.yaml:26: windows[1].size: expected a size like '64MiB' or a number of bytes, got 'lots'`]);
});

test('names, devices and linkback endpoints must be unique across files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-policy-'));
  const a = join(dir, 'a.yaml');
  const b = join(dir, 'b.yaml');
  writeFileSync(a, GOOD);
  writeFileSync(b, GOOD.replace('"0000:00:01.0"', '"00:01.0"'));
  try {
    loadPolicyFiles([a, b]);
    assert.unreachable('duplicates accepted');
  } catch (e) {
    assert.instance(e, PolicyError);
    assert.equal((e as PolicyError).problems.map(formatProblem), [
      `${b}:1: name: name 'lab-nvme' is already used by policy 'lab-nvme' (${a}:1)`,
      `${b}:1: device: this device is already used by policy 'lab-nvme' (${a}:1)`,
      `${b}:1: linkback.nbd: tcp 127.0.0.1:10809 is already used by policy 'lab-nvme' (${a}:1)`,
    ]);
  }
});

test('an unreadable file is a problem, not a crash', () => {
  try {
    loadPolicyFiles(['/nonexistent/p.yaml']);
    assert.unreachable('accepted');
  } catch (e) {
    assert.equal((e as PolicyError).problems.map(formatProblem), ['/nonexistent/p.yaml:0: cannot read: ENOENT']);
  }
});

test.run();

test('driver.module: resolved against the policy file, exactly one of name and module, file:line for each problem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-module-'));
  writeFileSync(join(dir, 'my-driver.js'), 'export const contract = 1;\n');
  const file = join(dir, 'ext.yaml');
  const src = (driver: string, device = 'sim:nvme', linkback = 'linkback: { nbd: { socket: /tmp/x.sock, export: x } }'): string =>
    `version: 1\nname: ext\ndevice: ${device}\ndriver: ${driver}\nwindows:\n  - { size: 1MiB }\n${linkback}\n`;
  const p = parsePolicies(src('{ module: ./my-driver.js, queues: 2 }'), file).policies[0]!.policy;
  assert.equal(p.driver, { module: join(dir, 'my-driver.js'), queues: 2, depth: 128, interrupts: 'polling' });
  assert.is(p.driver.name, undefined);
  assert.equal(problems(src('{ name: nvme, module: ./my-driver.js }'), file), [`${file}:4: driver: name and module cannot be used together: choose one`]);
  assert.equal(problems(src('{ module: ./missing.js }'), file), [
    `${file}:4: driver.module: expected a driver module file, got ./missing.js (${join(dir, 'missing.js')}: ENOENT)`,
  ]);
  assert.match(problems(src('{ module: ./driver.ts }'), file)[0]!, `${file}:4: driver.module: expected a path to a .js or .mjs driver module`);
  // The device says what kind of driver it needs: a NIC cannot be an NBD export, whatever the module.
  assert.equal(problems(src('{ module: ./my-driver.js }', 'sim:e1000e'), file), [
    `${file}:7: linkback.nbd: expected a disk driver (nvme, or a module of kind block) for an NBD linkback, got a net driver: use linkback.tap`,
  ]);
});
