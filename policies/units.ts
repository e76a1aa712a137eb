/**
 * Sizes and durations as people write them in policies: `64MiB`, `4096`, `500us`, `100ms`, `30s`.
 * Binary units only (KiB, MiB, GiB, TiB): "MB" is ambiguous between 10^6 and 2^20, and a DMA window
 * is sized in IOMMU pages, so we refuse to guess.
 */

const SIZE_UNITS: Record<string, number> = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };
const DURATION_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The JSON Schema / RegExp pattern a size string must match. */
export const SIZE_PATTERN = '^[0-9]+ ?(B|KiB|MiB|GiB|TiB)$';
/** The JSON Schema / RegExp pattern a duration string must match. */
export const DURATION_PATTERN = '^[0-9]+ ?(us|ms|s|m|h)$';

const SIZE_RE = new RegExp(SIZE_PATTERN);
const DURATION_RE = new RegExp(DURATION_PATTERN);

/** Bytes from `'64MiB'` or a whole number of bytes; `undefined` when it is neither. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string' || !SIZE_RE.test(value)) return undefined;
  const m = /^([0-9]+) ?([A-Za-z]+)$/.exec(value)!;
  const n = Number(m[1]) * SIZE_UNITS[m[2]!]!;
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Milliseconds from `'500us'`, `'100ms'`, `'30s'`, `'5m'`, `'1h'` or a whole number of
 * milliseconds. Microseconds give fractional milliseconds (`'500us'` is 0.5).
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string' || !DURATION_RE.test(value)) return undefined;
  const m = /^([0-9]+) ?([a-z]+)$/.exec(value)!;
  const count = Number(m[1]);
  if (!Number.isSafeInteger(count)) return undefined;
  if (m[2] === 'us') return count / 1000;
  const n = count * DURATION_UNITS[m[2]!]!;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The shortest exact spelling of a byte count: 67108864 -> '64MiB', 1000 -> '1000B'. */
export function formatSize(bytes: number): string {
  for (const unit of ['TiB', 'GiB', 'MiB', 'KiB']) {
    const k = SIZE_UNITS[unit]!;
    if (bytes >= k && bytes % k === 0) return `${bytes / k}${unit}`;
  }
  return `${bytes}B`;
}

/** The shortest exact spelling of a duration: 30000 -> '30s', 150 -> '150ms', 0.5 -> '500us'. */
export function formatDuration(ms: number): string {
  if (!Number.isInteger(ms)) return `${Math.round(ms * 1000)}us`;
  for (const unit of ['h', 'm', 's']) {
    const k = DURATION_UNITS[unit]!;
    if (ms >= k && ms % k === 0) return `${ms / k}${unit}`;
  }
  return `${ms}ms`;
}
