/** The systemd unit: `systemd-analyze verify` finds nothing, and it runs dmabox the way ops/README.md says. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { needsCommand, testIf } from '../helpers/skip.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = here.includes(join('dist', 'test')) ? join(here, '..', '..', '..') : join(here, '..', '..');
const unit = join(root, 'packaging', 'systemd', 'dmabox.service');

const analyzeTest = testIf(needsCommand('systemd-analyze', 'systemd'));

analyzeTest('systemd-analyze verify packaging/systemd/dmabox.service: exit 0, no warning', () => {
  const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, r.stderr);
  // Unknown keys and bad values are warnings only: none is allowed.
  assert.is(r.stderr.trim(), '', r.stderr);
});

analyzeTest('the unit: notify with a watchdog, the policies folder, reload by SIGHUP, the devices VFIO and TAP need', () => {
  const text = readFileSync(unit, 'utf8');
  const keys = new Map<string, string[]>();
  for (const l of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(l);
    if (m) keys.set(m[1]!, [...(keys.get(m[1]!) ?? []), m[2]!]);
  }
  assert.equal(keys.get('Type'), ['notify']);
  assert.ok(keys.get('WatchdogSec'));
  assert.match(keys.get('ExecStart')![0]!, /dist\/cli\/main\.js up \/etc\/dmabox\/ --metrics /);
  assert.equal(keys.get('ExecReload'), ['/bin/kill -HUP $MAINPID']);
  for (const d of ['/dev/vfio/vfio rw', 'char-vfio rw', '/dev/net/tun rw']) assert.ok(keys.get('DeviceAllow')!.includes(d), d);
  assert.match(keys.get('RestrictAddressFamilies')![0]!, /AF_UNIX/);
  assert.equal(keys.get('LimitMEMLOCK'), ['infinity']);
  assert.not.ok(keys.has('NoNewPrivileges'), 'bwrap and setpriv switch identities');
  assert.not.ok(keys.has('PrivateDevices'), 'VFIO needs /dev/vfio');
});

test.run();
