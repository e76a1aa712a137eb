/**
 * The campaign's HTML report: one self-contained file (no script, no external resource) with inline
 * SVG charts: outcomes by fault class, the recovery-time distribution, and, given a second run of
 * the same campaign with the other IOMMU setting, violations with and without the IOMMU side by side.
 */
import type { Summary } from './summary.js';
import { thunderclapSection } from './thunderclap.js';
import { OUTCOMES, type TrialRecord } from './trial.js';

const COLOURS: Record<string, string> = { recovered: '#2e7d32', 'failed-as-policy-says': '#f9a825', 'client-saw-error': '#1565c0', violation: '#c62828' };

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Stacked horizontal bars: one row per fault class, one segment per outcome. */
function outcomeBars(s: Summary): string {
  const rows = Object.entries(s.byFault);
  const width = 520;
  const h = 22;
  const bars = rows
    .map(([name, counts], i) => {
      const total = OUTCOMES.reduce((t, o) => t + counts[o], 0) || 1;
      let x = 140;
      const segs = OUTCOMES.map((o) => {
        const w = (counts[o] / total) * (width - 150);
        const r =
          w > 0
            ? `<rect x="${x.toFixed(1)}" y="${i * (h + 6)}" width="${w.toFixed(1)}" height="${h}" fill="${COLOURS[o]}"><title>${o}: ${counts[o]}</title></rect>`
            : '';
        x += w;
        return r;
      }).join('');
      return `<text x="0" y="${i * (h + 6) + 15}" font-size="12">${esc(name)} (${total})</text>${segs}`;
    })
    .join('');
  const legend = OUTCOMES.map(
    (o, i) =>
      `<rect x="${i * 130}" y="${rows.length * (h + 6) + 6}" width="10" height="10" fill="${COLOURS[o]}"/><text x="${i * 130 + 14}" y="${rows.length * (h + 6) + 15}" font-size="11">${o}</text>`,
  ).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${rows.length * (h + 6) + 26}">${bars}${legend}</svg>`;
}

/** A histogram of time to recover, in log2 buckets of milliseconds. */
function recoveryHistogram(records: readonly TrialRecord[]): string {
  const buckets = new Array<number>(16).fill(0);
  for (const r of records) if (r.timeToRecoverMs !== null) buckets[Math.min(15, Math.max(0, Math.ceil(Math.log2(Math.max(r.timeToRecoverMs, 0.125))) + 3))]!++;
  const max = Math.max(1, ...buckets);
  const bw = 30;
  const bars = buckets
    .map((n, i) => {
      const hh = (n / max) * 120;
      const label = 2 ** (i - 3);
      return `<rect x="${i * bw}" y="${130 - hh}" width="${bw - 4}" height="${hh}" fill="#455a64"><title>&lt;= ${label} ms: ${n}</title></rect><text x="${i * bw}" y="146" font-size="9">${label < 1 ? label.toFixed(2) : label}</text>`;
    })
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${16 * bw}" height="160">${bars}<text x="0" y="158" font-size="9">ms (upper bound of each bucket)</text></svg>`;
}

function sideBySide(a: Summary, b: Summary): string {
  const runs = [a, b].sort((x, y) => Number(y.iommu) - Number(x.iommu));
  const max = Math.max(1, ...runs.map((r) => r.violations));
  const bars = runs
    .map((r, i) => {
      const w = (r.violations / max) * 300;
      return `<text x="0" y="${i * 30 + 16}" font-size="12">IOMMU ${r.iommu ? 'on' : 'off'}</text><rect x="90" y="${i * 30}" width="${Math.max(w, 1).toFixed(1)}" height="22" fill="#c62828"/><text x="${95 + w}" y="${i * 30 + 16}" font-size="12">${r.violations} of ${r.trials}</text>`;
    })
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="480" height="64">${bars}</svg>`;
}

/** The findings as a table, like a fuzzer's crash list: fault class, symptom, trials, the replay command. */
function findingsTable(s: Summary): string {
  const list = s.findings ?? [];
  if (list.length === 0) return '<p>None: the driver survived every device fault (it reported it, or recovered).</p>';
  const rows = list
    .map(
      (f) =>
        `<tr><td>${esc(f.fault)}</td><td>${esc(f.symptom)}</td><td>${f.trials.length}: ${esc(f.trials.slice(0, 20).join(', '))}${f.trials.length > 20 ? ', ...' : ''}</td><td><code>${esc(f.replay)}</code></td></tr>`,
    )
    .join('');
  return `<p>Device faults the driver did not survive (it threw, hung or never finished starting): bugs in the driver, not violations of the sandbox.</p><table><tr><th>fault</th><th>symptom</th><th>trials</th><th>replay</th></tr>${rows}</table>`;
}

export function renderReport(summary: Summary, records: readonly TrialRecord[], other?: Summary): string {
  const rows = records
    .filter((r) => r.outcome === 'violation')
    .slice(0, 200)
    .map(
      (r) =>
        `<tr><td>${r.index}</td><td>${r.seed}</td><td>${esc(r.fault)}</td><td>${esc(r.firings.map((f) => f.detail).join('; '))}</td><td>${esc(r.violations.join('; '))}</td></tr>`,
    )
    .join('');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>dmabox campaign ${esc(summary.name)}</title>
<style>body{font:14px sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}</style></head>
<body><h1>Campaign ${esc(summary.name)}</h1>
<p>${summary.trials} trials, seed ${summary.seed}, IOMMU ${summary.iommu ? 'on' : 'OFF (passthrough: nothing confined)'}; fault fired in ${summary.fired};
${summary.trialsPerSecond} trials/s; <b>${summary.violations} violation(s)</b>.
Outcomes: ${OUTCOMES.map((o) => `${o} ${summary.outcomes[o]}`).join(', ')}.</p>
<h2>Outcomes by fault class</h2>${outcomeBars(summary)}
<h2>Time to recover</h2><p>${summary.timeToRecoverMs.count} trials; median ${summary.timeToRecoverMs.p50 ?? '-'} ms, 90th percentile ${summary.timeToRecoverMs.p90 ?? '-'} ms, max ${summary.timeToRecoverMs.max ?? '-'} ms.</p>${recoveryHistogram(records)}
${other ? `<h2>Violations with and without the IOMMU</h2>${sideBySide(summary, other)}` : ''}
<h2>Findings</h2>${findingsTable(summary)}
${summary.thunderclap ? thunderclapSection(summary.thunderclap, summary.iommu) : ''}
<h2>Violations</h2>${rows ? `<p>Each reruns with <code>dmabox campaign replay DIR --trial N</code>.</p><table><tr><th>trial</th><th>seed</th><th>fault</th><th>what fired</th><th>oracle</th></tr>${rows}</table>` : '<p>None.</p>'}
</body></html>
`;
}
