/**
 * The host side of the lab's monitor relay: a test in the guest asks the host to make QEMU raise a
 * device error (`pcie_aer_inject_error`), which only QEMU's monitor can do. The guest writes a
 * request file into the run channel (9p, uncached): `relay/ID.req`, one JSON object; the launcher
 * polls that folder, checks the request against the few commands the tests need, runs it through
 * QMP's `human-monitor-command`, and answers in `relay/ID.res`. Everything else is refused with
 * ERR_LAB_RELAY: the guest never writes a monitor command line itself, so it cannot quit QEMU,
 * read host files or reconfigure the machine.
 *
 * Requests (RelayRequest): `{ "op": "aer-inject", "device": "labaer0" | "labrp0", "error": NAME,
 * "correctable"?: bool, "advisory"?: bool }` -> `pcie_aer_inject_error [-a] [-c] DEVICE NAME`.
 * Answers: `{ "ok": true, "output": TEXT }` or `{ "ok": false, "code": "ERR_LAB_RELAY", "message": ... }`.
 */
import { existsSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplianceError } from '../image/errors.js';
import { DEVICE_ERROR_SLOTS } from './machine.js';
import type { QmpClient } from './qmp.js';

/** The run channel's relay folder, as the host and the guest name it. */
export const RELAY_DIR = 'relay';
/** A request file is a few dozen bytes; a larger one is refused unread. */
const MAX_REQUEST = 4096;
const ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Uncorrectable (AER Uncorrectable Error Status, PCIe 3.0 §7.10.2) and correctable (§7.10.5) error names QEMU's HMP knows. */
export const AER_UNCORRECTABLE = [
  'DLP',
  'SDN',
  'POISON_TLP',
  'FCP',
  'COMP_TIMEOUT',
  'COMP_ABORT',
  'UNX_COMP',
  'RX_OVERFLOW',
  'MAL_TLP',
  'ECRC',
  'UNSUP',
  'ACSV',
  'UNCOR_INTERNAL',
] as const;
export const AER_CORRECTABLE = ['RCVR', 'BAD_TLP', 'BAD_DLLP', 'REPLAY_NUM', 'REPLAY_TMR', 'ADV_NONFATAL', 'CORR_INTERNAL', 'HL_OVERFLOW'] as const;
const DEVICES: readonly string[] = [DEVICE_ERROR_SLOTS.aerE1000e.id, DEVICE_ERROR_SLOTS.rootPort.id];

export interface RelayRequest {
  op: 'aer-inject';
  device: string;
  error: string;
  correctable?: boolean;
  advisory?: boolean;
}

export type RelayAnswer = { ok: true; output: string } | { ok: false; code: string; message: string };

/** The HMP command line of a checked request; throws ERR_LAB_RELAY for anything else. */
export function relayCommand(req: unknown): string {
  const bad = (why: string): ApplianceError =>
    new ApplianceError('ERR_LAB_RELAY', `relay request refused: ${why}`, {
      fix: `send { op: 'aer-inject', device: ${DEVICES.map((d) => `'${d}'`).join(' | ')}, error: NAME, correctable?, advisory? }`,
    });
  if (typeof req !== 'object' || req === null || Array.isArray(req)) throw bad('not a JSON object');
  const r = req as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!['op', 'device', 'error', 'correctable', 'advisory'].includes(k)) throw bad(`unknown field '${k}'`);
  if (r.op !== 'aer-inject') throw bad(`op '${String(r.op)}' is not one the relay runs (only 'aer-inject')`);
  if (typeof r.device !== 'string' || !DEVICES.includes(r.device)) throw bad(`device '${String(r.device)}' is not one of ${DEVICES.join(', ')}`);
  for (const k of ['correctable', 'advisory'] as const) if (r[k] !== undefined && typeof r[k] !== 'boolean') throw bad(`${k} must be true or false`);
  const names: readonly string[] = r.correctable === true ? AER_CORRECTABLE : AER_UNCORRECTABLE;
  if (typeof r.error !== 'string' || !names.includes(r.error))
    throw bad(`error '${String(r.error)}' is not a${r.correctable === true ? ' correctable' : 'n uncorrectable'} AER error name (${names.join(', ')})`);
  return ['pcie_aer_inject_error', ...(r.advisory === true ? ['-a'] : []), ...(r.correctable === true ? ['-c'] : []), r.device, r.error].join(' ');
}

/**
 * Polls `runDir/relay` every `intervalMs` and answers each new request through `qmp` (connected
 * lazily, once QEMU listens). Requests are handled one at a time, in name order.
 */
export class MonitorRelay {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly seen = new Set<string>();
  private qmp: QmpClient | undefined;
  /** Requests answered (ok or refused), for the launcher's summary. */
  handled = 0;

  constructor(
    private readonly dir: string,
    private readonly connectQmp: () => Promise<QmpClient>,
    private readonly intervalMs = 50,
    private readonly commandTimeoutMs = 10_000,
  ) {}

  start(): void {
    // A pass that fails (the run folder going away as QEMU ends) is dropped: the next one, if any, retries.
    this.timer = setInterval(() => {
      this.tick().catch(() => undefined);
    }, this.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.qmp?.close();
    this.qmp = undefined;
  }

  /** One pass over the folder (exported for tests through start/stop; safe to call directly). */
  async tick(): Promise<void> {
    if (this.busy || !existsSync(this.dir)) return;
    this.busy = true;
    try {
      const ids = readdirSync(this.dir)
        .filter((f) => f.endsWith('.req'))
        .map((f) => f.slice(0, -4))
        .filter((id) => !this.seen.has(id))
        .sort();
      for (const id of ids) {
        this.seen.add(id);
        await this.answer(id);
      }
    } finally {
      this.busy = false;
    }
  }

  private async answer(id: string): Promise<void> {
    let ans: RelayAnswer;
    try {
      if (!ID.test(id)) throw new ApplianceError('ERR_LAB_RELAY', `relay request refused: id '${id.slice(0, 80)}' is not 1-64 letters, digits, _ or -`);
      const file = join(this.dir, `${id}.req`);
      if (statSync(file).size > MAX_REQUEST) throw new ApplianceError('ERR_LAB_RELAY', `relay request refused: larger than ${MAX_REQUEST} bytes`);
      let req: unknown;
      try {
        req = JSON.parse(readFileSync(file, 'utf8'));
      } catch {
        throw new ApplianceError('ERR_LAB_RELAY', 'relay request refused: not JSON');
      }
      const line = relayCommand(req);
      this.qmp ??= await this.connectQmp();
      const output = await this.qmp.hmp(line, this.commandTimeoutMs);
      ans = { ok: true, output };
    } catch (e) {
      const err = e as { code?: string; message?: string };
      ans = { ok: false, code: err.code ?? 'ERR_LAB_RELAY', message: err.message ?? String(e) };
    }
    this.handled++;
    if (!ID.test(id)) return; // no answer file under a name the relay refused
    const tmp = join(this.dir, `${id}.res.tmp`);
    writeFileSync(tmp, JSON.stringify(ans));
    renameSync(tmp, join(this.dir, `${id}.res`));
  }
}
