/**
 * `dmabox status [--json] [--control PATH]`: ask the running manager (`dmabox up`) over its control
 * socket: per sandbox its state, driver and kind, container pid and uid, its device process (a
 * simulated device's model: pid and counters), uptime, restarts, faults,
 * windows, and its service's counters (block I/O, or frames). Every line of an unconfined sandbox says UNCONFINED.
 */
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
  unconfined: boolean;
  uptimeMs: number;
  restarts: number;
  crashes: number;
  violations: number;
  faults: number;
  lastFault: string | null;
  windows: { label: string; iova: string; size: number; access: string }[];
  kind?: string;
  io?: { completed: number; errors: number; bytes: number; pending: number; replayed: number };
  net?: { attached: boolean; link: boolean; txFrames: number; rxFrames: number; lostInRestart: number; violations: number };
  /** A simulated device's process (the model runs there, not in the manager). */
  deviceProcess?: { pid: number | null; ready: boolean; started: number; uptimeMs: number; counters: Record<string, number> } | null;
}

function dur(ms: number): string {
  const s = Math.floor(ms / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

function size(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(n % (1 << 20) ? 1 : 0)}MiB` : `${n / 1024}KiB`;
}

type CapsStatus = { dropped: boolean; effective: string[]; bounding: number; noNewPrivs: boolean } | { error: string };

/** What the manager still holds: `caps CAP_SETUID,CAP_SETGID,CAP_KILL (dropped after set-up)`. */
function capsLine(c: CapsStatus | undefined): string {
  if (!c) return '';
  if ('error' in c) return `, caps unknown (${c.error})`;
  const list = c.effective.length ? c.effective.join(',') : 'none';
  return `, caps ${list}${c.dropped ? ' (dropped after set-up)' : c.effective.length > 3 ? ' (NOT dropped: --keep-privileges or not root)' : ''}`;
}

export function formatStatus(st: {
  manager: { pid: number; uid: number; root: boolean; uptimeMs: number; control: string; caps?: CapsStatus };
  sandboxes: SandboxStatus[];
}): string {
  const m = st.manager;
  let out = `manager pid ${m.pid} uid ${m.uid}${m.root ? '' : ' (not root: containers run as this user)'}${capsLine(m.caps)}, up ${dur(m.uptimeMs)}, control ${m.control}\n`;
  for (const s of st.sandboxes) {
    const u = s.unconfined ? ' UNCONFINED' : '';
    out += `${s.name}${u}: ${s.state}, ${s.device} driver ${s.driver}${s.kind ? ` (${s.kind})` : ''}, pid ${s.pid ?? '-'} uid ${s.uid} gid ${s.gid}${s.uidFromPolicy ? '' : ' (invoking user)'}, up ${dur(s.uptimeMs)}, restarts ${s.restarts}, faults ${s.faults}, violations ${s.violations}\n`;
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
    if (s.lastFault) out += `  ${s.name}${u} last fault: ${s.lastFault}\n`;
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
