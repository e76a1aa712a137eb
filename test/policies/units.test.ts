import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatDuration, formatSize, parseDuration, parseSize } from '../../policies/units.js';

test('sizes: binary units, whole bytes, nothing else', () => {
  assert.is(parseSize('64MiB'), 64 * 2 ** 20);
  assert.is(parseSize('4 KiB'), 4096);
  assert.is(parseSize('1GiB'), 2 ** 30);
  assert.is(parseSize('512B'), 512);
  assert.is(parseSize(4096), 4096);
  for (const bad of ['64MB', '64mib', '1.5GiB', '-1', '', 'big', 1.5, -4096, null, true, '99999999999TiB']) assert.is(parseSize(bad), undefined, String(bad));
});

test('durations: us, ms, s, m, h, or whole milliseconds', () => {
  assert.is(parseDuration('500us'), 0.5);
  assert.is(parseDuration('1500 us'), 1.5);
  assert.is(parseDuration('0us'), 0);
  assert.is(parseDuration('100ms'), 100);
  assert.is(parseDuration('30s'), 30_000);
  assert.is(parseDuration('5m'), 300_000);
  assert.is(parseDuration('1h'), 3_600_000);
  assert.is(parseDuration(250), 250);
  for (const bad of ['1d', 'soon', '1.5s', '0.5us', '5µs', -1, 0.5, '']) assert.is(parseDuration(bad), undefined, String(bad));
});

test('formatting picks the largest exact unit and reads back', () => {
  assert.is(formatSize(64 * 2 ** 20), '64MiB');
  assert.is(formatSize(5000), '5000B');
  assert.is(formatSize(1536 * 1024), '1536KiB');
  assert.is(formatDuration(60_000), '1m');
  assert.is(formatDuration(1500), '1500ms');
  for (const n of [1, 4096, 3 * 2 ** 30, 12345]) assert.is(parseSize(formatSize(n)), n);
  assert.is(formatDuration(0.5), '500us');
  assert.is(formatDuration(2.25), '2250us');
  for (const n of [1, 1000, 90_000, 7_200_000, 0.5, 0.001, 1.5]) assert.is(parseDuration(formatDuration(n)), n);
});

test.run();
