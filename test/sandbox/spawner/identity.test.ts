/** Identities: one per sandbox and role, from the range, never one in use, stable, pins checked. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Identities, IDENTITY_RANGE, hostIdsInUse, type IdsInUse } from '../../../sandbox/spawner/identity.js';

const used = (uids: number[], gids: number[] = []): IdsInUse => ({ uids: () => new Set(uids), gids: () => new Set(gids) });

test('each (sandbox, role) gets its own id, uid = gid, in the range, the same again on the next launch', () => {
  const ids = new Identities(used([]), { uid: 0, gid: 0 });
  const a = ids.get('a', 'driver');
  const b = ids.get('b', 'driver');
  const ad = ids.get('a', 'device');
  assert.is(a.uid, a.gid);
  for (const x of [a, b, ad]) assert.ok(x.uid >= IDENTITY_RANGE.first && x.uid <= IDENTITY_RANGE.last && x.uid !== 65534, String(x.uid));
  assert.is(new Set([a.uid, b.uid, ad.uid]).size, 3);
  assert.equal(ids.get('a', 'driver'), a);
});

test('ids of accounts, groups and running processes are skipped; the caller and nobody never handed out', () => {
  // A range of four: 10 is an account, 11 a group, 12 the caller, 13 free.
  const ids = new Identities(used([10], [11]), { uid: 12, gid: 12 }, { first: 10, last: 13 });
  assert.equal(ids.get('x', 'driver'), { uid: 13, gid: 13 });
  assert.throws(
    () => ids.get('y', 'driver'),
    (e: Error & { code?: string }) => e.code === 'ERR_SPAWNER_IDENTITY',
  );
  const nobody = new Identities(used([]), { uid: 0, gid: 0 }, { first: 65534, last: 65534 });
  assert.throws(() => nobody.get('z', 'driver'), /no free id/);
});

test('pins: kept for their sandbox, refused when another sandbox holds the id, never nobody or the caller', () => {
  const ids = new Identities(used([]), { uid: 0, gid: 0 }, { first: 100, last: 101 });
  assert.equal(ids.pin('a', 'driver', { uid: 100, gid: 100 }), { uid: 100, gid: 100 });
  assert.equal(ids.get('a', 'driver'), { uid: 100, gid: 100 });
  assert.throws(() => ids.pin('b', 'driver', { uid: 100, gid: 100 }), /already the identity of a\/driver/);
  assert.throws(() => ids.pin('c', 'driver', { uid: 65534, gid: 65534 }), /nobody/);
  assert.throws(() => ids.pin('d', 'driver', { uid: 0, gid: 5 }), /manager/);
  // An allocation never takes a pinned id.
  assert.equal(ids.get('e', 'driver'), { uid: 101, gid: 101 });
});

test('the host files: passwd and group ids, the uids and gids of processes, systemd dynamic users', () => {
  const root = mkdtempSync(join(tmpdir(), 'dmabox-ids-'));
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\nsvc:x:61190:61191::/:/bin/false\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nsvcg:x:61192:\n');
  mkdirSync(join(root, 'proc/42'), { recursive: true });
  writeFileSync(join(root, 'proc/42/status'), 'Name:\tx\nUid:\t61193\t61193\t61193\t61193\nGid:\t61194\t61194\t61194\t61194\n');
  mkdirSync(join(root, 'run/systemd/dynamic-uid'), { recursive: true });
  writeFileSync(join(root, 'run/systemd/dynamic-uid/61195'), '');
  const inUse = hostIdsInUse(root);
  assert.equal([...inUse.uids()].sort(), [0, 61190, 61193, 61195].sort());
  assert.equal([...inUse.gids()].sort(), [0, 61192, 61194, 61195].sort());
});

test.run();
