/** The Prometheus text format writer and the block ring's per-operation counters. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { escapeHelp, escapeLabelValue, Exposition, formatValue } from '../../ops/exposition.js';
import { OpsError } from '../../ops/errors.js';
import { bucketOf, BLOCK_OPS, LATENCY_BOUNDS_SECONDS, LATENCY_BUCKETS, LATENCY_SLOTS, OpStats } from '../../sandbox/manager/services/op-stats.js';

test('escaping: HELP escapes backslash and newline; label values also the double quote', () => {
  assert.is(escapeHelp('a\\b\nc "q"'), 'a\\\\b\\nc "q"');
  assert.is(escapeLabelValue('a\\b\nc "q"'), 'a\\\\b\\nc \\"q\\"');
  assert.is(formatValue(NaN), 'NaN');
  assert.is(formatValue(Infinity), '+Inf');
  assert.is(formatValue(-Infinity), '-Inf');
  assert.is(formatValue(0.5), '0.5');
  assert.is(formatValue(1e21), '1e+21');
});

test('families: HELP and TYPE once, then the samples; histograms as _bucket (cumulative), _sum, _count', () => {
  const x = new Exposition();
  x.family('t_requests_total', 'counter', 'Requests.\nSecond line').sample({ sandbox: 'a"b', op: 'read' }, 3).sample({}, 1);
  x.family('t_latency_seconds', 'histogram', 'Latency.').histogram({ op: 'read' }, [0.1, 1], [2, 5, 7], 3.5);
  x.family('t_empty', 'gauge', 'No samples.');
  assert.is(
    x.text(),
    [
      '# HELP t_requests_total Requests.\\nSecond line',
      '# TYPE t_requests_total counter',
      't_requests_total{sandbox="a\\"b",op="read"} 3',
      't_requests_total 1',
      '# HELP t_latency_seconds Latency.',
      '# TYPE t_latency_seconds histogram',
      't_latency_seconds_bucket{op="read",le="0.1"} 2',
      't_latency_seconds_bucket{op="read",le="1"} 5',
      't_latency_seconds_bucket{op="read",le="+Inf"} 7',
      't_latency_seconds_sum{op="read"} 3.5',
      't_latency_seconds_count{op="read"} 7',
      '# HELP t_empty No samples.',
      '# TYPE t_empty gauge',
      '',
    ].join('\n'),
  );
  assert.is(new Exposition().text(), '');
});

test('what Prometheus would reject is refused with ERR_OPS_METRIC', () => {
  const bad = (f: () => unknown, re: RegExp): void =>
    assert.throws(f, (e: unknown) => e instanceof OpsError && e.code === 'ERR_OPS_METRIC' && re.test(e.message));
  bad(() => new Exposition().family('1bad', 'gauge', ''), /not a Prometheus metric name/);
  bad(() => new Exposition().family('x', 'counter', ''), /must end in _total/);
  bad(() => new Exposition().family('x', 'gauge', '').family('x', 'gauge', ''), /declared twice/);
  bad(() => new Exposition().sample({}, 1), /before family/);
  bad(() => new Exposition().family('x', 'gauge', '').sample({ 'a-b': '1' }, 1), /label name/);
  bad(() => new Exposition().family('x', 'gauge', '').sample({ __x: '1' }, 1), /label name/);
  bad(() => new Exposition().family('x', 'gauge', '').histogram({}, [1], [0, 0], 0), /not a histogram/);
  bad(() => new Exposition().family('x', 'histogram', '').sample({}, 1), /is a histogram/);
});

test('latency buckets: 2^k microseconds, the bound itself in its bucket, beyond the last to +Inf', () => {
  assert.is(LATENCY_BOUNDS_SECONDS.length, LATENCY_BUCKETS);
  assert.is(LATENCY_SLOTS, LATENCY_BUCKETS + 1);
  assert.is(LATENCY_BOUNDS_SECONDS[0], 1e-6);
  assert.is(bucketOf(0), 0);
  assert.is(bucketOf(1e-6), 0);
  assert.is(bucketOf(1.5e-6), 1);
  assert.is(bucketOf(2e-6), 1);
  for (let k = 1; k < LATENCY_BUCKETS; k++) {
    assert.is(bucketOf(LATENCY_BOUNDS_SECONDS[k]!), k, `bound ${k}`);
    assert.is(bucketOf(LATENCY_BOUNDS_SECONDS[k - 1]! * 1.0001), k, `just above bound ${k - 1}`);
  }
  assert.is(bucketOf(100), LATENCY_BUCKETS);
});

test('OpStats: requests, errors, bytes and a histogram per op; cumulative counts end at the total', () => {
  const s = new OpStats();
  const read = BLOCK_OPS.indexOf('read'),
    flush = BLOCK_OPS.indexOf('flush');
  s.record(read, true, 4096, 3e-6);
  s.record(read, true, 4096, 0.5);
  s.record(read, false, 0, 20);
  s.record(flush, true, 0, -1); // a clock step backwards counts as 0
  s.record(99, true, 1, 1); // not an op: ignored
  assert.is(s.requests[read], 3);
  assert.is(s.errors[read], 1);
  assert.is(s.bytes[read], 8192);
  assert.is(s.latencySum[read], 20.500003);
  const c = s.cumulative(read, new Float64Array(LATENCY_SLOTS));
  assert.is(c[1], 0);
  assert.is(c[2], 1); // 3 us <= 4 us
  assert.is(c[LATENCY_BUCKETS - 1], 2); // 0.5 s <= 8.4 s
  assert.is(c[LATENCY_BUCKETS], 3); // 20 s only in +Inf
  assert.is(s.cumulative(flush, new Float64Array(LATENCY_SLOTS))[0], 1);
  assert.is(s.latencySum[flush], 0);
});

test.run();
