/**
 * One identity (uid and gid, the same number) per sandbox and role, allocated the way systemd's
 * DynamicUser= does: from a fixed range (IDENTITY_RANGE, the one systemd reserves for dynamic
 * users), never an id that an account or group on this host has (/etc/passwd, /etc/group), that a
 * running process holds (/proc/PID/status), or that systemd has handed to one of its own dynamic
 * users (/run/systemd/dynamic-uid). Never 65534 (nobody, shared by everything on the host), never
 * the caller's own. Stable for the life of this object (a manager run): a restarted container
 * gets its sandbox's identity again. The first candidate is a hash of the sandbox and role, so
 * the same sandbox usually gets the same id from run to run.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { SpawnerError } from './errors.js';

export type Role = 'driver' | 'device';

/** systemd's dynamic-user range (systemd docs, "UIDS-GIDS": 61184…65519). */
export const IDENTITY_RANGE = { first: 61184, last: 65519 } as const;
const NOBODY = 65534;

export interface Identity {
  readonly uid: number;
  readonly gid: number;
}

/** Ids in use on the host, read fresh for every allocation (tests pass their own). */
export interface IdsInUse {
  uids(): ReadonlySet<number>;
  gids(): ReadonlySet<number>;
}

/** Third column of every line of a passwd or group file. */
function fileIds(path: string): number[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const ids: number[] = [];
  for (const line of text.split('\n')) {
    const id = Number(line.split(':')[2]);
    if (line.trim() !== '' && Number.isInteger(id)) ids.push(id);
  }
  return ids;
}

/** The real, effective, saved and filesystem ids of every running process (`Uid:` or `Gid:` of /proc/PID/status). */
function processIds(proc: string, field: 'Uid:' | 'Gid:'): number[] {
  const ids: number[] = [];
  let pids: string[];
  try {
    pids = readdirSync(proc).filter((n) => /^\d+$/.test(n));
  } catch {
    return ids;
  }
  for (const pid of pids) {
    try {
      const status = readFileSync(`${proc}/${pid}/status`, 'utf8');
      const line = status.split('\n').find((l) => l.startsWith(field));
      for (const n of line?.slice(field.length).trim().split(/\s+/) ?? []) ids.push(Number(n));
    } catch {
      // gone meanwhile
    }
  }
  return ids;
}

/** The uids systemd's DynamicUser= has handed out (lock files named by the number). */
function systemdDynamic(dir: string): number[] {
  try {
    return readdirSync(dir)
      .filter((n) => /^\d+$/.test(n))
      .map(Number);
  } catch {
    return [];
  }
}

/** What this host uses, from its files (`root` lets a test point at a fake tree). */
export function hostIdsInUse(root = '/'): IdsInUse {
  const at = (p: string): string => `${root.replace(/\/$/, '')}${p}`;
  return {
    uids: () => new Set([...fileIds(at('/etc/passwd')), ...processIds(at('/proc'), 'Uid:'), ...systemdDynamic(at('/run/systemd/dynamic-uid'))]),
    gids: () => new Set([...fileIds(at('/etc/group')), ...processIds(at('/proc'), 'Gid:'), ...systemdDynamic(at('/run/systemd/dynamic-uid'))]),
  };
}

/** FNV-1a of the key, for the first candidate. */
function hash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export class Identities {
  private readonly byKey = new Map<string, Identity>();
  private readonly byId = new Map<number, string>();

  constructor(
    private readonly inUse: IdsInUse = hostIdsInUse(),
    /** The caller's own uid and gid (the manager's, the spawner's): never handed out. */
    private readonly self: Identity = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
    private readonly range: { first: number; last: number } = IDENTITY_RANGE,
  ) {}

  /**
   * Reserve an identity a policy names explicitly for (sandbox, role); refused when another
   * sandbox or role holds it, or it is the caller's own or nobody's.
   */
  pin(sandbox: string, role: Role, id: Identity): Identity {
    const key = `${sandbox}/${role}`;
    const held = this.byKey.get(key);
    if (held && held.uid === id.uid && held.gid === id.gid) return held;
    if (held)
      throw new SpawnerError('ERR_SPAWNER_IDENTITY', `${key} already runs as uid ${held.uid}, cannot pin uid ${id.uid}`, {
        fix: 'pin an identity before the first launch of that sandbox',
      });
    for (const n of [id.uid, id.gid]) {
      const other = this.byId.get(n);
      if (other !== undefined && other !== key)
        throw new SpawnerError('ERR_SPAWNER_IDENTITY', `id ${n} for ${key} is already the identity of ${other}`, {
          fix: 'give each sandbox its own container.uid/gid, or leave them out to get one allocated',
        });
    }
    if (id.uid === NOBODY || id.gid === NOBODY || id.uid === this.self.uid)
      throw new SpawnerError('ERR_SPAWNER_IDENTITY', `${key}: uid ${id.uid} gid ${id.gid} is shared with nobody or with the manager`, {
        fix: 'leave container.uid/gid out of the policy to get an identity of its own',
      });
    return this.hold(key, { uid: id.uid, gid: id.gid });
  }

  /** The identity of (sandbox, role): the one it had, or a fresh one from the range. */
  get(sandbox: string, role: Role): Identity {
    const key = `${sandbox}/${role}`;
    const held = this.byKey.get(key);
    if (held) return held;
    const uids = this.inUse.uids();
    const gids = this.inUse.gids();
    const size = this.range.last - this.range.first + 1;
    const start = hash(key) % size;
    for (let i = 0; i < size; i++) {
      const n = this.range.first + ((start + i) % size);
      if (n === NOBODY || n === this.self.uid || n === this.self.gid || this.byId.has(n) || uids.has(n) || gids.has(n)) continue;
      return this.hold(key, { uid: n, gid: n });
    }
    throw new SpawnerError('ERR_SPAWNER_IDENTITY', `no free id left in ${this.range.first}-${this.range.last} for ${key}`, {
      fix: 'stop other sandboxes, or remove accounts and processes that use ids of this range',
    });
  }

  /** Every identity handed out, by `sandbox/role`. */
  entries(): [string, Identity][] {
    return [...this.byKey];
  }

  private hold(key: string, id: Identity): Identity {
    this.byKey.set(key, id);
    this.byId.set(id.uid, key);
    this.byId.set(id.gid, key);
    return id;
  }
}
