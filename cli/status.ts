/**
 * `dmabox status [--json] [--control PATH]`: ask the running manager (`dmabox up`) over its control
 * socket: per sandbox its state, driver and kind, container pid and uid, its device process (a
 * simulated device's model: pid and counters), uptime, restarts, faults,
 * windows, and its service's counters (block I/O, or frames). Every line of an unconfined sandbox says UNCONFINED.
 */
import { capNames } from '../sandbox/manager/privilege.js';
import { queryStatus, defaultControlPath } from '../sandbox/manager/manager.js';

const USAGE = `usage: dmabox status [--json] [--control PATH]\n`;

export interface Io {
  out(s: string): void;
  err(s: string): void;
}
const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

interface SandboxStatus {
  name: string;
  state: string;
  device: string;
  driver: string;
  pid: number | null;
  uid: number;
  gid: number;
  uidFromPolicy: boolean;
  cgroup?: string | null;
  /** The confinement its container lacks (no namespaces, no cgroup, no identity of its own), in words. */
  confinementMissing?: string[];
  unconfined: boolean;
  uptimeMs: number;
  restarts: number;
  crashes: number;
  /** Errors the device signalled (AER); absent from a manager before the field existed. */
  deviceErrors?: number;
  violations: number;
  faults: number;
  lastFault: string | null;
  windows: { label: string; iova: string; size: number; access: string }[];
  kind?: string;
  io?: { completed: number; errors: number; bytes: number; pending: number; replayed: number };
  net?: { attached: boolean; link: boolean; txFrames: number; rxFrames: number; lostInRestart: number; violations: number };
  /** A simulated device's process (the model runs there, not in the manager). */
  deviceProcess?: { pid: number | null; ready: boolean; started: number; uptimeMs: number; counters: Record<string, number> } | null;
  /** The spares waiting (restart.spare), and the restarts they took over. */
  spares?: { container: number | null; deviceProcess: number | null; takeovers: number } | null;
}

function dur(ms: number): string {
  const s = Math.floor(ms / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

function size(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(n % (1 << 20) ? 1 : 0)}MiB` : `${n / 1024}KiB`;
}

type ThreadCaps = { tid: number; name: string; uid: number; inh: string; prm: string; eff: string; bnd: string; amb: string; noNewPrivs: boolean };
type CapsStatus = { threads: ThreadCaps[] } | { error: string };

/** One process's threads: a summary line, then each thread's uid and capability sets (hex, as /proc shows them). */
function capsLines(who: string, c: CapsStatus | undefined): string {
  if (!c) return '';
  if ('error' in c) return `  ${who} capabilities unknown (${c.error})\n`;
  const zero = (h: string): boolean => /^0+$/.test(h);
  const holding = c.threads.filter((t) => !zero(t.prm) || !zero(t.eff) || !zero(t.amb)).length;
  const held = [...new Set(c.threads.map((t) => capNames(BigInt(`0x${t.prm}`) | BigInt(`0x${t.eff}`)).join(',')))].filter((x) => x !== '');
  let out = `  ${who} threads ${c.threads.length}: ${holding === 0 ? 'no capability on any thread' : `${holding} hold ${held.join(' or ')}`}, no_new_privs on ${c.threads.filter((t) => t.noNewPrivs).length}\n`;
  for (const t of c.threads)
    out += `    ${who} tid ${t.tid} ${t.name} uid ${t.uid} CapInh ${t.inh} CapPrm ${t.prm} CapEff ${t.eff} CapBnd ${t.bnd} CapAmb ${t.amb}${t.noNewPrivs ? ' no_new_privs' : ''}\n`;
  return out;
}

export function formatStatus(st: {
  manager: { pid: number; uid: number; gid?: number; root: boolean; dropped?: boolean; uptimeMs: number; control: string; caps?: CapsStatus };
  spawner?: { pid: number; caps: CapsStatus } | null;
  fatal?: string;
  sandboxes: SandboxStatus[];
}): string {
  const m = st.manager;
  const how = m.dropped ? ' (left root after set-up)' : m.root ? ' (ROOT: --keep-privileges)' : ' (not root: containers run as this user)';
  let out = `manager pid ${m.pid} uid ${m.uid}${m.gid !== undefined ? ` gid ${m.gid}` : ''}${how}, up ${dur(m.uptimeMs)}, control ${m.control}\n`;
  if (st.fatal) out += `  FATAL: ${st.fatal}\n`;
  out += capsLines('manager', m.caps);
  if (st.spawner) out += `spawner pid ${st.spawner.pid}\n${capsLines('spawner', st.spawner.caps)}`;
  for (const s of st.sandboxes) {
    const u = s.unconfined ? ' UNCONFINED' : '';
    out += `${s.name}${u}: ${s.state}, ${s.device} driver ${s.driver}${s.kind ? ` (${s.kind})` : ''}, pid ${s.pid ?? '-'} uid ${s.uid} gid ${s.gid}${s.uidFromPolicy ? '' : ' (invoking user)'}, up ${dur(s.uptimeMs)}, restarts ${s.restarts}, faults ${s.faults}, violations ${s.violations}${s.deviceErrors ? `, device errors ${s.deviceErrors}` : ''}\n`;
    if (s.io)
      out += `  ${s.name}${u} io: ${s.io.completed} done, ${s.io.errors} errors, ${s.io.bytes} bytes, ${s.io.pending} pending, ${s.io.replayed} replayed\n`;
    if (s.net)
      out += `  ${s.name}${u} net: ${s.net.attached ? 'attached' : 'detached'}, link ${s.net.link ? 'up' : 'down'}, ${s.net.txFrames} frames out, ${s.net.rxFrames} in, ${s.net.lostInRestart} lost in restarts, ${s.net.violations} violations\n`;
    out += `  ${s.name}${u} windows: ${s.windows.map((w) => `${w.label} ${w.iova}+${size(w.size)} ${w.access}`).join(', ')}\n`;
    const d = s.deviceProcess;
    if (d) {
      const c = Object.entries(d.counters)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
      out += `  ${s.name}${u} device process: pid ${d.pid ?? '-'}, up ${dur(d.uptimeMs)}, ${d.started} started${c ? `; ${c}` : ''}\n`;
    }
    const sp = s.spares;
    if (sp)
      out += `  ${s.name}${u} spares: container pid ${sp.container ?? '-'}, device process pid ${sp.deviceProcess ?? '-'}, ${sp.takeovers} restart(s) taken over\n`;
    if (s.lastFault) out += `  ${s.name}${u} last fault: ${s.lastFault}\n`;
    if (s.cgroup) out += `  ${s.name}${u} cgroup: ${s.cgroup}\n`;
    for (const m of s.confinementMissing ?? []) out += `  ${s.name}${u} CONFINEMENT MISSING: ${m}\n`;
  }
  return out;
}

export async function run(argv: string[], io: Io = stdio): Promise<number> {
  let json = false;
  let control = defaultControlPath();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') json = true;
    else if (a === '--control' && argv[i + 1]) control = argv[++i]!;
    else {
      io.err(`dmabox status: unknown argument ${a}\n${USAGE}`);
      return 2;
    }
  }
  const st = await queryStatus(control);
  io.out(json ? `${JSON.stringify(st, null, 2)}\n` : formatStatus(st as never));
  return 0;
}
