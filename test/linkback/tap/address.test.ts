/**
 * A TAP interface's address, link state and default route set by linkback/tap/address.ts (the
 * ioctls `ip` would use), checked with `ip` itself, inside a network namespace of the test's own
 * so the host's routes are never touched. Root only; the pure parts run everywhere.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { maskBytes, onSubnet, parseCidr } from '../../../policies/addresses.js';
import { testIf } from '../../helpers/skip.js';
import { NetnsLab, rootTestsBlocked } from './netns.js';

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'address.js');

test('CIDR, netmask and subnet arithmetic', () => {
  assert.equal(parseCidr('10.0.2.15/24'), { ip: '10.0.2.15', prefix: 24 });
  for (const bad of ['10.0.2.15', '10.0.2.256/24', '10.0.2.15/33', 'x/1']) assert.is(parseCidr(bad), undefined, bad);
  assert.equal(maskBytes(24), [255, 255, 255, 0]);
  assert.equal(maskBytes(0), [0, 0, 0, 0]);
  assert.equal(maskBytes(32), [255, 255, 255, 255]);
  assert.equal(maskBytes(20), [255, 255, 240, 0]);
  assert.ok(onSubnet({ ip: '10.0.2.15', prefix: 24 }, '10.0.2.2'));
  assert.not.ok(onSubnet({ ip: '10.0.2.15', prefix: 24 }, '10.0.3.2'));
});

testIf(rootTestsBlocked())(
  'as root, in a namespace: address, netmask, up and the default route as ip shows them; a gateway off the subnet refused',
  async () => {
    const lab = NetnsLab.create(1);
    try {
      const ns = lab.names[0]!;
      const r = await lab.run(ns, [process.execPath, fixture, 'dmbx-addr0', '10.77.9.2/24', '10.77.9.1'], 20_000);
      assert.is(r.code, 0, r.stderr);
      const got = JSON.parse(r.stdout) as { addr: string; link: string; route: string; error?: string };
      assert.is(got.error, undefined, r.stdout);
      assert.match(got.addr, /inet 10\.77\.9\.2\/24 /);
      assert.match(got.link, /<[^>]*\bUP\b[^>]*>/);
      assert.match(got.route, /^default via 10\.77\.9\.1 dev dmbx-addr0/m);
      const bad = await lab.run(ns, [process.execPath, fixture, 'dmbx-addr1', '10.77.9.2/24', '10.77.10.1'], 20_000);
      const e = JSON.parse(bad.stdout) as { error: string; message: string };
      assert.is(e.error, 'ERR_TAP_ARG');
      assert.match(e.message, /not an IPv4 address on 10\.77\.9\.2\/24's subnet/);
    } finally {
      lab.cleanup();
    }
  },
);

test.run();
