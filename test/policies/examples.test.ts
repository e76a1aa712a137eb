import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { policyJsonSchema } from '../../policies/json-schema.js';
import { loadPolicyFiles, parsePolicies } from '../../policies/loader.js';
import { present } from '../../policies/schema-dsl.js';
import { policySchema } from '../../policies/schema.js';

// Works from the sources (tsx) and from dist/test (compiled): find the repository root.
let root = dirname(fileURLToPath(import.meta.url));
while (!readdirSync(root).includes('package.json')) root = dirname(root);
const examples = join(root, 'policies', 'examples');
const files = readdirSync(examples)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

test('the examples the brief asks for are all there', () => {
  for (const f of ['demo.yaml', 'lab-e1000e.yaml', 'lab-nvme.yaml', 'sim-e1000e.yaml', 'sim-nvme.yaml']) assert.ok(files.includes(f), f);
});

for (const f of files) {
  test(`example ${f} is valid, and its resolved form reads back the same`, () => {
    const path = join(examples, f);
    const { policies, warnings } = loadPolicyFiles([path]);
    assert.ok(policies.length >= 1);
    assert.is(warnings.length, 0, 'no example may be unconfined');
    for (const lp of policies) {
      const again = parsePolicies(stringify(present(policySchema, lp.policy)), 'shown.yaml').policies[0]!.policy;
      assert.equal(again, lp.policy);
    }
  });
}

test('all examples load together (unique names, devices and endpoints)', () => {
  const { policies } = loadPolicyFiles(files.map((f) => join(examples, f)));
  assert.is(policies.length, files.length + 1); // demo.yaml holds two
});

test('the demo holds an NVMe over NBD on a unix socket and an e1000e with a simulated peer or TAP', () => {
  const { policies } = loadPolicyFiles([join(examples, 'demo.yaml')]);
  const [nvme, nic] = policies.map((lp) => lp.policy);
  assert.ok('sim' in nvme!.device && nvme!.device.sim === 'nvme');
  assert.ok(nvme!.linkback && 'nbd' in nvme!.linkback && 'socket' in nvme!.linkback.nbd);
  assert.ok('sim' in nic!.device && nic!.device.sim === 'e1000e');
  assert.ok(('peer' in nic!.device && nic!.device.peer === 'echo') || (nic!.linkback !== undefined && 'tap' in nic!.linkback));
});

test('policies/schema.json is in sync with policies/schema.ts', () => {
  const checkedIn = readFileSync(join(root, 'policies', 'schema.json'), 'utf8');
  assert.ok(checkedIn === policyJsonSchema(), 'policies/schema.json is stale: run `dmabox policy schema > policies/schema.json`');
});

test('the JSON Schema describes every top-level field and marks the required ones', () => {
  const js = JSON.parse(policyJsonSchema()) as { properties: Record<string, unknown>; required: string[]; additionalProperties: boolean };
  assert.equal(Object.keys(js.properties), Object.keys(policySchema.fields));
  assert.equal(js.required, ['version', 'name', 'device', 'driver', 'windows']);
  assert.is(js.additionalProperties, false);
});

test.run();
