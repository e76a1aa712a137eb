import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blkdebugConfig, BLKDEBUG_DISK } from '../../../appliance/lab/launch.js';
import { QmpClient } from '../../../appliance/lab/qmp.js';
import { MonitorRelay, relayCommand } from '../../../appliance/lab/relay.js';
import { relayRequest } from '../../../appliance/lab/relay-client.js';
import { refused } from '../refused.js';

test('relayCommand: only pcie_aer_inject_error on the lab port or its e1000e, with a known error name', () => {
  assert.is(relayCommand({ op: 'aer-inject', device: 'labrp0', error: 'POISON_TLP' }), 'pcie_aer_inject_error labrp0 POISON_TLP');
  assert.is(relayCommand({ op: 'aer-inject', device: 'labaer0', error: 'RCVR', correctable: true }), 'pcie_aer_inject_error -c labaer0 RCVR');
  assert.is(relayCommand({ op: 'aer-inject', device: 'labaer0', error: 'COMP_ABORT', advisory: true }), 'pcie_aer_inject_error -a labaer0 COMP_ABORT');
  assert.throws(() => relayCommand({ op: 'quit' }), refused('ERR_LAB_RELAY', /op 'quit' is not one the relay runs/));
  assert.throws(() => relayCommand('system_reset'), refused('ERR_LAB_RELAY', /not a JSON object/));
  assert.throws(() => relayCommand([1]), refused('ERR_LAB_RELAY', /not a JSON object/));
  assert.throws(
    () => relayCommand({ op: 'aer-inject', device: 'nvme0', error: 'SDN' }),
    refused('ERR_LAB_RELAY', /device 'nvme0' is not one of labaer0, labrp0/),
  );
  assert.throws(
    () => relayCommand({ op: 'aer-inject', device: 'labrp0', error: 'SDN; quit' }),
    refused('ERR_LAB_RELAY', /error 'SDN; quit' is not an uncorrectable AER error name/),
  );
  assert.throws(() => relayCommand({ op: 'aer-inject', device: 'labrp0', error: 'SDN', correctable: true }), refused('ERR_LAB_RELAY', /not a correctable/));
  assert.throws(
    () => relayCommand({ op: 'aer-inject', device: 'labrp0', error: 'SDN', advisory: 'yes' }),
    refused('ERR_LAB_RELAY', /advisory must be true or false/),
  );
  assert.throws(() => relayCommand({ op: 'aer-inject', device: 'labrp0', error: 'SDN', extra: 1 }), refused('ERR_LAB_RELAY', /unknown field 'extra'/));
});

test('blkdebug config: EIO on the read and the write sector, as 512-byte sectors', () => {
  const c = blkdebugConfig();
  assert.match(c, /\[inject-error\]\nevent = "read_aio"\nsector = "2048"\nerrno = "5"/);
  assert.match(c, /\[inject-error\]\nevent = "write_aio"\nsector = "4096"\nerrno = "5"/);
  assert.is(BLKDEBUG_DISK.readErrorAt, 2048 * 512);
});

/** A QMP server speaking the protocol's framing: greeting, capabilities, human-monitor-command; an event before each answer. */
function fakeQmp(path: string, seen: string[]): Promise<Server> {
  const server = createServer((sock) => {
    sock.setEncoding('utf8');
    sock.write('{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}\n');
    let buf = '';
    sock.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as { execute: string; arguments?: { 'command-line'?: string } };
        buf = buf.slice(nl + 1);
        seen.push(msg.execute === 'human-monitor-command' ? msg.arguments!['command-line']! : msg.execute);
        sock.write('{"event": "RTC_CHANGE", "data": {}}\n');
        if (msg.execute === 'human-monitor-command' && msg.arguments!['command-line']!.includes('labaer0'))
          sock.write('{"error": {"class": "GenericError", "desc": "no AER here"}}\n');
        else sock.write(`{"return": ${msg.execute === 'human-monitor-command' ? '"OK id: labrp0\\r\\n"' : '{}'}}\n`);
      }
    });
  });
  return new Promise((r) => server.listen(path, () => r(server)));
}

test('the relay answers a guest request through QMP, passes on QEMU errors, refuses the rest, and names nothing it refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'relay-test-'));
  const seen: string[] = [];
  const server = await fakeQmp(join(dir, 'qmp.sock'), seen);
  const relayDir = join(dir, 'relay');
  mkdirSync(relayDir);
  const relay = new MonitorRelay(relayDir, () => QmpClient.connect(join(dir, 'qmp.sock'), 2000), 10, 2000);
  relay.start();
  try {
    assert.is(await relayRequest({ op: 'aer-inject', device: 'labrp0', error: 'POISON_TLP' }, 5000, relayDir), 'OK id: labrp0\r\n');
    await relayRequest({ op: 'aer-inject', device: 'labaer0', error: 'POISON_TLP' }, 5000, relayDir).then(
      () => assert.unreachable('QEMU said no'),
      (e: Error) => assert.match(e.message, /GenericError: no AER here/),
    );
    await relayRequest({ op: 'quit' } as never, 5000, relayDir).then(
      () => assert.unreachable('refused'),
      (e: Error) => assert.match(e.message, /op 'quit' is not one the relay runs/),
    );
    writeFileSync(join(relayDir, 'bad.req'), '{not json');
    writeFileSync(join(relayDir, 'x y.req'), '{}');
    await relay.tick();
    assert.equal(JSON.parse(readFileSync(join(relayDir, 'bad.res'), 'utf8')), { ok: false, code: 'ERR_LAB_RELAY', message: 'relay request refused: not JSON' });
    assert.not.ok(readdirSync(relayDir).includes('x y.res'), 'no answer under a refused name');
    assert.equal(seen, ['qmp_capabilities', 'pcie_aer_inject_error labrp0 POISON_TLP', 'pcie_aer_inject_error labaer0 POISON_TLP']);
    assert.is(relay.handled, 5);
  } finally {
    relay.stop();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('relay client: outside the lab it says how to get a relay; an unanswered request times out', async () => {
  await relayRequest({ op: 'aer-inject', device: 'labrp0', error: 'SDN' }, 100, '').then(
    () => assert.unreachable(),
    (e: Error) => assert.ok(refused('ERR_LAB_RELAY', /DMABOX_LAB_RELAY is not set/)(e)),
  );
  const dir = mkdtempSync(join(tmpdir(), 'relay-test-'));
  try {
    await relayRequest({ op: 'aer-inject', device: 'labrp0', error: 'SDN' }, 100, dir).then(
      () => assert.unreachable(),
      (e: Error) => assert.ok(refused('ERR_LAB_RELAY', /did not answer .* within 100 ms/)(e)),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('QMP client: no socket, a non-greeting, and a closed connection are ERR_LAB_RELAY', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qmp-test-'));
  try {
    await QmpClient.connect(join(dir, 'none.sock'), 500).then(
      () => assert.unreachable(),
      (e: Error) => assert.ok(refused('ERR_LAB_RELAY', /cannot connect/)(e), e.message),
    );
    const p = join(dir, 'bad.sock');
    const server = createServer((s) => s.end('{"hello": 1}\n'));
    await new Promise<void>((r) => server.listen(p, r));
    await QmpClient.connect(p, 1000).then(
      () => assert.unreachable(),
      (e: Error) => assert.ok(refused('ERR_LAB_RELAY', /not a greeting/)(e), e.message),
    );
    server.close();
    const p2 = join(dir, 'close.sock');
    const s2 = createServer((s) => s.end('{"QMP": {}}\n'));
    await new Promise<void>((r) => s2.listen(p2, r));
    await QmpClient.connect(p2, 1000).then(
      () => assert.unreachable(),
      (e: Error) => assert.ok(refused('ERR_LAB_RELAY', /closed|no answer/)(e), e.message),
    );
    s2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
