/**
 * Hostile containers and the hypercall channel: after READY, a confined driver floods frames the
 * manager drops (unknown types, requests with a ref). Every dropped frame is charged against the
 * flood limit, so the flood is a kill within a bound; the manager keeps no event per dropped
 * frame (a bounded summary), so its memory stays bounded; the violations are the attacker's.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { simPolicy, until } from '../helpers.js';
import { attacker, reports } from './helpers.js';

test('a flood of dropped frames is a kill, within a bound, with bounded manager memory', async () => {
  const s = attacker(simPolicy('hostile-frame-flood', '', '{ maxRestarts: 0, window: 60s, backoff: { initial: 50ms, max: 1s } }'), 'frame-flood', ['400000']);
  try {
    await s.start();
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    await until('the attack to start', () => reports(s, 'frame-flood').some((l) => l.startsWith('flooding')), 10_000);
    const t0 = Date.now();
    await until('the flooding container to be killed', () => s.crashes >= 1, 10_000);
    const took = Date.now() - t0;
    const grown = (process.memoryUsage().rss - rss0) / 2 ** 20;
    const violations = s.events.filter((e) => e.kind === 'violation');
    if (process.env.DMABOX_MEASURE) console.log(`killed after ${took} ms, RSS +${grown.toFixed(1)} MiB, ${violations.length} violation events`);
    const flood = violations.find((e) => e.text.startsWith('ERR_HC_FLOOD'));
    assert.ok(flood, violations.map((e) => e.text).join('\n'));
    assert.match(flood!.text, /dropped/);
    assert.ok(s.violations >= 1);
    // a bounded summary, not one event per frame
    assert.ok(violations.length <= 40, `${violations.length} violation events`);
    assert.ok(took < 5_000, `killed after ${took} ms`);
    assert.ok(grown < 64, `manager RSS grew ${grown.toFixed(1)} MiB`);
    assert.is(reports(s, 'frame-flood').includes('sent 400000 frames'), false, 'the container was cut off before its flood ended');
  } finally {
    await s.stop();
  }
});

test.run();
