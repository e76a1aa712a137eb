/**
 * The simulated peer's frames (sim/net/packets.ts): what it builds it parses back, a frame of
 * another kind or with a broken header is not taken for one, and malformed addresses are refused.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { arpFrame, arpRequestFor, arpReplyFrom, icmpEcho, icmpEchoTo, inetChecksum, ipv4, parseMac } from '../../../sim/net/packets.js';
import { SimError } from '../../../sim/errors.js';
import { ETHERTYPE } from '../../../spec/e1000e/ethernet.js';

const MAC_A = parseMac('52:54:00:12:34:56');
const MAC_B = parseMac('52:55:0a:00:02:02');
const IP_A = ipv4('10.0.2.15');
const IP_B = ipv4('10.0.2.2');

test('ARP: a request for an address is recognised for that address only; a reply gives the sender MAC', () => {
  const req = arpFrame('request', MAC_A, IP_A, new Uint8Array(6), IP_B);
  assert.is(req.length, 42);
  assert.is((req[12]! << 8) | req[13]!, ETHERTYPE.ARP);
  assert.equal(arpRequestFor(req, req.length, IP_B), { mac: MAC_A, ip: IP_A });
  assert.is(arpRequestFor(req, req.length, IP_A), null, 'not for this address');
  assert.is(arpReplyFrom(req, req.length, IP_A), null, 'a request is not a reply');
  const rep = arpFrame('reply', MAC_B, IP_B, MAC_A, IP_A);
  assert.equal(arpReplyFrom(rep, rep.length, IP_B), MAC_B);
  assert.is(arpRequestFor(rep, rep.length, IP_A), null, 'a reply is not a request');
  assert.is(arpRequestFor(req, 41, IP_B), null, 'too short');
});

test('ICMP echo: built with valid checksums, parsed back; a corrupted IPv4 header is refused', () => {
  const payload = Uint8Array.from({ length: 56 }, (_, i) => i);
  const f = icmpEcho('request', MAC_A, MAC_B, IP_A, IP_B, 0x1234, 7, payload);
  assert.is((f[12]! << 8) | f[13]!, ETHERTYPE.IPV4);
  assert.is(inetChecksum(f, 14, 20), 0, 'IPv4 header checksum');
  assert.is(inetChecksum(f, 34, 8 + payload.length), 0, 'ICMP checksum');
  const e = icmpEchoTo(f, f.length, IP_B, 'request');
  assert.ok(e);
  assert.equal([e!.id, e!.seq], [0x1234, 7]);
  assert.equal(e!.srcMac, MAC_A);
  assert.equal(e!.payload, payload);
  assert.is(icmpEchoTo(f, f.length, IP_B, 'reply'), null, 'a request is not a reply');
  f[22]! ^= 1; // TTL changed without the checksum
  assert.is(icmpEchoTo(f, f.length, IP_B, 'request'), null);
});

test('malformed MAC and IPv4 addresses: ERR_SIM_ARG with a fix', () => {
  for (const bad of ['52:54:00:12:34', '52:54:00:12:34:5g', '', '52-54-00-12-34-56']) {
    assert.throws(
      () => parseMac(bad),
      (e: unknown) => e instanceof SimError && e.code === 'ERR_SIM_ARG' && e.fix !== undefined,
    );
  }
  for (const bad of ['10.0.2', '10.0.2.256', 'a.b.c.d', '10.0.2.2.1']) {
    assert.throws(
      () => ipv4(bad),
      (e: unknown) => e instanceof SimError && e.code === 'ERR_SIM_ARG' && e.fix !== undefined,
    );
  }
});

test.run();
