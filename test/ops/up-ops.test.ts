/**
 * `dmabox up` operated as a service, on the simulator: two sandboxes from a policy folder, one with
 * an NBD export; --metrics on a unix socket, --log-format json, and a fake NOTIFY_SOCKET this test
 * binds (as systemd does). It checks READY, STATUS and WATCHDOG; a live scrape after a real NBD
 * client read the disk and one container was killed (restarted once), checked by
 * `promtool check metrics` and by its values; the Grafana dashboard's metric names against the
 * scrape; SIGHUP applying a changed, an added and a removed policy while the unchanged sandbox
 * keeps its container pid; SIGTERM sending STOPPING=1.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as up } from '../../cli/up.js';
import { until } from '../sandbox/helpers.js';
import { findPromtool, httpGetUnix, NotifyListener, sampleValue } from './helpers.js';

/** The NBD server runs in this process: clients must not block its event loop. */
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'dmabox-ops-'));
const policies = join(dir, 'policies');
const here = dirname(fileURLToPath(import.meta.url));
const root = here.includes(`${join('dist', 'test')}`) ? join(here, '..', '..', '..') : join(here, '..', '..');

function policy(name: string, capacity: string, extra = ''): string {
  return `version: 1
name: ${name}
device: { sim: nvme, capacity: ${capacity}, blockSize: 512 }
driver: { name: nvme, queues: 1, depth: 16 }
windows: [ { size: 512KiB }, { size: 2MiB } ]
restart: { maxRestarts: 3, window: 60s, backoff: { initial: 50ms, max: 1s } }
${extra}`;
}

/** Every metric name a PromQL expression uses (identifiers followed by `{`, `[` or an operator; not functions or labels). */
export function metricNames(expr: string): string[] {
  const noStrings = expr.replace(/"[^"]*"/g, '""').replace(/\{[^}]*\}/g, '{}');
  const names = new Set<string>();
  for (const m of noStrings.matchAll(/\b(dmabox_[a-zA-Z0-9_:]+)\b/g)) names.add(m[1]!);
  return [...names];
}

test('up: READY, STATUS, WATCHDOG; a scrape promtool accepts with the right values; reload restarts only what changed; STOPPING', async () => {
  const promtool = findPromtool();
  assert.ok(promtool, 'promtool is missing: scripts/setup-host.sh unpacks it into .cache/prometheus (as root)');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(policies);
  const nbdSock = join(dir, 'a.sock');
  writeFileSync(join(policies, 'a.yaml'), policy('ops-a', '4MiB', `linkback: { nbd: { socket: ${nbdSock}, export: a } }\n`));
  writeFileSync(join(policies, 'b.yaml'), policy('ops-b', '2MiB'));
  writeFileSync(join(policies, 'notes.txt'), 'not a policy: the folder loader takes *.yaml and *.yml only\n');
  const notify = new NotifyListener(`@dmabox-test-notify-${process.pid}`);
  const metrics = join(dir, 'metrics.sock');
  const signals = new EventEmitter();
  const out = { text: '', err: '' };
  const io = { out: (s: string) => void (out.text += s), err: (s: string) => void (out.err += s) };
  const env = { NOTIFY_SOCKET: notify.name, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) };
  const done = up([policies, '--control', join(dir, 'control.sock'), '--metrics', metrics, '--log-format', 'json'], io, signals, env);
  try {
    await until('READY=1', () => notify.assignments().includes('READY=1'), 60_000);
    const ready = notify.assignments();
    assert.ok(
      ready.some((a) => a.startsWith('STATUS=') && a.includes('ops-a running') && a.includes('ops-b running')),
      ready.join('|'),
    );
    await until('WATCHDOG=1 (every WATCHDOG_USEC/2 = 100 ms)', () => notify.assignments().filter((a) => a === 'WATCHDOG=1').length >= 2, 5000);

    // A real NBD client reads the whole disk through sandbox ops-a.
    await run('nbdcopy', [`nbd+unix:///a?socket=${nbdSock}`, join(dir, 'a.img')], { timeout: 60_000 });

    // Kill ops-b's container: the supervisor restarts it once.
    let scrape = (await httpGetUnix(metrics)).body;
    const bPid = sampleValue(scrape, 'dmabox_container_pid{sandbox="ops-b"}');
    const aPid = sampleValue(scrape, 'dmabox_container_pid{sandbox="ops-a"}');
    assert.ok(bPid && aPid, scrape);
    process.kill(bPid, 'SIGKILL');
    // Until a scrape shows it restarted and running again.
    const end = Date.now() + 30_000;
    for (;;) {
      scrape = (await httpGetUnix(metrics)).body;
      if (
        sampleValue(scrape, 'dmabox_sandbox_restarts_total{sandbox="ops-b"}') === 1 &&
        sampleValue(scrape, 'dmabox_sandbox_state{sandbox="ops-b",state="running"}') === 1
      )
        break;
      assert.ok(Date.now() < end, `ops-b not restarted and running within 30 s:\n${scrape}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const res = await httpGetUnix(metrics);
    assert.is(res.status, 200);
    assert.is(res.type, 'text/plain; version=0.0.4; charset=utf-8');
    scrape = res.body;
    writeFileSync(join(dir, 'scrape.txt'), scrape);
    const check = spawnSync(promtool, ['check', 'metrics'], { input: scrape, encoding: 'utf8', timeout: 30_000 });
    assert.is(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);

    assert.is(sampleValue(scrape, 'dmabox_sandboxes'), 2);
    assert.is(sampleValue(scrape, 'dmabox_sandbox_restarts_total{sandbox="ops-b"}'), 1);
    assert.is(sampleValue(scrape, 'dmabox_sandbox_restarts_total{sandbox="ops-a"}'), 0);
    assert.is(sampleValue(scrape, 'dmabox_sandbox_container_deaths_total{sandbox="ops-b"}'), 1);
    assert.is(sampleValue(scrape, 'dmabox_sandbox_device_errors_total{sandbox="ops-b"}'), 0, 'a kill is not a device error');
    for (const s of ['ops-a', 'ops-b']) {
      assert.is(sampleValue(scrape, `dmabox_sandbox_state{sandbox="${s}",state="running"}`), 1);
      assert.is(sampleValue(scrape, `dmabox_sandbox_state{sandbox="${s}",state="failed"}`), 0);
      assert.ok(sampleValue(scrape, `dmabox_container_memory_bytes{sandbox="${s}"}`)! > 1_000_000, 'a node container holds megabytes');
      assert.ok(sampleValue(scrape, `dmabox_container_cpu_seconds_total{sandbox="${s}"}`)! > 0);
    }
    assert.is(sampleValue(scrape, 'dmabox_container_pid{sandbox="ops-a"}'), aPid);
    assert.is.not(sampleValue(scrape, 'dmabox_container_pid{sandbox="ops-b"}'), bPid);
    // The read of 4 MiB: through the NBD export and the sandbox's ring, each counted once.
    assert.is(sampleValue(scrape, 'dmabox_nbd_bytes_total{sandbox="ops-a",export="a",op="read"}'), 4 * 1024 * 1024);
    assert.is(sampleValue(scrape, 'dmabox_block_bytes_total{sandbox="ops-a",op="read"}'), 4 * 1024 * 1024);
    const reads = sampleValue(scrape, 'dmabox_block_requests_total{sandbox="ops-a",op="read"}')!;
    assert.ok(reads >= (4 * 1024 * 1024) / 65536, `reads ${reads}`);
    assert.is(sampleValue(scrape, 'dmabox_block_request_duration_seconds_count{sandbox="ops-a",op="read"}'), reads);
    assert.is(sampleValue(scrape, 'dmabox_block_request_duration_seconds_bucket{sandbox="ops-a",op="read",le="+Inf"}'), reads);
    assert.ok(sampleValue(scrape, 'dmabox_block_request_duration_seconds_sum{sandbox="ops-a",op="read"}')! > 0);
    assert.ok(sampleValue(scrape, 'dmabox_nbd_connections_total{sandbox="ops-a",export="a"}')! >= 1);
    assert.is(sampleValue(scrape, 'dmabox_nbd_connections{sandbox="ops-a",export="a"}'), 0);
    assert.is(sampleValue(scrape, 'dmabox_block_ring_entries{sandbox="ops-a"}'), sampleValue(scrape, 'dmabox_block_ring_entries{sandbox="ops-b"}'));

    // The dashboard uses only names this scrape has.
    const families = new Set(
      [...scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap((m) => (m[2] === 'histogram' ? [`${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1]!])),
    );
    const dash = JSON.parse(readFileSync(join(root, 'packaging', 'grafana', 'dmabox-dashboard.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    let exprs = 0;
    for (const p of dash.panels)
      for (const t of p.targets) {
        exprs++;
        const names = metricNames(t.expr);
        assert.ok(names.length > 0, `${p.title}: ${t.expr} names no metric`);
        for (const n of names) assert.ok(families.has(n), `${p.title}: ${n} is not in the scrape`);
      }
    assert.ok(exprs >= 10);

    // Reload: ops-b changed, ops-c added; ops-a unchanged keeps its container.
    writeFileSync(join(policies, 'b.yaml'), policy('ops-b', '3MiB'));
    writeFileSync(join(policies, 'c.yml'), policy('ops-c', '1MiB'));
    const before = notify.messages.length;
    signals.emit('SIGHUP');
    await until('reloaded', () => out.text.includes('"message":"reloaded:'), 60_000);
    const line = out.text.split('\n').find((l) => l.includes('"message":"reloaded:'))!;
    const rec = JSON.parse(line) as { fields: Record<string, string[]> };
    assert.equal(rec.fields, { added: ['ops-c'], changed: ['ops-b'], removed: [], unchanged: ['ops-a'] });
    scrape = (await httpGetUnix(metrics)).body;
    assert.is(sampleValue(scrape, 'dmabox_container_pid{sandbox="ops-a"}'), aPid, 'the unchanged sandbox kept its container');
    assert.is(sampleValue(scrape, 'dmabox_sandbox_state{sandbox="ops-c",state="running"}'), 1);
    assert.is(sampleValue(scrape, 'dmabox_sandbox_restarts_total{sandbox="ops-b"}'), 0, 'a new sandbox for the changed policy');
    const after = notify.messages.slice(before).join('\n').split('\n');
    assert.ok(after.includes('RELOADING=1') && after.indexOf('READY=1') > after.indexOf('RELOADING=1'), after.join('|'));
    // The NBD export of the unchanged sandbox still serves.
    await run('nbdinfo', ['--size', `nbd+unix:///a?socket=${nbdSock}`], { timeout: 30_000 });

    // A broken policy: reported, nothing changed, READY=1 all the same.
    writeFileSync(join(policies, 'c.yml'), 'version: 1\nname: ops-c\ndevice: { sim: nvme, capacity: lots }\n');
    const beforeBroken = notify.messages.length;
    signals.emit('SIGHUP');
    await until('READY=1 after the failed reload', () => notify.messages.slice(beforeBroken).some((m) => m.startsWith('READY=1')), 30_000);
    assert.match(out.err, /nothing was changed/);
    assert.match(out.err, /"level":"error","sandbox":null,"event":"policy","message":".*c\.yml/);
    assert.is(out.text.split('\n').filter((l) => l.includes('"message":"reloaded:')).length, 1);

    rmSync(join(policies, 'c.yml'));
    signals.emit('SIGHUP');
    await until('second reload', () => out.text.split('\n').filter((l) => l.includes('"message":"reloaded:')).length === 2, 60_000);
    scrape = (await httpGetUnix(metrics)).body;
    assert.is(sampleValue(scrape, 'dmabox_sandboxes'), 2);
    assert.is(sampleValue(scrape, 'dmabox_container_pid{sandbox="ops-a"}'), aPid);
  } finally {
    signals.emit('SIGTERM');
    assert.is(await done, 0);
    await until('STOPPING=1', () => notify.assignments().includes('STOPPING=1'), 5000);
    notify.close();
  }
  // Every line of the log is one JSON object with the fields of the format.
  for (const l of out.text.trim().split('\n')) {
    const o = JSON.parse(l) as Record<string, unknown>;
    assert.equal(Object.keys(o), ['time', 'level', 'sandbox', 'event', 'message', 'fields'], l);
  }
  rmSync(dir, { recursive: true, force: true });
});

test('under journald (JOURNAL_STREAM set, no --log-format): every line carries its syslog priority, no time', async () => {
  const d = mkdtempSync(join(tmpdir(), 'dmabox-ops-journal-'));
  writeFileSync(join(d, 'j.yaml'), policy('ops-j', '1MiB'));
  const signals = new EventEmitter();
  const out = { text: '', err: '' };
  const done = up([join(d, 'j.yaml'), '--control', join(d, 'control.sock')], { out: (s) => void (out.text += s), err: (s) => void (out.err += s) }, signals, {
    JOURNAL_STREAM: '8:12345',
  });
  try {
    await until('up', () => out.text.includes('<6>up: ops-j running'), 60_000);
  } finally {
    signals.emit('SIGTERM');
    assert.is(await done, 0);
  }
  const lines = out.text.trim().split('\n');
  assert.ok(lines.length >= 4);
  for (const l of lines) assert.match(l, /^<[3467]>(?!\d\d:\d\d:)/, l);
  assert.ok(lines.includes('<6>ops-j ready: serving 2048 blocks of 512 bytes'), out.text);
  rmSync(d, { recursive: true, force: true });
});

test('metricNames takes the metric names out of PromQL, not functions, labels or strings', () => {
  assert.equal(metricNames('histogram_quantile(0.5, sum by (le) (rate(dmabox_x_bucket{sandbox=~"dmabox_no"}[5m]))) / dmabox_y'), [
    'dmabox_x_bucket',
    'dmabox_y',
  ]);
});

test.run();
