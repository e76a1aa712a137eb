/** The architecture check's rule engine (scripts/architecture.ts) on made-up edges, against the project's rules. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkEdges, compilePattern, formatReport, isClean } from '../../scripts/architecture.js';
import { ARCHITECTURE_RULES } from '../../scripts/architecture-rules.js';
import type { Edge, Target } from '../../scripts/import-graph.js';

const file = (path: string): Target => ({ type: 'file', path });
const edge = (from: string, to: Target, kind: Edge['kind'] = 'import'): Edge => ({
  from,
  to,
  kind,
  line: 1,
  specifier: to.type === 'file' ? to.path : to.type === 'unresolved' ? to.specifier : to.name,
});

/** The rules violated by one edge, by name. */
function broken(from: string, to: Target): string[] {
  return checkEdges([from], [edge(from, to)]).violations.map((v) => v.rule);
}

test('patterns: folders, one segment, any depth, one file, node: and packages', () => {
  assert.is(compilePattern('drivers/*/').area('drivers/nvme/queue.ts'), 'drivers/nvme/');
  assert.is(compilePattern('drivers/*/').area('drivers/index.ts'), undefined, '* needs a segment');
  assert.is(compilePattern('examples/**/test/').area('examples/ring/sub/test/a.test.ts'), 'examples/ring/sub/test/');
  assert.is(compilePattern('common/errors.ts').area('common/errors.ts'), 'common/errors.ts');
  assert.is(compilePattern('common/errors.ts').area('common/errors.tsx'), undefined);
  assert.is(compilePattern('sim/').area('simulator/x.ts'), undefined, 'a folder pattern is a whole segment');
  assert.is(compilePattern('spec.d/').area('specxd/a.ts'), undefined, 'dots are literal');
  assert.ok(compilePattern('node:').area('node:fs'));
  assert.is(compilePattern('node:').area('package:koffi'), undefined);
  assert.ok(compilePattern('package:*').area('package:yaml'));
  assert.is(compilePattern('package:koffi').area('package:yaml'), undefined);
  assert.is(compilePattern('**').area('node:fs'), undefined, 'path patterns never match modules outside the project');
});

test('a driver may import the contract, the kit, spec, common/errors.ts and itself, nothing else', () => {
  for (const to of ['drivers/contract/platform.ts', 'drivers/kit/pool.ts', 'spec/nvme/registers.ts', 'common/errors.ts', 'drivers/nvme/queue.ts']) {
    assert.equal(broken('drivers/nvme/controller.ts', file(to)), [], to);
  }
  assert.equal(broken('examples/ring/driver.ts', file('examples/ring/util.ts')), [], 'an example imports itself');
  assert.equal(broken('drivers/nvme/controller.ts', file('drivers/e1000e/device.ts')), ['drivers see only the contract']);
  assert.equal(broken('examples/ring/driver.ts', file('examples/other/driver.ts')), ['drivers see only the contract']);
  assert.equal(broken('drivers/nvme/controller.ts', file('common/unix-socket.ts')), ['drivers see only the contract']);
  assert.equal(broken('drivers/e1000e/device.ts', file('sim/machine.ts')), ['drivers see only the contract']);
  assert.equal(broken('drivers/e1000e/device.ts', file('sys/src/index.ts')), ['drivers see only the contract']);
  assert.equal(broken('drivers/e1000e/device.ts', { type: 'builtin', name: 'node:fs' }), ['drivers see only the contract']);
  assert.equal(broken('drivers/e1000e/device.ts', { type: 'package', name: 'yaml' }), ['drivers see only the contract']);
  assert.equal(broken('drivers/e1000e/device.ts', { type: 'package', name: 'koffi' }), ['only linux-sys calls koffi', 'drivers see only the contract']);
});

test("an example's tests may import anything; the contract and the kit have their own rules", () => {
  assert.equal(broken('examples/ring/test/ring.test.ts', file('sim/machine.ts')), []);
  assert.equal(broken('examples/ring/ring.test.ts', { type: 'builtin', name: 'node:fs' }), []);
  assert.equal(broken('drivers/kit/pool.ts', file('drivers/contract/platform.ts')), []);
  assert.equal(broken('drivers/kit/pool.ts', file('drivers/nvme/queue.ts')), ['the driver kit stands on the contract']);
  assert.equal(broken('drivers/contract/platform.ts', file('drivers/kit/pool.ts')), ['the driver contract stands on spec and common']);
});

test('device models: the contract only, of drivers; never the sandbox, linkback or the CLI', () => {
  assert.equal(broken('sim/platform.ts', file('drivers/contract/platform.ts')), []);
  assert.equal(broken('sim/nvme/nvm.ts', file('drivers/nvme/status.ts')), ['device models never import drivers']);
  assert.equal(broken('sim/machine.ts', file('sandbox/abi/mailbox.ts')), ['device models never import drivers']);
  assert.equal(broken('sim/machine.ts', file('dma/memfd.ts')), []);
});

test('the container: not the manager, host DMA, platforms, sim, linkback, policies, or a driver', () => {
  assert.equal(broken('sandbox/container/run.ts', file('sandbox/manager/supervisor.ts')), ['the container never imports the manager']);
  for (const to of ['dma/memfd.ts', 'platform/vfio.ts', 'sim/machine.ts', 'linkback/registry.ts', 'policies/types.ts']) {
    assert.equal(broken('sandbox/container/run.ts', file(to)), ['the container never imports the manager'], to);
  }
  assert.equal(broken('sandbox/container/run.ts', file('drivers/nvme/index.ts')), ['the container never names a driver']);
  assert.equal(broken('sandbox/container/run.ts', file('drivers/kit/prp.ts')), []);
  assert.equal(broken('sandbox/container/run.ts', file('sandbox/abi/block.ts')), []);
  assert.equal(broken('sandbox/manager/supervisor.ts', file('sandbox/container/main.ts')), ['the manager never imports the container or the device process']);
  assert.equal(broken('sandbox/abi/block.ts', file('sandbox/manager/device.ts')), ['the container ABI stands on common, spec and linux-sys']);
  assert.equal(broken('sandbox/abi/block.ts', file('sys/src/index.ts')), []);
});

test('the device process: only the models, spec, the ABI, seccomp and the seams; the manager holds no model', () => {
  assert.equal(broken('sandbox/device/run.ts', file('sandbox/manager/supervisor.ts')), ['the device process never imports the manager']);
  for (const to of ['dma/memfd.ts', 'policies/types.ts', 'linkback/registry.ts', 'drivers/nvme/index.ts', 'sandbox/container/run.ts']) {
    assert.equal(broken('sandbox/device/run.ts', file(to)), ['the device process never imports the manager'], to);
  }
  for (const to of ['sim/machine.ts', 'spec/field.ts', 'sandbox/abi/device.ts', 'sandbox/seccomp/confine.ts', 'sys/src/index.ts']) {
    assert.equal(broken('sandbox/device/run.ts', file(to)), [], to);
  }
  for (const to of ['sandbox/device/run.ts', 'sim/machine.ts', 'sim/nvme/controller.ts']) {
    assert.equal(broken('sandbox/manager/sim-device.ts', file(to)), ['the manager never imports the container or the device process'], to);
  }
  assert.equal(broken('sandbox/manager/services/net-selfcheck.ts', file('sim/net/packets.ts')), []);
});

test('host code never imports a driver, except the in-process adapters, which say why', () => {
  for (const from of [
    'dma/window.ts',
    'sandbox/manager/manager.ts',
    'linkback/nbd/server.ts',
    'policies/schema.ts',
    'platform/vfio.ts',
    'cli/up.ts',
    'appliance/lab/suite.ts',
  ]) {
    assert.equal(broken(from, file('drivers/nvme/index.ts')), ['host code never imports a driver'], from);
    assert.equal(broken(from, file('drivers/kit/pool.ts')), ['host code never imports a driver'], from);
    assert.equal(broken(from, file('drivers/contract/platform.ts')), [], from);
  }
  assert.equal(broken('linkback/in-process/nvme.ts', file('drivers/nvme/index.ts')), []);
  const rule = ARCHITECTURE_RULES.find((r) => r.name === 'host code never imports a driver')!;
  assert.match(rule.exceptions![0]!.reason, /dmabox up.* never loads them/);
});

test('the seams: linux-sys imports nothing, vfio-bindings only linux-sys, nobody else koffi', () => {
  assert.equal(broken('sys/src/sys.ts', file('common/errors.ts')), ['linux-sys is the bottom']);
  assert.equal(broken('sys/src/koffi.ts', { type: 'package', name: 'koffi' }), []);
  assert.equal(broken('vfio/src/device.ts', file('sys/src/index.ts')), []);
  assert.equal(broken('vfio/src/device.ts', file('common/errors.ts')), ['vfio-bindings stands on linux-sys only']);
  assert.equal(broken('vfio/src/device.ts', { type: 'package', name: 'koffi' }), ['only linux-sys calls koffi']);
  assert.equal(broken('common/errors.ts', file('spec/field.ts')), ['common imports nothing of the project']);
  assert.equal(broken('spec/pci/config.ts', file('common/errors.ts')), []);
  assert.equal(broken('spec/pci/config.ts', file('common/unix-socket.ts')), ['spec imports only spec and the error base']);
});

test('no layer imports tests or benchmarks; tests, benchmarks and scripts import each other', () => {
  assert.equal(broken('sandbox/manager/manager.ts', file('test/sys/fake-sys.ts')), ['no layer imports tests or benchmarks']);
  assert.equal(broken('appliance/lab/suite.ts', file('bench/machine.ts')), ['no layer imports tests or benchmarks']);
  assert.equal(broken('bench/e1000e.ts', file('test/drivers/e1000e/packets.ts')), []);
  assert.equal(broken('scripts/tcb.ts', file('test/helpers/skip.ts')), []);
});

test('tests, benchmarks and scripts import anything', () => {
  for (const from of ['test/sim/machine.test.ts', 'bench/nvme.ts', 'scripts/run-tests.ts']) {
    assert.equal(broken(from, file('drivers/nvme/index.ts')), [], from);
    assert.equal(broken(from, { type: 'package', name: 'koffi' }), [], from);
  }
});

test('a file no rule covers, and an import of nothing, are reported', () => {
  const r = checkEdges(['drivers/index.ts', 'stray/x.ts', 'cli/up.ts'], [edge('cli/up.ts', { type: 'unresolved', specifier: './gone.js' })]);
  assert.equal(r.uncovered, ['drivers/index.ts', 'stray/x.ts']);
  assert.equal(r.unresolved, [{ from: 'cli/up.ts', specifier: './gone.js', line: 1 }]);
  assert.not.ok(isClean(r));
});

test('the report: one line per edge, `from -> to (rule)`, each edge once, then why the rule exists', () => {
  const edges = [edge('sim/nvme/nvm.ts', file('drivers/nvme/status.ts')), edge('sim/nvme/nvm.ts', file('drivers/nvme/status.ts'), 'import type')];
  const r = checkEdges(['sim/nvme/nvm.ts'], edges);
  assert.is(r.violations.length, 1);
  const lines = formatReport(r);
  assert.is(lines[0], 'sim/nvme/nvm.ts -> drivers/nvme/status.ts (device models never import drivers)');
  assert.match(lines[1]!, /^ {2}device models never import drivers: /);
  assert.ok(isClean(checkEdges(['sim/nvme/nvm.ts'], [])));
});

test('every rule names its reason, and rule names are unique', () => {
  const names = ARCHITECTURE_RULES.map((r) => r.name);
  assert.is(new Set(names).size, names.length);
  for (const r of ARCHITECTURE_RULES) assert.ok(r.why.length > 20 && r.from.length > 0, r.name);
});

test.run();
