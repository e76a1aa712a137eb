/**
 * NBD over TLS (proto.md §TLS support): STARTTLS with pre-shared keys and X.509 certificates, the
 * FORCEDTLS rules, the key files' checks, and real clients (libnbd's nbdinfo and nbdcopy with their
 * own TLS) against the server, over TCP on every interface as an appliance listens.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryBlockDevice } from '../../../linkback/memory-block-device.js';
import { NbdError } from '../../../linkback/nbd/errors.js';
import * as P from '../../../linkback/nbd/protocol.js';
import { NbdServer, type NbdEvent } from '../../../linkback/nbd/server.js';
import { loadNbdTls, parsePskFile } from '../../../linkback/nbd/tls.js';
import { run } from '../../helpers/run.js';
import { RawClient, pattern, tempDir } from './helpers.js';

const tmp = tempDir();
const key = randomBytes(32);
const pskFile = join(tmp.dir, 'keys.psk');
writeFileSync(pskFile, `# made by the test\nalice:${key.toString('hex')}\n`, { mode: 0o600 });
const wrongPsk = join(tmp.dir, 'wrong.psk');
writeFileSync(wrongPsk, `alice:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });

/** A CA, a server certificate for localhost/127.0.0.1 signed by it, and a client folder holding only the CA. */
function makePki(): { server: string; client: string } {
  const server = join(tmp.dir, 'pki');
  const client = join(tmp.dir, 'client');
  mkdirSync(server);
  mkdirSync(client);
  const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: server, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ossl('req', '-x509', ...ec, '-days', '30', '-subj', '/CN=dmabox test CA', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem');
  ossl('req', ...ec, '-subj', '/CN=localhost', '-keyout', 'server-key.pem', '-out', 'server.csr');
  writeFileSync(join(server, 'ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ossl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca-cert.pem',
    '-CAkey',
    'ca-key.pem',
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    'ext',
    '-out',
    'server-cert.pem',
  );
  chmodSync(join(server, 'server-key.pem'), 0o600);
  writeFileSync(join(client, 'ca-cert.pem'), readFileSync(join(server, 'ca-cert.pem')));
  return { server, client };
}

const t = suite('nbd tls');
let pskServer: NbdServer;
let pskPort = 0;
let disk: MemoryBlockDevice;

t.before(async () => {
  disk = new MemoryBlockDevice({ size: 4 << 20 });
  pskServer = new NbdServer({ exports: [{ name: 'disk', device: disk }], tls: { mode: 'require', pskFile } });
  // Every interface, as an appliance listens: allowed because TLS is required.
  pskPort = (await pskServer.listenTcp({ host: '0.0.0.0', port: 0 })).port;
});
t.after(async () => {
  await pskServer.close();
  tmp.remove();
});

t('psk files: psktool lines parse; malformed lines, short keys and twice-named identities are refused with their line', () => {
  const keys = parsePskFile(`alice:${'ab'.repeat(32)}\n\n# comment\nbob:${'01'.repeat(16)}\r\n`, 'k.psk');
  assert.equal([...keys.keys()], ['alice', 'bob']);
  assert.is(keys.get('bob')!.length, 16);
  const refused = (text: string, want: RegExp) => {
    try {
      parsePskFile(text, 'k.psk');
      assert.unreachable(`accepted ${JSON.stringify(text)}`);
    } catch (e) {
      assert.instance(e, NbdError);
      assert.is((e as NbdError).code, 'ERR_NBD_TLS');
      assert.match((e as NbdError).message, want);
    }
  };
  refused('no colon here\n', /k\.psk:1: not "identity:hexkey"/);
  refused(`a:${'ab'.repeat(32)}\nb:abcd\n`, /k\.psk:2: the key of "b" is not 16 to 256 bytes of hex/);
  refused(`a:${'zz'.repeat(32)}\n`, /k\.psk:1/);
  refused(`a:${'ab'.repeat(32)}\na:${'cd'.repeat(32)}\n`, /k\.psk:2: identity "a" is there twice/);
  refused('# nothing\n', /holds no key/);
});

t('tls options: keys open to others, keys without TLS, TLS without keys, verify-peer with a PSK are refused before listening', () => {
  const open = join(tmp.dir, 'open.psk');
  writeFileSync(open, `alice:${key.toString('hex')}\n`, { mode: 0o644 });
  chmodSync(open, 0o644);
  const cases: [Parameters<typeof loadNbdTls>[0], RegExp][] = [
    [{ mode: 'require', pskFile: open }, /readable by group or others \(mode 644\)/],
    [{ mode: 'off', pskFile }, /TLS keys are given but TLS is off/],
    [{ mode: 'on' }, /needs exactly one of a PSK file and a certificates directory/],
    [{ mode: 'require', pskFile, certificates: tmp.dir }, /exactly one/],
    [{ mode: 'require', pskFile, verifyPeer: true }, /tls-verify-peer is for X\.509/],
    [{ mode: 'require', pskFile: join(tmp.dir, 'absent.psk') }, /cannot read the PSK file .*ENOENT/],
    [{ mode: 'require', certificates: join(tmp.dir, 'absent') }, /server-cert\.pem: ENOENT/],
  ];
  for (const [options, want] of cases) {
    try {
      loadNbdTls(options);
      assert.unreachable(`accepted ${JSON.stringify(options)}`);
    } catch (e) {
      assert.is((e as NbdError).code, 'ERR_NBD_TLS', String(e));
      assert.match((e as NbdError).message, want);
      assert.ok((e as NbdError).fix, 'every refusal says how to fix it');
    }
  }
  assert.is(loadNbdTls({ mode: 'off' }), undefined);
  // Without TLS required, TCP on anything but loopback is still refused.
  const plain = new NbdServer({ exports: [{ name: 'd', device: new MemoryBlockDevice({ size: 1 << 20 }) }] });
  return plain.listenTcp({ host: '0.0.0.0', port: 0 }).then(
    () => assert.unreachable('listened on 0.0.0.0 without TLS'),
    (e: NbdError) => assert.is(e.code, 'ERR_NBD_NOT_LOOPBACK'),
  );
});

t('FORCEDTLS: before STARTTLS every option but ABORT gets NBD_REP_ERR_TLS_REQD, EXPORT_NAME ends the session', async () => {
  const c = await RawClient.connect(pskPort);
  await c.greet();
  for (const option of [P.NBD_OPT_LIST, P.NBD_OPT_STRUCTURED_REPLY]) {
    c.sendOption(option);
    const r = await c.optionReply();
    assert.is(r.option, option);
    assert.is(r.type >>> 0, P.NBD_REP_ERR_TLS_REQD >>> 0);
    assert.match(r.data.toString(), /requires TLS/);
  }
  const go = await c.infoOrGo(P.NBD_OPT_GO, 'disk');
  assert.is(go.final >>> 0, P.NBD_REP_ERR_TLS_REQD >>> 0);
  c.sendOption(P.NBD_OPT_STARTTLS, Buffer.from('x'));
  assert.is((await c.optionReply()).type >>> 0, P.NBD_REP_ERR_INVALID >>> 0, 'STARTTLS takes no data');
  c.sendOption(P.NBD_OPT_EXPORT_NAME, Buffer.from('disk'));
  assert.ok(await c.waitClosed(), 'NBD_OPT_EXPORT_NAME before TLS ends the session');
});

t('STARTTLS with a PSK (tls: on): state from before TLS is forgotten, a second STARTTLS is refused, then data flows inside TLS', async () => {
  const seen: NbdEvent[] = [];
  const server = new NbdServer({ exports: [{ name: 'disk', device: disk }], tls: { mode: 'on', pskFile }, onEvent: (e) => seen.push(e) });
  const { port } = await server.listenTcp({ port: 0 });
  try {
    const c = await RawClient.connect(port);
    await c.greet();
    c.sendOption(P.NBD_OPT_STRUCTURED_REPLY);
    assert.is((await c.optionReply()).type, P.NBD_REP_ACK, "'on' serves plain options too");
    c.sendOption(P.NBD_OPT_STARTTLS);
    assert.is((await c.optionReply()).type, P.NBD_REP_ACK);
    const s = await c.startTls({
      pskCallback: () => ({ identity: 'alice', psk: key }),
      ciphers: 'PSK-AES256-GCM-SHA384',
      checkServerIdentity: () => undefined,
    });
    assert.ok(s.encrypted);
    c.sendOption(P.NBD_OPT_STARTTLS);
    assert.is((await c.optionReply()).type >>> 0, P.NBD_REP_ERR_INVALID >>> 0, 'TLS is already on');
    const go = await c.infoOrGo(P.NBD_OPT_GO, 'disk');
    assert.is(go.final, P.NBD_REP_ACK);
    const flags = go.infos.get(P.NBD_INFO_EXPORT)!.readUInt16BE(8);
    assert.is(flags & P.NBD_FLAG_SEND_DF, 0, 'structured replies negotiated before STARTTLS no longer count');
    const data = pattern(4096, 7);
    assert.is(await c.writeAt(1, 8192, data), 0);
    const r = await c.readAt(2, 8192, 4096);
    assert.is(r.error, 0);
    assert.equal(new Uint8Array(r.data), new Uint8Array(data));
    c.destroy();
    const tlsEvent = seen.find((e) => e.type === 'tls');
    assert.ok(tlsEvent && tlsEvent.type === 'tls' && tlsEvent.identity === 'alice', JSON.stringify(tlsEvent));
  } finally {
    await server.close();
  }
});

t('STARTTLS: a client that sends its TLS hello before the server acknowledged is cut off', async () => {
  const c = await RawClient.connect(pskPort);
  await c.greet();
  const opt = Buffer.alloc(16);
  opt.writeUInt32BE(P.IHAVEOPT_HI, 0);
  opt.writeUInt32BE(P.IHAVEOPT_LO, 4);
  opt.writeUInt32BE(P.NBD_OPT_STARTTLS, 8);
  c.write(Buffer.concat([opt, Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])]));
  assert.ok(await c.waitClosed(), 'pipelined TLS bytes end the session');
});

t('real clients: nbdinfo and nbdcopy through TLS with the key; a wrong key and a plain-text client are refused', async () => {
  const uri = `nbds://alice@127.0.0.1:${pskPort}/disk`;
  const info = await run(['nbdinfo', '--json', `${uri}?tls-psk-file=${pskFile}`], 20_000);
  assert.is(info.code, 0, info.out);
  const j = JSON.parse(info.out) as { TLS: boolean; exports: { 'export-size': number }[] };
  assert.is(j.TLS, true);
  assert.is(j.exports[0]!['export-size'], 4 << 20);
  const src = join(tmp.dir, 'src.img');
  const back = join(tmp.dir, 'back.img');
  writeFileSync(src, randomBytes(1 << 20));
  const up = await run(['nbdcopy', src, `${uri}?tls-psk-file=${pskFile}`], 30_000);
  assert.is(up.code, 0, up.out);
  const down = await run(['nbdcopy', `${uri}?tls-psk-file=${pskFile}`, back], 30_000);
  assert.is(down.code, 0, down.out);
  assert.ok(
    readFileSync(back)
      .subarray(0, 1 << 20)
      .equals(readFileSync(src)),
    'the data went in and came back through TLS',
  );
  const failuresBefore = pskServer.stats().tlsFailures;
  const wrong = await run(['nbdinfo', `${uri}?tls-psk-file=${wrongPsk}`], 20_000);
  assert.is.not(wrong.code, 0, 'a wrong key is refused');
  const plain = await run(['nbdinfo', `nbd://127.0.0.1:${pskPort}/disk`], 20_000);
  assert.is.not(plain.code, 0, 'a plain-text client is refused');
  assert.is(pskServer.stats().tlsFailures, failuresBefore + 1);
  assert.ok(pskServer.stats().tlsSessions >= 3);
});

t('X.509: nbdinfo verifies the server against the CA; with tls-verify-peer a client without a certificate is refused', async () => {
  const pki = makePki();
  for (const verifyPeer of [false, true]) {
    const server = new NbdServer({
      exports: [{ name: 'disk', device: new MemoryBlockDevice({ size: 1 << 20 }) }],
      tls: { mode: 'require', certificates: pki.server, verifyPeer },
    });
    try {
      const { port } = await server.listenTcp({ host: '127.0.0.1', port: 0 });
      const r = await run(['nbdinfo', '--json', `nbds://localhost:${port}/disk?tls-certificates=${pki.client}`], 20_000);
      if (verifyPeer) assert.is.not(r.code, 0, 'no client certificate, no session');
      else {
        assert.is(r.code, 0, r.out);
        assert.is((JSON.parse(r.out) as { TLS: boolean }).TLS, true);
      }
    } finally {
      await server.close();
    }
  }
});

t.run();
