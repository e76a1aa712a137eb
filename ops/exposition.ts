/**
 * The Prometheus text exposition format, version 0.0.4
 * (prometheus.io/docs/instrumenting/exposition_formats/): one `# HELP` and one `# TYPE` line per
 * metric family, then its samples `name{label="value",...} number`, one per line, the text ending
 * with a newline. Escaping: in HELP text `\` and newline; in label values `\`, `"` and newline.
 * Numbers are Go-style floats; `+Inf`, `-Inf` and `NaN` are spelled so.
 *
 * A histogram family `x` is written as `x_bucket{le="..."}` (cumulative, ending with `le="+Inf"`),
 * `x_sum` and `x_count` (equal to the +Inf bucket). Names follow Prometheus's conventions: base
 * units (seconds, bytes) in the name, `_total` on counters.
 */
import { OpsError } from './errors.js';

export type MetricType = 'counter' | 'gauge' | 'histogram';
export type Labels = Readonly<Record<string, string>>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function escapeLabelValue(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const parts: string[] = [];
  for (const k of Object.keys(labels)) {
    if (!LABEL.test(k) || k.startsWith('__')) throw new OpsError('ERR_OPS_METRIC', `label name '${k}' is not a Prometheus label name`);
    parts.push(`${k}="${escapeLabelValue(labels[k]!)}"`);
  }
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** Writes families in the order they are declared; each family's samples follow its HELP and TYPE. */
export class Exposition {
  private readonly lines: string[] = [];
  private readonly seen = new Set<string>();
  private current: { name: string; type: MetricType } | undefined;

  /** Start a family. A name used twice is a programming error (Prometheus rejects it). */
  family(name: string, type: MetricType, help: string): this {
    if (!NAME.test(name)) throw new OpsError('ERR_OPS_METRIC', `'${name}' is not a Prometheus metric name`);
    if (this.seen.has(name)) throw new OpsError('ERR_OPS_METRIC', `metric family '${name}' declared twice: every family is written once`);
    if (type === 'counter' && !name.endsWith('_total')) throw new OpsError('ERR_OPS_METRIC', `counter '${name}' must end in _total`);
    this.seen.add(name);
    this.current = { name, type };
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    return this;
  }

  /** One sample of the current counter or gauge family. */
  sample(labels: Labels, value: number): this {
    const c = this.need('sample');
    if (c.type === 'histogram') throw new OpsError('ERR_OPS_METRIC', `'${c.name}' is a histogram: write it with histogram()`);
    this.lines.push(`${c.name}${labelText(labels)} ${formatValue(value)}`);
    return this;
  }

  /**
   * One series of the current histogram family: `bounds` the finite upper bounds (ascending),
   * `cumulative` the count at or below each bound followed by the total (bounds.length + 1 values).
   */
  histogram(labels: Labels, bounds: readonly number[], cumulative: ArrayLike<number>, sum: number): this {
    const c = this.need('histogram');
    if (c.type !== 'histogram') throw new OpsError('ERR_OPS_METRIC', `'${c.name}' is a ${c.type}, not a histogram`);
    for (let i = 0; i < bounds.length; i++)
      this.lines.push(`${c.name}_bucket${labelText(labels, ['le', formatValue(bounds[i]!)])} ${formatValue(cumulative[i]!)}`);
    const count = cumulative[bounds.length]!;
    this.lines.push(`${c.name}_bucket${labelText(labels, ['le', '+Inf'])} ${formatValue(count)}`);
    this.lines.push(`${c.name}_sum${labelText(labels)} ${formatValue(sum)}`, `${c.name}_count${labelText(labels)} ${formatValue(count)}`);
    return this;
  }

  text(): string {
    return this.lines.length === 0 ? '' : `${this.lines.join('\n')}\n`;
  }

  private need(what: string): { name: string; type: MetricType } {
    if (!this.current) throw new OpsError('ERR_OPS_METRIC', `${what}() before family(): declare the family first`);
    return this.current;
  }
}
