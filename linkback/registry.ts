/**
 * Linkback kinds: what plugs a running sandbox back into the host, by the key of its policy's
 * `linkback` (policies/types.ts: `nbd`, `tap`). One line per kind; each module loads only when a
 * policy names it. A starter is called once its sandbox is ready, and returns a `Linkback` that
 * serves until closed; it must not throw for a client's misbehaviour, only for what stops it from
 * starting (a socket path in use, a device that cannot be exported).
 */
import { DmaboxError } from '../common/errors.js';
import type { NbdServerStats } from './nbd/server.js';
import type { Policy } from '../policies/types.js';
import type { Supervisor } from '../sandbox/manager/supervisor.js';

export type LinkbackServiceCode =
  | 'ERR_LINKBACK_CONFIG' // the policy has no linkback of the kind started
  | 'ERR_LINKBACK_UNSUPPORTED' // no module serves the linkback kind the policy names
  | 'ERR_LINKBACK_ARG' // the linkback does not fit the sandbox (a tap on a block driver)
  | 'ERR_LINKBACK_SOCKET'; // the policy's NBD socket path cannot be claimed

/** Errors of starting a sandbox's linkback (linkback/service.ts and the starters). */
export class LinkbackServiceError extends DmaboxError<LinkbackServiceCode> {}

export interface LinkbackContext {
  /** The sandbox, ready (its first container said READY). */
  supervisor: Supervisor;
  policy: Policy;
  /** One line of what happened (a client connected, an error), for the foreground log. */
  log(line: string, level?: 'info' | 'warn' | 'error'): void;
}

export interface Linkback {
  /** The policy key that chose it (`nbd`, `tap`). */
  readonly kind: string;
  readonly sandbox: string;
  /** Where the host reaches it: `unix:/path`, `tcp:127.0.0.1:10809`, `tap:dmabox0`. */
  readonly addresses: readonly string[];
  /** Lines telling a user how to use it (commands to copy). */
  usage(): string[];
  /** Counters, for status output. */
  status(): Record<string, unknown>;
  /** An NBD linkback's server counters (the metrics endpoint, ops/). */
  nbdStats?(): NbdServerStats;
  /** Stop serving: clients answered and disconnected first, then the listener, then anything it made. */
  close(): Promise<void>;
}

export type LinkbackStarter = (ctx: LinkbackContext) => Promise<Linkback>;

/** linkback kind -> starter. */
export const LINKBACK_KINDS: Record<string, () => Promise<LinkbackStarter>> = {
  nbd: () => import('./sandbox-nbd.js').then((m) => m.startNbdLinkback),
  tap: () => import('./tap/sandbox-link.js').then((m) => m.startTapLinkback),
};

/** The kind a policy's linkback names (`undefined`: none). */
export function linkbackKind(policy: Policy): string | undefined {
  return policy.linkback ? Object.keys(policy.linkback)[0] : undefined;
}
