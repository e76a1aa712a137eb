/**
 * Hostile containers (fixtures/hostile-container.ts) against the real supervisor: malformed,
 * oversized and out-of-order hypercalls, a flood, silence, garbage in the block completion ring
 * and in the register mailbox, a container that never completes. Each must end in a kill, a
 * quarantine and (restart limit 0) a failed device, with the manager's event loop never stalled.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { extname } from 'node:path';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { loopGapMeter, simPolicy, until } from './helpers.js';

const here = fileURLToPath(import.meta.url);
const entry = fileURLToPath(new URL(`./fixtures/hostile-container${extname(here)}`, import.meta.url));

async function run(mode: string, provoke?: (s: Supervisor) => Promise<unknown>): Promise<{ s: Supervisor; texts: string[]; maxGap: number }> {
  const s = new Supervisor(simPolicy(mode, '', '{ maxRestarts: 0, window: 60s }'), {
    entry,
    entryArgs: [mode],
    helloTimeoutMs: 3000,
    hangMs: 600,
    heartbeatMs: 200,
  });
  const gap = loopGapMeter();
  try {
    const failed = new Promise((r) => s.once('failed', r));
    if (provoke) {
      await s.start();
      await provoke(s);
    } else {
      s.start().catch(() => undefined);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      failed,
      new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error(`${mode}: not failed within 20 s: ${s.events.map((e) => e.kind + ' ' + e.text).join('\n')}`)), 20_000);
      }),
    ]);
    clearTimeout(timer);
    assert.is(s.state, 'failed');
    await s.sim!.settled();
    const q = s.device.quarantineLog;
    assert.ok(q.includes('flr') || q.includes('killed'), `quarantined (BME off and FLR answered, or the device process killed): ${q.join(' ')}`);
  } finally {
    gap.stop();
    await s.stop();
  }
  return { s, texts: s.events.map((e) => `${e.kind}: ${e.text}`), maxGap: gap.maxGap };
}

const GAP_MS = 1000; // a stall of the manager's loop would be seconds; a loaded 2-core VM adds jitter

test('malformed, oversized and out-of-order frames: killed', async () => {
  const { texts, maxGap } = await run('hostile-frames');
  assert.ok(
    texts.some((t) => t.startsWith('violation: ERR_HC_SEQUENCE') || t.startsWith('violation: ERR_HC_BAD_MAGIC')),
    texts.join('\n'),
  );
  assert.ok(maxGap < GAP_MS, `event loop gap ${maxGap} ms`);
});

test('a flood of hypercalls: killed for flooding, the loop keeps running', async () => {
  const { texts, maxGap } = await run('hostile-flood');
  assert.ok(
    texts.some((t) => t.startsWith('violation: ERR_HC_FLOOD') || t.startsWith('violation: ERR_HC_RATE')),
    texts.join('\n'),
  );
  assert.ok(maxGap < GAP_MS, `event loop gap ${maxGap} ms`);
});

test('a container that never says HELLO: killed at the HELLO timeout', async () => {
  const { texts } = await run('hostile-silent');
  assert.ok(
    texts.some((t) => t.startsWith('violation: ERR_HC_TIMEOUT')),
    texts.join('\n'),
  );
});

test('garbage in the block completion ring: dropped, then killed; the request is never settled by it', async () => {
  let settled = 'no';
  const { s, texts } = await run('hostile-ring', async (sv) => {
    sv.block.read(0, 1).then(
      () => {
        settled = 'resolved';
      },
      (e: { code?: string }) => {
        settled = e.code ?? 'rejected';
      },
    );
    await until('a ring violation', () => sv.violations > 0, 10_000);
  });
  assert.ok(
    texts.some((t) => t.includes('block ring: completion for tag')),
    texts.join('\n'),
  );
  await until('the request to settle', () => settled !== 'no', 5000);
  assert.is(settled, 'ERR_SANDBOX_FAILED', 'forged completions never resolve a request');
  assert.is(s.block.completed, 0);
});

test('garbage in the register mailbox: bad accesses answered with a status, an overrun is a kill', async () => {
  const { texts } = await run('hostile-mailbox');
  assert.ok(
    texts.some((t) => t.includes('register mailbox: register ring tail')),
    texts.join('\n'),
  );
});

test('a container that takes requests and never completes them: a hang, killed', async () => {
  let settled = 'no';
  const { texts } = await run('hostile-mute', async (sv) => {
    sv.block.read(0, 1).then(
      () => {
        settled = 'resolved';
      },
      (e: { code?: string }) => {
        settled = e.code ?? 'rejected';
      },
    );
    await until('a hang', () => sv.events.some((e) => e.kind === 'hang'), 10_000);
  });
  assert.ok(
    texts.some((t) => t.startsWith('hang:')),
    texts.join('\n'),
  );
  await until('the request to settle', () => settled !== 'no', 5000);
  assert.is(settled, 'ERR_SANDBOX_FAILED');
});

test('a container flooding its stdout and stderr: at most 50 lines a second logged, cut and cleaned; killed at the HELLO timeout', async () => {
  const { s, texts, maxGap } = await run('hostile-chatty');
  const stdio = s.events.filter((e) => e.text.startsWith('[stdio] chatter'));
  assert.ok(stdio.length > 0 && stdio.length <= 50 * 5, `${stdio.length} stdio lines logged`);
  assert.ok(stdio.every((e) => e.text.length <= 8 + 512 && !e.text.includes('\x1b')));
  const other = texts.filter((t) => !t.includes('[stdio] chatter')).join('\n');
  assert.ok(
    texts.some((t) => /line\(s\) dropped/.test(t)),
    `the drop is said:\n${other}`,
  );
  assert.ok(
    texts.some((t) => t.startsWith('violation: ERR_HC_TIMEOUT')),
    other,
  );
  assert.ok(maxGap < GAP_MS, `event loop gap ${maxGap} ms`);
});

test.run();
