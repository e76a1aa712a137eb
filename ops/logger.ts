/**
 * The one logger of `dmabox up`: every line the manager, its supervisors and the linkbacks print
 * goes through it, in one of three formats.
 *
 * - `text` (the default on a terminal): `HH:MM:SS.mmm sandbox event [level]: message`, or the
 *   message alone for a line about no sandbox;
 * - `json`: one object per line: `{"time":ISO-8601,"level","sandbox","event","message","fields"}`
 *   (`sandbox` null for the manager's own lines, `fields` an object, maybe empty);
 * - `journal` (the default when JOURNAL_STREAM is set, i.e. systemd connected stdout to journald):
 *   the syslog priority prefix `<N>` that journald reads (sd-daemon(3): 3 err, 4 warning, 6 info,
 *   7 debug), then the text line without the time (journald stamps each line itself).
 */
import { OpsError } from './errors.js';

export type LogFormat = 'text' | 'json' | 'journal';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json', 'journal'];

/** sd-daemon(3) / syslog(3) priorities. */
export const SYSLOG_PRIORITY: Readonly<Record<LogLevel, number>> = Object.freeze({ error: 3, warn: 4, info: 6, debug: 7 });

export interface LogRecord {
  /** ms since the epoch (default now). */
  time?: number;
  level?: LogLevel;
  /** The sandbox it is about (a policy name), or none for the manager's own lines. */
  sandbox?: string;
  /** What happened, one short word (`ready`, `exit`, `linkback`, `up`, ...). */
  event: string;
  message: string;
  fields?: Readonly<Record<string, unknown>>;
  /** Text and journal: print the message alone (a line that names its sandbox itself, as `dmabox up` always printed it). */
  bare?: boolean;
  /** Send it to the error stream (text format: as before, problems the user must see). */
  stderr?: boolean;
}

export interface LogSink {
  out(s: string): void;
  err(s: string): void;
}

/** The format `--log-format` names, or the default: journal under journald, text otherwise. */
export function chooseLogFormat(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): LogFormat {
  if (flag === undefined) return env.JOURNAL_STREAM ? 'journal' : 'text';
  if ((LOG_FORMATS as readonly string[]).includes(flag)) return flag as LogFormat;
  throw new OpsError('ERR_OPS_LOG_FORMAT', `--log-format ${JSON.stringify(flag)} is not a log format`, { fix: `use one of ${LOG_FORMATS.join(', ')}` });
}

export class Logger {
  constructor(
    readonly format: LogFormat,
    private readonly sink: LogSink,
  ) {}

  log(r: LogRecord): void {
    const line = this.render(r);
    if (r.stderr) this.sink.err(line);
    else this.sink.out(line);
  }

  render(r: LogRecord): string {
    const time = r.time ?? Date.now();
    const level = r.level ?? 'info';
    if (this.format === 'json') {
      return `${JSON.stringify({ time: new Date(time).toISOString(), level, sandbox: r.sandbox ?? null, event: r.event, message: r.message, fields: r.fields ?? {} })}\n`;
    }
    // An unconfined sandbox is shouted on every line of it (README: `unconfined: true`).
    const who = r.sandbox === undefined ? '' : `${r.sandbox}${r.fields?.unconfined === true ? ' UNCONFINED' : ''}`;
    const body = r.sandbox === undefined || r.bare ? r.message : `${who} ${r.event}${level !== 'info' ? ` [${level}]` : ''}: ${r.message}`;
    if (this.format === 'journal') {
      // One record per line for journald: a message spanning lines gets the prefix on each.
      const p = `<${SYSLOG_PRIORITY[level]}>`;
      return `${body
        .split('\n')
        .map((l) => p + l)
        .join('\n')}\n`;
    }
    return r.sandbox === undefined || r.bare ? `${body}\n` : `${new Date(time).toISOString().slice(11, 23)} ${body}\n`;
  }
}
