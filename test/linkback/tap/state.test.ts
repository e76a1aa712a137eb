/**
 * The bridge's transition table as data: closed over its states, every state reachable, every
 * state able to stop, and each call a state does not allow refused with a code and a fix.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TapError } from '../../../linkback/tap/errors.js';
import { TRANSITIONS, isRunning, nextState, type BridgeEvent, type BridgeState } from '../../../linkback/tap/state.js';

const STATES = Object.keys(TRANSITIONS) as BridgeState[];
const EVENTS: BridgeEvent[] = ['start', 'full', 'room', 'fault', 'retry', 'broke', 'suspend', 'rxEnded', 'resume', 'stop'];
const PUBLIC = new Set<BridgeEvent>(['start', 'suspend', 'resume', 'stop']);

function reachable(from: BridgeState, events: readonly BridgeEvent[]): Set<BridgeState> {
  const seen = new Set<BridgeState>([from]);
  const todo = [from];
  while (todo.length > 0) {
    const s = todo.pop()!;
    for (const e of events) {
      const to = TRANSITIONS[s][e];
      if (to !== undefined && to !== 'same' && !seen.has(to)) {
        seen.add(to);
        todo.push(to);
      }
    }
  }
  return seen;
}

test('the table is closed: every target is a state, every event one the bridge knows', () => {
  assert.equal(STATES.sort(), ['backoff', 'failed', 'idle', 'paused', 'reading', 'stopped', 'stopping', 'suspended', 'suspending']);
  for (const s of STATES) {
    for (const [e, to] of Object.entries(TRANSITIONS[s])) {
      assert.ok(EVENTS.includes(e as BridgeEvent), `${s}: unknown event ${e}`);
      assert.ok(to === 'same' || STATES.includes(to as BridgeState), `${s} --${e}--> ${String(to)}`);
    }
  }
});

test('every state is reachable from idle, and every state can be stopped by stop() and the RX loop ending', () => {
  assert.equal([...reachable('idle', EVENTS)].sort(), [...STATES].sort());
  for (const s of STATES) assert.ok(reachable(s, ['stop', 'rxEnded']).has('stopped'), `${s} cannot stop`);
  assert.equal(TRANSITIONS.stopped, { stop: 'same' }, 'stopped is final');
});

test('running is exactly reading, paused and backoff; only they take the TAP-side events', () => {
  assert.equal(STATES.filter(isRunning).sort(), ['backoff', 'paused', 'reading']);
  for (const s of STATES) {
    for (const e of ['full', 'room', 'fault', 'retry'] as const) {
      if (TRANSITIONS[s][e] !== undefined) assert.ok(isRunning(s), `${s} takes ${e}`);
    }
  }
});

test('a call a state does not allow is refused with ERR_TAP_ARG or ERR_TAP_CLOSED and a fix; a late internal event changes nothing', () => {
  let refusals = 0;
  for (const s of STATES) {
    for (const e of EVENTS) {
      if (TRANSITIONS[s][e] !== undefined) continue;
      if (!PUBLIC.has(e)) {
        assert.is(nextState(s, e, 'tap0'), null, `${s} ignores ${e}`);
        continue;
      }
      try {
        nextState(s, e, 'tap0');
        assert.unreachable(`${s} allowed ${e}`);
      } catch (err) {
        assert.instance(err, TapError);
        const t = err as TapError;
        assert.ok(t.code === 'ERR_TAP_ARG' || t.code === 'ERR_TAP_CLOSED', `${s} ${e}: ${t.code}`);
        assert.match(t.message, `TAP bridge tap0: ${e}() while ${s}`);
        assert.ok(t.fix !== undefined && t.fix.length > 0, `${s} ${e}: no fix`);
        refusals++;
      }
    }
  }
  assert.ok(refusals >= 15, `${refusals} refusals`);
  assert.is(nextState('reading', 'start', 'tap0'), null, 'start on a running bridge does nothing');
  assert.is(nextState('stopping', 'stop', 'tap0'), null, 'stop is idempotent');
});

test.run();
