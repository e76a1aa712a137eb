/**
 * Container mode (`mode: container`, campaigns/container/): the spec's mode and the classes that
 * mean nothing in a mode; the campaign's NBD client against nbdkit and against a server that never
 * answers (every wait bounded); a small campaign whose trials each run a real Supervisor, container,
 * device process and NBD linkback, with the oracle holding; and the oracle failing on a driver that
 * acknowledges writes before they are done.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCampaign } from '../../campaigns/spec.js';
import { runCampaign } from '../../campaigns/runner.js';
import { NbdClient } from '../../campaigns/container/nbd-client.js';
import { CampaignError } from '../../campaigns/errors.js';

let root = dirname(fileURLToPath(import.meta.url));
while (!existsSync(join(root, 'package.json'))) root = dirname(root);
if (root.endsWith('/dist')) root = dirname(root);
const dir = mkdtempSync(join(tmpdir(), 'dmabox-ctrcamp-'));
const EXAMPLE = join(root, 'campaigns/examples/container-nvme.yaml');

function expectSpecError(src: string, re: RegExp): void {
  try {
    parseCampaign(src, 'c.yaml');
    assert.unreachable('accepted');
  } catch (e) {
    assert.instance(e, CampaignError);
    assert.is((e as CampaignError).code, 'ERR_CAMPAIGN_SPEC');
    assert.match((e as Error).message, re);
  }
}

test('mode: the default is in-process; a class that means nothing in a mode is refused with its line', () => {
  const head = 'version: 1\nname: m\npolicy: p.yaml\n';
  assert.is(parseCampaign(`${head}faults:\n  crash: {}\n`, 'c.yaml').mode, 'in-process');
  assert.is(parseCampaign(`${head}mode: container\nfaults:\n  signal: {}\n`, 'c.yaml').mode, 'container');
  expectSpecError(
    `${head}faults:\n  crash: {}\n  signal: { signals: [sigkill] }\n`,
    /c\.yaml:6: faults\.signal: means nothing in mode 'in-process'.*mode: container/,
  );
  expectSpecError(`${head}mode: vm\nfaults:\n  crash: {}\n`, /c\.yaml:4: mode: .*'in-process', 'container'/);
  expectSpecError(`${head}mode: container\nfaults:\n  signal: { signals: [sighup] }\n`, /signals/);
});

test('container mode refuses a target it cannot drive: no nbd linkback', async () => {
  const pol = join(dir, 'no-nbd.yaml');
  writeFileSync(pol, 'version: 1\nname: no-nbd\ndevice: { sim: nvme, capacity: 4MiB }\ndriver: nvme\nwindows: [{ size: 2MiB }]\n');
  const spec = join(dir, 'no-nbd-c.yaml');
  writeFileSync(spec, `version: 1\nname: no-nbd\nmode: container\npolicy: ${pol}\nfaults:\n  crash: {}\n`);
  try {
    await runCampaign(spec, { trials: 1 });
    assert.unreachable('ran');
  } catch (e) {
    assert.is((e as CampaignError).code, 'ERR_CAMPAIGN_TARGET');
    assert.match((e as Error).message, /nbd linkback/);
  }
});

test('--iommu off is refused in container mode', async () => {
  try {
    await runCampaign(EXAMPLE, { trials: 1, iommuOff: true });
    assert.unreachable('ran');
  } catch (e) {
    assert.is((e as CampaignError).code, 'ERR_CAMPAIGN_ARG');
    assert.match((e as Error).message, /--iommu off runs only in-process/);
  }
});

test("the campaign's NBD client against nbdkit: handshake, writes, reads, flush, disconnect", async () => {
  const which = spawnSync('sh', ['-c', 'command -v nbdkit']);
  assert.is(which.status, 0, 'nbdkit is missing: scripts/setup-host.sh installs it (apt-get install nbdkit)');
  const sock = join(dir, 'nbdkit.sock');
  const kit = spawn('nbdkit', ['-f', '-U', sock, 'memory', 'size=1M'], { stdio: 'ignore' });
  try {
    const end = Date.now() + 10_000;
    while (!existsSync(sock)) {
      if (Date.now() > end) throw new Error('nbdkit did not create its socket within 10 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    const c = await NbdClient.connect(sock, '', 5000);
    assert.is(c.size, 1 << 20);
    const a = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
    const b = new Uint8Array(512).fill(0x5a);
    await Promise.all([c.write(8192, a), c.write(65536, b)]);
    await c.flush();
    const [ra, rb, z] = await Promise.all([c.read(8192, 4096), c.read(65536, 512), c.read(0, 1024)]);
    assert.equal(ra, a);
    assert.equal(rb, b);
    assert.equal(z, new Uint8Array(1024));
    await c.close();
    try {
      await c.read(0, 512);
      assert.unreachable('read after close');
    } catch (e) {
      assert.is((e as CampaignError).code, 'ERR_CAMPAIGN_NBD');
    }
  } finally {
    kit.kill('SIGKILL');
  }
});

test('the NBD client bounds every wait: a server that greets and then says nothing', async () => {
  const sock = join(dir, 'mute.sock');
  const server = createServer((s) => s.write(Buffer.from('NBDMAGICIHAVEOPT\x00\x03', 'latin1')));
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    const t0 = Date.now();
    try {
      await NbdClient.connect(sock, 'x', 300);
      assert.unreachable('connected');
    } catch (e) {
      assert.is((e as CampaignError).code, 'ERR_CAMPAIGN_NBD');
      assert.match((e as Error).message, /handshake .* took over 300 ms/);
    }
    assert.ok(Date.now() - t0 < 5000, `${Date.now() - t0} ms`);
  } finally {
    server.close();
  }
});

test('a container campaign on the simulator: every class fires in real containers, the oracle holds', async () => {
  const out = join(dir, 'ok');
  // Seed 9: its first 12 trials draw every class of the example (a pure function of seed and index).
  const s = await runCampaign(EXAMPLE, { trials: 12, seed: 9, out });
  assert.is(s.trials, 12);
  assert.is(s.violations, 0, JSON.stringify(s));
  assert.ok(s.fired >= 6, `fired ${s.fired}`);
  for (const c of ['crash', 'hang', 'wild-dma', 'corrupt-work', 'error-return', 'signal', 'hostile-abi', 'exhaustion'])
    assert.ok(s.byFault[c], `no ${c} trial: ${JSON.stringify(s.byFault)}`);
});

test('the oracle fails in container mode: a driver that acknowledges writes before they are done', async () => {
  const pol = join(dir, 'ack-early.yaml');
  const module = join(root, 'dist/test/campaigns/fixtures/ack-early-driver.js');
  writeFileSync(
    pol,
    `version: 1\nname: ack-early\ndevice: { sim: nvme, capacity: 4MiB }\ndriver: { module: ${module}, queues: 1, depth: 16 }\nwindows: [{ size: 512KiB, label: queues }, { size: 2MiB, label: data }]\nrestart: { maxRestarts: 4, window: 60s, backoff: { initial: 10ms, max: 100ms } }\nlinkback: { nbd: { socket: /tmp/dmabox/ack-early.sock, export: ack-early } }\n`,
  );
  const spec = join(dir, 'ack-early-c.yaml');
  writeFileSync(
    spec,
    `version: 1\nname: ack-early\nmode: container\npolicy: ${pol}\nworkload: { blocks: 128, operations: 24, writePercent: 80, depth: 8 }\nrecovery: { hangMs: 400ms, startMs: 10s, liveness: 10s }\nfaults:\n  signal: { within: 6, signals: [sigkill] }\n`,
  );
  const s = await runCampaign(spec, { trials: 8, out: join(dir, 'bad') });
  assert.ok(s.violations >= 1, JSON.stringify(s));
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
