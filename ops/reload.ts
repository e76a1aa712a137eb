/**
 * Reload (SIGHUP, systemd's ExecReload): the policies are read again and compared with those
 * running, by name; only what changed is touched:
 * - a policy gone: its linkback closed (clients answered and disconnected), its sandbox stopped;
 * - a policy whose content changed: the same, then a new sandbox for the new policy and its linkback;
 * - a new policy: a sandbox and its linkback;
 * - an unchanged policy: nothing at all (its container, its pid and its clients stay).
 * Policies are compared by their resolved content (every field, defaults filled in), so a file
 * touched or reformatted without a change restarts nothing.
 *
 * A policy argument may be a folder: its `*.yaml` and `*.yml` files, in name order
 * (`dmabox up /etc/dmabox/`).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Policy } from '../policies/types.js';
import type { Linkback } from '../linkback/registry.js';
import { startLinkback, type ServiceLog } from '../linkback/service.js';
import type { Manager } from '../sandbox/manager/manager.js';
import { OpsError } from './errors.js';

/** Files and folders of policies -> files (a folder: its *.yaml / *.yml, sorted). */
export function expandPolicyArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    let dir = false;
    try {
      dir = statSync(a).isDirectory();
    } catch {
      // Not there: the policy loader reports the missing file with its name.
    }
    if (!dir) {
      out.push(a);
      continue;
    }
    let names: string[];
    try {
      names = readdirSync(a);
    } catch (e) {
      throw new OpsError('ERR_OPS_POLICY_DIR', `cannot read the policy folder ${a}: ${(e as Error).message}`, { fix: 'check its permissions' });
    }
    const files = names.filter((n) => /\.ya?ml$/.test(n)).sort();
    if (files.length === 0)
      throw new OpsError('ERR_OPS_POLICY_DIR', `the policy folder ${a} holds no *.yaml or *.yml file`, { fix: 'put the policies there, one per file' });
    for (const f of files) out.push(join(a, f));
  }
  return out;
}

/** A stable text of a resolved policy: keys sorted, bigints as strings. */
export function policyKey(p: Policy): string {
  return JSON.stringify(p, (_k, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o)
          .sort()
          .map((k) => [k, o[k]]),
      );
    }
    return v;
  });
}

export interface PolicyDiff {
  added: Policy[];
  changed: Policy[];
  removed: string[];
  unchanged: string[];
}

export function diffPolicies(running: readonly Policy[], next: readonly Policy[]): PolicyDiff {
  const before = new Map(running.map((p) => [p.name, policyKey(p)]));
  const d: PolicyDiff = { added: [], changed: [], removed: [], unchanged: [] };
  const names = new Set<string>();
  for (const p of next) {
    names.add(p.name);
    const k = before.get(p.name);
    if (k === undefined) d.added.push(p);
    else if (k === policyKey(p)) d.unchanged.push(p.name);
    else d.changed.push(p);
  }
  for (const p of running) if (!names.has(p.name)) d.removed.push(p.name);
  return d;
}

/**
 * Apply `next` to a running manager and its linkbacks (changed in place). Returns the diff applied.
 * A sandbox or linkback that fails to start is logged and left out, as at start.
 */
export async function applyPolicies(manager: Manager, linkbacks: Linkback[], next: readonly Policy[], log: ServiceLog): Promise<PolicyDiff> {
  const d = diffPolicies(
    manager.sandboxes.map((s) => s.policy),
    next,
  );
  for (const name of [...d.removed, ...d.changed.map((p) => p.name)]) {
    const i = linkbacks.findIndex((l) => l.sandbox === name);
    if (i >= 0) {
      await linkbacks[i]!.close();
      linkbacks.splice(i, 1);
    }
    await manager.remove(name);
  }
  for (const p of [...d.changed, ...d.added]) {
    let s;
    try {
      s = await manager.add(p);
    } catch (e) {
      log(p.name, `not started: ${(e as Error).message}`, 'error');
      continue;
    }
    if (s.state !== 'running') {
      log(p.name, `not running after reload (${s.state}): its linkback is not started`, 'error');
      continue;
    }
    try {
      const l = await startLinkback(s, log);
      if (l) linkbacks.push(l);
    } catch (e) {
      log(p.name, `linkback not started: ${(e as Error).message}`, 'error');
    }
  }
  return d;
}
