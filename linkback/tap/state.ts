/**
 * The TAP bridge's states and every transition between them, in one table.
 *
 *   idle --start--> reading <--room-- paused        reading --full--> paused
 *                     |  ^                           reading, paused --fault--> backoff --retry--> reading
 *                     |  '--resume-- suspended       reading, paused, backoff --broke--> failed
 *   running, failed --suspend--> suspending --rxEnded--> suspended
 *   running, failed, suspending --stop--> stopping --rxEnded--> stopped;   idle, suspended --stop--> stopped
 *
 * "Running" is reading, paused or backoff: frames move and the RX loop runs. The three differ only
 * on the TAP side: `reading` watches the TAP fd (and re-offers queued frames every `retryMs` when
 * the NIC took fewer than offered); `paused` does not watch it, because the queue or the NIC's TX
 * pool is full (whenFull 'wait'), and looks again every `retryMs`; `backoff` neither reads nor
 * offers for `waitMs` after a TAP read or a port call failed, so a lasting failure is never spun on.
 *
 * What each transition does (TapBridge.enter carries it out):
 * - into `reading`: watch the TAP; from idle or suspended also mirror the link and start the RX loop
 *   (from suspended the held frames were copied into the new port first);
 * - out of `reading`: stop watching the TAP;
 * - into `paused`: arm the timer for `retryMs`; into `backoff`: arm it for `waitMs`;
 * - out of running: disarm the timer (the RX loop sees the state and ends within `waitMs`);
 * - into `failed`: forget the queue (the port broke the contract: who owns its buffers is unknown);
 * - into `suspended`: copy queued frames out of the old port's buffers and give the buffers back;
 * - into `stopped`: give queued buffers back to the port (from suspended: drop the held copies).
 *
 * Events a state has no row for: a public call (start, suspend, resume) is refused with a TapError
 * saying what to do instead; an internal one (a pump's result arriving after a stop) changes nothing.
 */
import { TapError } from './errors.js';

export type BridgeState = 'idle' | 'reading' | 'paused' | 'backoff' | 'failed' | 'suspending' | 'suspended' | 'stopping' | 'stopped';

export type BridgeEvent =
  /** start(). */
  | 'start'
  /** The TAP side found the queue or the NIC's TX pool full (whenFull 'wait'). */
  | 'full'
  /** A look while paused found room again. */
  | 'room'
  /** A TAP read or a port call threw. */
  | 'fault'
  /** The back-off time is over. */
  | 'retry'
  /** The port broke the NicPort contract. */
  | 'broke'
  /** suspend(). */
  | 'suspend'
  /** The RX loop has ended. */
  | 'rxEnded'
  /** resume(port). */
  | 'resume'
  /** stop(). */
  | 'stop';

/** No transition: the call is idempotent in this state. */
const SAME = 'same';

type Row = Readonly<Partial<Record<BridgeEvent, BridgeState | typeof SAME>>>;

/** Every valid (state, event) pair and the state it leads to. */
export const TRANSITIONS: { readonly [S in BridgeState]: Row } = Object.freeze({
  idle: { start: 'reading', stop: 'stopped' },
  reading: { start: SAME, full: 'paused', fault: 'backoff', broke: 'failed', suspend: 'suspending', stop: 'stopping' },
  paused: { start: SAME, room: 'reading', fault: 'backoff', broke: 'failed', suspend: 'suspending', stop: 'stopping' },
  backoff: { start: SAME, retry: 'reading', broke: 'failed', suspend: 'suspending', stop: 'stopping' },
  failed: { suspend: 'suspending', stop: 'stopping' },
  suspending: { rxEnded: 'suspended', stop: 'stopping' },
  suspended: { resume: 'reading', stop: 'stopped' },
  stopping: { rxEnded: 'stopped', stop: SAME },
  stopped: { stop: SAME },
});

export type RunningState = 'reading' | 'paused' | 'backoff';

/** Frames move and the RX loop runs. */
export function isRunning(s: BridgeState): s is RunningState {
  return s === 'reading' || s === 'paused' || s === 'backoff';
}

/**
 * The state `event` leads to from `state`, or null when nothing changes (an idempotent call, a late
 * internal event). A public call the state does not allow throws, saying what to do instead.
 */
export function nextState(state: BridgeState, event: BridgeEvent, name: string): BridgeState | null {
  const to = TRANSITIONS[state][event];
  if (to === SAME) return null;
  if (to !== undefined) return to;
  if (event === 'start' || event === 'suspend' || event === 'resume') throw refusal(state, event, name);
  return null;
}

function refusal(state: BridgeState, event: 'start' | 'suspend' | 'resume', name: string): TapError {
  const what = `TAP bridge ${name}: ${event === 'resume' ? 'resume()' : `${event}()`} while ${state}`;
  const closed = state === 'stopping' || state === 'stopped';
  if (event === 'start') {
    if (state === 'suspending' || state === 'suspended') {
      return new TapError('ERR_TAP_ARG', `${what}; carry on with resume(port)`, { fix: "call resume(port) with the restarted driver's port" });
    }
    if (state === 'failed') {
      return new TapError('ERR_TAP_CLOSED', `${what}: stopped after its port broke the NicPort contract`, {
        fix: 'suspend() and resume(port) with a new port, or make a new bridge',
      });
    }
    return new TapError('ERR_TAP_CLOSED', `${what}: stopped bridges do not restart`, { fix: 'make a new TapBridge' });
  }
  if (event === 'suspend') {
    if (state === 'suspending' || state === 'suspended') {
      return new TapError('ERR_TAP_ARG', `${what}: already suspended`, { fix: 'resume it with the new port' });
    }
    return new TapError('ERR_TAP_CLOSED', `${what}: suspend on a bridge that is not running`, { fix: 'start() it first; a stopped bridge does not restart' });
  }
  if (closed) return new TapError('ERR_TAP_CLOSED', `${what}: the bridge is stopped`, { fix: 'make a new TapBridge' });
  return new TapError('ERR_TAP_ARG', `${what}: resume() needs a suspended bridge`, { fix: 'call suspend() first (or replacePort(port) for both)' });
}
