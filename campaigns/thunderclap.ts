/**
 * The Thunderclap campaign report: `e1000e.thunderclap` trials (a hostile 82574L reading the pages
 * around each TX buffer, writing into neighbouring pages, reusing reclaimed buffer addresses;
 * sim/e1000e/thunderclap.ts) summed over a campaign: every access, the refused ones and whether
 * each left an IOMMU fault naming the sandbox's device (an unlogged refusal is a violation in its
 * trial), pages outside the windows the device reached (a violation: must be 0 with the IOMMU on),
 * and what it could still read and write inside the sandbox's own windows — what a malicious
 * device sees of everything that shares a window (or a page) with a DMA buffer.
 */
import type { TrialRecord } from './trial.js';

export interface CampaignThunderclap {
  /** Trials of the class, and accesses the hostile device made over them. */
  trials: number;
  accesses: number;
  /** Refused by the IOMMU; of those, left no IOMMU fault naming the device (each one a violation). */
  refused: number;
  refusedUnlogged: number;
  /** Accesses outside every window that were not IOMMU faults (pages reached): must be 0. */
  outsideWindowsAllowed: number;
  /** Reads of reclaimed buffer addresses the IOMMU allowed (later packets' data seen). */
  reuseHits: number;
  /** What it could still see and change, per window of the sandbox. */
  inside: { window: string; holds: string; trials: number; bytesRead: number; bytesWritten: number; nonZeroBytesSeen: number }[];
}

/** Sum the Thunderclap part of the records; undefined when no trial had one. */
export function aggregateThunderclap(records: readonly TrialRecord[]): CampaignThunderclap | undefined {
  let t: CampaignThunderclap | undefined;
  const byWindow = new Map<string, CampaignThunderclap['inside'][number]>();
  for (const r of records) {
    const x = r.thunderclap;
    if (!x) continue;
    t ??= { trials: 0, accesses: 0, refused: 0, refusedUnlogged: 0, outsideWindowsAllowed: 0, reuseHits: 0, inside: [] };
    t.trials++;
    t.accesses += x.accesses;
    t.refused += x.refused;
    t.refusedUnlogged += x.refusedUnlogged;
    t.outsideWindowsAllowed += x.outsideWindowsAllowed;
    t.reuseHits += x.reuseHits;
    for (const w of x.inside) {
      let s = byWindow.get(w.window);
      if (!s) byWindow.set(w.window, (s = { window: w.window, holds: w.holds, trials: 0, bytesRead: 0, bytesWritten: 0, nonZeroBytesSeen: 0 }));
      s.trials++;
      s.bytesRead += w.bytesRead;
      s.bytesWritten += w.bytesWritten;
      s.nonZeroBytesSeen += w.nonZeroBytesSeen;
    }
  }
  if (t) t.inside = [...byWindow.values()].sort((a, b) => a.window.localeCompare(b.window));
  return t;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The HTML report's section: what the IOMMU refused, and what the hostile device could still see. */
export function thunderclapSection(t: CampaignThunderclap, iommu: boolean): string {
  const rows = t.inside
    .map(
      (w) =>
        `<tr><td>${esc(w.window)}</td><td>${esc(w.holds)}</td><td>${w.trials}</td><td>${w.bytesRead}</td><td>${w.nonZeroBytesSeen}</td><td>${w.bytesWritten}</td></tr>`,
    )
    .join('');
  const verdict =
    t.outsideWindowsAllowed === 0 && t.refusedUnlogged === 0
      ? `Every access outside the sandbox's windows was refused by the IOMMU and logged as a fault of the sandbox's device.`
      : `<b>${t.outsideWindowsAllowed} page(s) outside the windows reached${iommu ? '' : ' (IOMMU off: nothing confined)'}; ${t.refusedUnlogged} refused access(es) not logged.</b>`;
  return `<h2>Thunderclap: what a hostile device could still see</h2>
<p>${t.trials} trials of <code>e1000e.thunderclap</code>: ${t.accesses} DMA accesses by the hostile 82574L, ${t.refused} refused by the IOMMU (${t.refusedUnlogged} of them left no fault naming the device), ${t.outsideWindowsAllowed} outside every window allowed. ${verdict}</p>
<p>Inside the sandbox's own windows the device is not stopped: it read and wrote what shares a window (and a page) with its DMA buffers${t.reuseHits ? `, and read ${t.reuseHits} reclaimed buffer(s) again after the driver handed them on` : ''}. Keep nothing there a device must not see.</p>
${rows ? `<table><tr><th>window</th><th>holds</th><th>trials</th><th>bytes read</th><th>non-zero bytes seen</th><th>bytes written</th></tr>${rows}</table>` : '<p>It reached nothing inside the windows.</p>'}
`;
}
