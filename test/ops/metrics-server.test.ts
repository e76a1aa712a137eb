/** The metrics endpoint: addresses (loopback only), HTTP on TCP and a unix socket, what it answers. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONTENT_TYPE, MetricsServer, parseMetricsAddress } from '../../ops/metrics-server.js';
import { OpsError } from '../../ops/errors.js';
import { httpGetUnix } from './helpers.js';

const refused = (addr: string, re: RegExp): void =>
  assert.throws(
    () => parseMetricsAddress(addr),
    (e: unknown) => e instanceof OpsError && e.code === 'ERR_OPS_METRICS_ADDRESS' && re.test(e.message),
  );

test('addresses: unix paths and loopback TCP; anything else refused with the fix', () => {
  assert.equal(parseMetricsAddress('/run/dmabox/metrics.sock'), { kind: 'unix', path: '/run/dmabox/metrics.sock' });
  assert.equal(parseMetricsAddress('unix:/x.sock'), { kind: 'unix', path: '/x.sock' });
  assert.equal(parseMetricsAddress('127.0.0.1:9464'), { kind: 'tcp', host: '127.0.0.1', port: 9464 });
  assert.equal(parseMetricsAddress('127.1.2.3:0'), { kind: 'tcp', host: '127.1.2.3', port: 0 });
  assert.equal(parseMetricsAddress('[::1]:9464'), { kind: 'tcp', host: '::1', port: 9464 });
  assert.equal(parseMetricsAddress('localhost:9464'), { kind: 'tcp', host: 'localhost', port: 9464 });
  refused('0.0.0.0:9464', /not a loopback address.*\n {2}fix: listen on 127\.0\.0\.1/s);
  refused('192.168.1.2:9464', /not a loopback/);
  refused('[::]:9464', /not a loopback/);
  refused('example.org:9464', /not a loopback/);
  refused('127.0.0.1:70000', /not 0\.\.65535/);
  refused('9464', /neither a unix socket path nor HOST:PORT/);
  refused('relative/path.sock', /neither/);
});

test('TCP on loopback: GET /metrics answers the text format; other paths 404, other methods 405; a failing collector 500', async () => {
  let n = 0;
  const s = await MetricsServer.listen(parseMetricsAddress('127.0.0.1:0'), () => {
    if (++n === 3) throw new Error('boom');
    return `# HELP x X.\n# TYPE x gauge\nx ${n}\n`;
  });
  try {
    assert.match(s.address, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    let r = await fetch(s.address);
    assert.is(r.status, 200);
    assert.is(r.headers.get('content-type'), CONTENT_TYPE);
    assert.is(await r.text(), '# HELP x X.\n# TYPE x gauge\nx 1\n');
    r = await fetch(s.address, { method: 'HEAD' });
    assert.is(r.status, 200);
    assert.is(await r.text(), '');
    r = await fetch(s.address);
    assert.is(r.status, 500);
    assert.match(await r.text(), /collecting the metrics failed: boom/);
    r = await fetch(s.address.replace('/metrics', '/other'));
    assert.is(r.status, 404);
    r = await fetch(s.address, { method: 'POST', body: 'x' });
    assert.is(r.status, 405);
    assert.is(r.headers.get('allow'), 'GET, HEAD');
  } finally {
    await s.close();
  }
});

test('unix socket: mode 0660, a live one refused, a stale one taken over, a file refused, removed at close', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-metrics-'));
  const path = join(dir, 'm.sock');
  const s = await MetricsServer.listen({ kind: 'unix', path }, () => 'x 1\n');
  try {
    assert.is(s.address, `unix:${path}`);
    assert.is(statSync(path).mode & 0o777, 0o660);
    assert.is((await httpGetUnix(path)).body, 'x 1\n');
    try {
      await MetricsServer.listen({ kind: 'unix', path }, () => '');
      assert.unreachable('a live socket was taken over');
    } catch (e) {
      assert.is((e as OpsError).code, 'ERR_OPS_METRICS_LISTEN');
    }
  } finally {
    await s.close();
  }
  assert.throws(() => statSync(path));
  writeFileSync(path, 'not a socket');
  try {
    await MetricsServer.listen({ kind: 'unix', path }, () => '');
    assert.unreachable('a file was replaced');
  } catch (e) {
    assert.is((e as OpsError).code, 'ERR_OPS_METRICS_LISTEN');
  }
  rmSync(dir, { recursive: true, force: true });
});

test('TCP: a port in use is ERR_OPS_METRICS_LISTEN', async () => {
  const a = await MetricsServer.listen(parseMetricsAddress('127.0.0.1:0'), () => '');
  const port = Number(/:(\d+)\//.exec(a.address)![1]);
  try {
    await MetricsServer.listen({ kind: 'tcp', host: '127.0.0.1', port }, () => '');
    assert.unreachable('two listeners on one port');
  } catch (e) {
    assert.is((e as OpsError).code, 'ERR_OPS_METRICS_LISTEN');
    assert.match((e as Error).message, /cannot listen on 127\.0\.0\.1:\d+/);
  } finally {
    await a.close();
  }
});

test.run();
