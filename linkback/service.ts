/**
 * Policies up, linked back: every policy's sandbox through the `Manager`, then the linkback each
 * policy names (registry.ts), and an orderly stop: linkbacks first (their clients answered and
 * disconnected), then the manager (containers, quarantine, devices, control socket).
 *
 * Nothing is pretended: a policy the sandbox cannot run yet (a simulated device it has no model
 * for in a container), a sandbox that failed to start, and a linkback kind no module serves yet
 * are each reported in `unavailable` with the reason, and the rest is served.
 */
import type { Policy } from '../policies/types.js';
import { Manager, type ManagerOptions } from '../sandbox/manager/manager.js';
import { SandboxError } from '../sandbox/manager/errors.js';
import type { Supervisor } from '../sandbox/manager/supervisor.js';
import { LinkbackServiceError, LINKBACK_KINDS, linkbackKind, type Linkback } from './registry.js';

export interface Unavailable {
  policy: string;
  /** What is missing: the sandbox itself or its linkback. */
  what: 'sandbox' | 'linkback';
  /** `unsupported`: not built yet (not the user's fault); `error`: it was tried and failed. */
  kind: 'unsupported' | 'error';
  reason: string;
}

export type ServiceLog = (sandbox: string, line: string, level?: 'info' | 'warn' | 'error') => void;

/**
 * A Manager over the policies the sandbox can run. A simulated device the sandbox refuses
 * (ERR_SANDBOX_DEVICE naming the policy) is left out and reported; anything else is thrown.
 */
export function createManager(policies: readonly Policy[], options: ManagerOptions, unavailable: Unavailable[]): Manager {
  let left = [...policies];
  for (;;) {
    try {
      return new Manager(left, options);
    } catch (e) {
      const m = e instanceof SandboxError && e.code === 'ERR_SANDBOX_DEVICE' ? /^policy ([a-z0-9-]+):/.exec(e.message) : null;
      const p = m ? left.find((x) => x.name === m[1]) : undefined;
      if (!p || !('sim' in p.device)) throw e;
      unavailable.push({ policy: p.name, what: 'sandbox', kind: 'unsupported', reason: (e as Error).message.slice(m![0].length).split('\n')[0]!.trim() });
      left = left.filter((x) => x !== p);
    }
  }
}

/** Start the linkback of one ready sandbox; `undefined` when its policy names none. */
export async function startLinkback(s: Supervisor, log: ServiceLog): Promise<Linkback | undefined> {
  const kind = linkbackKind(s.policy);
  if (kind === undefined) return undefined;
  const load = LINKBACK_KINDS[kind];
  if (!load) {
    throw new LinkbackServiceError(
      'ERR_LINKBACK_UNSUPPORTED',
      `the ${kind} linkback is not available yet (this build serves: ${Object.keys(LINKBACK_KINDS).join(', ')})`,
    );
  }
  const start = await load();
  return start({ supervisor: s, policy: s.policy, log: (line, level) => log(s.name, line, level) });
}

/**
 * The linkbacks of every sandbox of a started manager (call after `manager.start()`). Sandboxes
 * that are not running, and linkbacks that fail to start, go to `unavailable`.
 */
export async function startLinkbacks(
  manager: Manager,
  log: ServiceLog,
  unavailable: Unavailable[] = [],
): Promise<{ linkbacks: Linkback[]; unavailable: Unavailable[] }> {
  const linkbacks: Linkback[] = [];
  for (const s of manager.sandboxes) {
    const kind = linkbackKind(s.policy);
    if (s.state !== 'running') {
      const last = [...s.events].reverse().find((e) => e.level === 'error' || e.kind === 'failed' || e.kind === 'exit');
      unavailable.push({
        policy: s.name,
        what: 'sandbox',
        kind: 'error',
        reason: `it is ${s.state}${kind ? `, so its ${kind} linkback was not started` : ''}${last ? `; last: ${last.kind}: ${last.text}` : ''}`,
      });
      continue;
    }
    if (kind === undefined) continue;
    try {
      const l = await startLinkback(s, log);
      if (l) linkbacks.push(l);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      unavailable.push({ policy: s.name, what: 'linkback', kind: code === 'ERR_LINKBACK_UNSUPPORTED' ? 'unsupported' : 'error', reason: (e as Error).message });
    }
  }
  for (const s of manager.sandboxes) {
    s.on('failed', (err: Error) => log(s.name, `the device failed; its linkback answers every request with an error now: ${err.message}`, 'error'));
  }
  return { linkbacks, unavailable };
}

export interface Service {
  manager: Manager;
  linkbacks: Linkback[];
  unavailable: Unavailable[];
  /** Linkbacks (clients first), then containers and devices. Idempotent. */
  stop(): Promise<void>;
}

/** Bring every policy up through a Manager and start the linkbacks they name. */
export async function startService(policies: readonly Policy[], options: ManagerOptions, log: ServiceLog, onManager?: (m: Manager) => void): Promise<Service> {
  const unavailable: Unavailable[] = [];
  const manager = createManager(policies, options, unavailable);
  onManager?.(manager);
  let linkbacks: Linkback[] = [];
  try {
    await manager.start();
    ({ linkbacks } = await startLinkbacks(manager, log, unavailable));
  } catch (e) {
    await manager.stop();
    throw e;
  }
  let stopping: Promise<void> | undefined;
  return {
    manager,
    linkbacks,
    unavailable,
    stop: () => {
      stopping ??= (async () => {
        await Promise.all(linkbacks.map((l) => l.close().catch((e: Error) => log(l.sandbox, `closing the ${l.kind} linkback: ${e.message}`, 'warn'))));
        await manager.stop();
      })();
      return stopping;
    },
  };
}
