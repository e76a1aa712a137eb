/**
 * One identity per sandbox, as policies see it: uid and gid are left out (allocated per sandbox),
 * or given together and then never another sandbox's (confined or not), never 65534; pids and
 * cpuWeight have defaults.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicyFiles, parsePolicies, PolicyError } from '../../policies/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dmabox-ids-'));

function policy(name: string, container: string, extra = ''): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `version: 1\nname: ${name}\ndevice: { sim: nvme }\ndriver: nvme\nwindows: [{ size: 1MiB }]\ncontainer: ${container}\n${extra}`);
  return file;
}

function problems(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof PolicyError) return e.problems.map((p) => `${p.path}: ${p.message}`).join('\n');
    throw e;
  }
  return '';
}

test('defaults: no uid or gid (an identity is allocated), pids 64, cpuWeight 100', () => {
  const p = parsePolicies('version: 1\nname: a\ndevice: { sim: nvme }\ndriver: nvme\nwindows: [{ size: 1MiB }]\n', 'a.yaml').policies[0]!.policy;
  assert.is(p.container.uid, undefined);
  assert.is(p.container.gid, undefined);
  assert.is(p.container.pids, 64);
  assert.is(p.container.cpuWeight, 100);
});

test('two sandboxes naming the same uid are refused, an unconfined and a confined one too', () => {
  const both = problems(() => loadPolicyFiles([policy('one', '{ uid: 5000, gid: 5000 }'), policy('two', '{ uid: 5000, gid: 5001 }')]));
  assert.match(both, /container\.uid: uid 5000 \(one identity per sandbox: leave container\.uid out to get one allocated\) is already used by policy 'one'/);
  const mixed = problems(() =>
    loadPolicyFiles([policy('tight', '{ uid: 5002, gid: 5002 }'), policy('loose', '{ uid: 5003, gid: 5002, seccomp: none }', 'unconfined: true\n')]),
  );
  assert.match(mixed, /container\.gid: gid 5002 .* is already used by policy 'tight'/);
  assert.is(
    problems(() => loadPolicyFiles([policy('p1', '{ uid: 5004, gid: 5004 }'), policy('p2', '{}')])),
    '',
  );
});

test('65534 (nobody) is refused; a uid alone is its gid too; a gid alone is refused', () => {
  assert.match(
    problems(() => loadPolicyFiles([policy('nob', '{ uid: 65534, gid: 65534 }')])),
    /65534 \(nobody/,
  );
  assert.is(loadPolicyFiles([policy('half', '{ uid: 5005 }')]).policies[0]!.policy.container.gid, 5005);
  assert.match(
    problems(() => loadPolicyFiles([policy('gidonly', '{ gid: 5006 }')])),
    /container\.uid with container\.gid, or neither/,
  );
});

test.run();
