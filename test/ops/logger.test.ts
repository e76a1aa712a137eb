/** The one logger of `dmabox up`: text, json and journal lines, and how the format is chosen. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chooseLogFormat, Logger, SYSLOG_PRIORITY } from '../../ops/logger.js';
import { OpsError } from '../../ops/errors.js';

const T = Date.UTC(2026, 11, 5, 6, 7, 8, 9);

function sink() {
  const s = { out: [] as string[], err: [] as string[] };
  return { s, io: { out: (l: string) => void s.out.push(l), err: (l: string) => void s.err.push(l) } };
}

test('text: time, sandbox, event and level for a sandbox line; the message alone for the manager; UNCONFINED shouted', () => {
  const { s, io } = sink();
  const log = new Logger('text', io);
  log.log({ time: T, sandbox: 'disk', event: 'exit', level: 'warn', message: 'container pid 7 killed' });
  log.log({ time: T, sandbox: 'disk', event: 'ready', message: 'serving', fields: { unconfined: true } });
  log.log({ time: T, event: 'manager', message: 'up: disk running' });
  log.log({ time: T, sandbox: 'disk', event: 'linkback', message: 'disk: nbd linkback at unix:/x', bare: true });
  log.log({ event: 'manager', level: 'error', message: 'FATAL', stderr: true });
  assert.equal(s.out, [
    '06:07:08.009 disk exit [warn]: container pid 7 killed\n',
    '06:07:08.009 disk UNCONFINED ready: serving\n',
    'up: disk running\n',
    'disk: nbd linkback at unix:/x\n',
  ]);
  assert.equal(s.err, ['FATAL\n']);
});

test('json: one object per line with time, level, sandbox, event, message, fields', () => {
  const { s, io } = sink();
  const log = new Logger('json', io);
  log.log({ time: T, sandbox: 'disk', event: 'restart', level: 'warn', message: 'restart 1 in 50 ms\nsecond line', fields: { n: 1 } });
  log.log({ time: T, event: 'manager', message: 'up' });
  assert.is(s.out.length, 2);
  for (const l of s.out) assert.ok(l.endsWith('\n') && !l.slice(0, -1).includes('\n'));
  assert.equal(JSON.parse(s.out[0]!), {
    time: '2026-12-05T06:07:08.009Z',
    level: 'warn',
    sandbox: 'disk',
    event: 'restart',
    message: 'restart 1 in 50 ms\nsecond line',
    fields: { n: 1 },
  });
  assert.equal(JSON.parse(s.out[1]!), { time: '2026-12-05T06:07:08.009Z', level: 'info', sandbox: null, event: 'manager', message: 'up', fields: {} });
});

test('journal: the syslog priority on every line, no time (journald stamps it)', () => {
  const { s, io } = sink();
  const log = new Logger('journal', io);
  log.log({ time: T, sandbox: 'disk', event: 'failed', level: 'error', message: 'gave up\nafter 3 restarts' });
  log.log({ time: T, sandbox: 'disk', event: 'log', level: 'debug', message: 'x' });
  log.log({ time: T, event: 'manager', level: 'warn', message: 'w' });
  log.log({ time: T, event: 'manager', message: 'i' });
  assert.equal(s.out, ['<3>disk failed [error]: gave up\n<3>after 3 restarts\n', '<7>disk log [debug]: x\n', '<4>w\n', '<6>i\n']);
  assert.equal(SYSLOG_PRIORITY, { error: 3, warn: 4, info: 6, debug: 7 });
});

test('the format: the flag, else journal under journald (JOURNAL_STREAM), else text; an unknown one refused', () => {
  assert.is(chooseLogFormat(undefined, {}), 'text');
  assert.is(chooseLogFormat(undefined, { JOURNAL_STREAM: '8:1234' }), 'journal');
  assert.is(chooseLogFormat('json', { JOURNAL_STREAM: '8:1234' }), 'json');
  assert.is(chooseLogFormat('text', {}), 'text');
  assert.throws(
    () => chooseLogFormat('xml', {}),
    (e: unknown) => e instanceof OpsError && e.code === 'ERR_OPS_LOG_FORMAT' && /text, json, journal/.test(e.message),
  );
});

test.run();
