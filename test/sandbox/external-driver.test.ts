/**
 * An external driver module can do nothing a built-in one cannot: it runs in the same container
 * under the same seccomp profile, with the same grants. From inside its start: importing node:fs,
 * node:child_process or a project file outside its code is refused by the loader's linker;
 * opening files, /dev/vfio, sockets and starting a process is refused by seccomp; DMA memory beyond its windows cannot be had (and a device pointed outside them
 * faults in the IOMMU: faults.test.ts, the wild-dma module). A module that imports node:fs
 * statically, or declares another kind than its device's, never starts: the device is failed at
 * once, without restarts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { builtFixture, simPolicy, until, withModule } from './helpers.js';

const fixture = (file: string): string => builtFixture(`fixtures/drivers/${file}`);

test('from inside start: imports refused by the linker, files, /dev/vfio and sockets by seccomp, DMA beyond the grants by the allocator; the disk still served', async () => {
  const s = new Supervisor(withModule(simPolicy('ext-probe'), fixture('probe.js')));
  try {
    await s.start();
    const probes = new Map(
      s.events
        .filter((e) => e.text.startsWith('probe '))
        .map((e) => {
          const what = e.text.slice(6, e.text.indexOf(': '));
          return [what, e.text.slice(6 + what.length + 2)] as [string, string];
        }),
    );
    assert.match(probes.get('import node:fs')!, /^refused ERR_CONTAINER_IMPORT driver code .*probe\.js imports 'node:fs': a Node module/);
    assert.match(probes.get('import node:child_process')!, /^refused ERR_CONTAINER_IMPORT .*'node:child_process'/);
    assert.match(
      probes.get('import a file outside its code')!,
      /^refused ERR_CONTAINER_IMPORT .*'\.\.\/\.\.\/\.\.\/\.\.\/policies\/index\.js': not a file of the driver's code/,
    );
    assert.match(probes.get('open /etc/passwd')!, /^refused EPERM/);
    assert.match(probes.get('open /dev/vfio/vfio')!, /^refused EPERM/);
    assert.match(probes.get('socket')!, /^refused EPERM/);
    // libuv's spawn makes its pipes first (pipe2: EPERM); the clone after would kill the container (SIGSYS).
    assert.match(probes.get('spawn /bin/true')!, /^refused EPERM/);
    assert.match(probes.get('DMA beyond the grants')!, /^refused ERR_CONTAINER_DMA_EXHAUSTED/);
    assert.is(s.state, 'running');
    const d = new Uint8Array(4096).fill(7);
    await s.block.write(8, d);
    assert.equal(await s.block.read(8, 8), d);
  } finally {
    await s.stop();
  }
});
for (const [file, says] of [
  ['imports-fs.js', /imports 'node:fs': a Node module/],
  ['wrong-kind.js', /declares kind 'net', and this sandbox's device needs a block driver/],
] as const) {
  test(`${file}: refused before its start runs; the device failed at once, no restart`, async () => {
    const s = new Supervisor(withModule(simPolicy(`ext-${file.replace(/\.js$/, '')}`), fixture(file)));
    try {
      let error: unknown;
      await s.start().catch((e: unknown) => {
        error = e;
      });
      assert.is((error as { code?: string })?.code, 'ERR_SANDBOX_FAILED');
      await until('failed', () => s.state === 'failed', 10_000);
      assert.is(s.restarts, 0);
      const log = s.events.map((e) => `${e.kind}: ${e.text}`).join('\n');
      assert.match(log, says);
      assert.ok(
        s.events.some((e) => e.kind === 'exit' && e.text.includes('exited with 78')),
        log,
      );
      assert.not.ok(log.includes('start ran'), 'the module never ran');
    } finally {
      await s.stop();
    }
  });
}

test.run();
