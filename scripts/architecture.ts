/**
 * The architecture check: every import edge of the TypeScript sources against the rules in
 * scripts/architecture-rules.ts. Prints each forbidden edge as `from -> to (rule)`, each source
 * file no rule covers, and each relative import that names no file; exits 1 when there is any.
 *
 * Usage: npm run arch (from the sources, through tsx), or node dist/scripts/architecture.js [--json]
 * test/architecture.test.ts runs the same check in the unit suite.
 */
import { fileURLToPath } from 'node:url';
import { ARCHITECTURE_RULES, type ArchitectureRule } from './architecture-rules.js';
import { type Edge, listSources, REPO_ROOT, sourceGraph, type Target } from './import-graph.js';

export interface Violation {
  from: string;
  /** The target as printed: a repository path, `node:x`, `package:x`. */
  to: string;
  rule: string;
  line: number;
  kind: Edge['kind'];
}

export interface ArchitectureReport {
  files: number;
  edges: number;
  violations: Violation[];
  /** Source files no layer rule's `from` covers. */
  uncovered: string[];
  /** Imports that resolve to nothing (a relative path to no file, a workspace subpath). */
  unresolved: { from: string; specifier: string; line: number }[];
}

/** A compiled pattern: `area(path)` is the matched prefix (the file's own area), or undefined. */
interface Pattern {
  source: string;
  area(target: string): string | undefined;
}

export function compilePattern(p: string): Pattern {
  if (p === 'node:') return { source: p, area: (t) => (t.startsWith('node:') ? 'node:' : undefined) };
  if (p.startsWith('package:')) {
    const name = p.slice('package:'.length);
    return { source: p, area: (t) => (t.startsWith('package:') && (name === '*' || t === p) ? t : undefined) };
  }
  const body = p
    .split(/(\*\*|\*)/)
    .map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]+' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  const re = new RegExp(p.endsWith('/') || p === '**' ? `^(${body})` : `^(${body})$`);
  return {
    source: p,
    area: (t) => {
      if (t.startsWith('node:') || t.startsWith('package:')) return undefined;
      return re.exec(t)?.[1];
    },
  };
}

const describe = (t: Target): string => (t.type === 'file' ? t.path : t.type === 'builtin' ? t.name : t.type === 'package' ? `package:${t.name}` : t.specifier);

interface CompiledRule {
  rule: ArchitectureRule;
  from: Pattern[];
  notFrom: Pattern[];
  allow?: Pattern[];
  deny: Pattern[];
  unlessTo: Pattern[];
  exceptions: { from: Pattern[]; to: Pattern[] | undefined }[];
}

function compileRule(rule: ArchitectureRule): CompiledRule {
  const c = (ps: string[] | undefined): Pattern[] => (ps ?? []).map(compilePattern);
  const out: CompiledRule = {
    rule,
    from: c(rule.from),
    notFrom: c(rule.notFrom),
    deny: c(rule.deny),
    unlessTo: c(rule.unlessTo),
    exceptions: (rule.exceptions ?? []).map((e) => ({ from: c(e.from), to: e.to ? c(e.to) : undefined })),
  };
  if (rule.allow) out.allow = c(rule.allow);
  return out;
}

const matches = (ps: Pattern[], t: string): boolean => ps.some((p) => p.area(t) !== undefined);

/** The area `file` has under `rule` (the prefix its `from` matched), or undefined when the rule does not apply to it. */
function areaOf(rule: CompiledRule, file: string): string | undefined {
  if (matches(rule.notFrom, file)) return undefined;
  for (const p of rule.from) {
    const a = p.area(file);
    if (a !== undefined) return a;
  }
  return undefined;
}

/** Whether `rule` forbids `from` (in `area`) importing `to`. */
function forbids(rule: CompiledRule, area: string, from: string, to: Target): boolean {
  if (to.type === 'unresolved') return false; // reported on its own
  const target = describe(to);
  if (rule.exceptions.some((e) => matches(e.from, from) && (!e.to || matches(e.to, target)))) return false;
  if (rule.allow) {
    if (to.type === 'file' && to.path.startsWith(area)) return false;
    if (matches(rule.allow, target)) return false;
    if (to.type === 'builtin') return rule.rule.external?.builtins === false;
    if (to.type === 'package') return rule.rule.external?.packages === false;
    return true;
  }
  return matches(rule.deny, target) && !matches(rule.unlessTo, target);
}

/** Check `edges` of `files` against `rules`. */
export function checkEdges(files: readonly string[], edges: readonly Edge[], rules: readonly ArchitectureRule[] = ARCHITECTURE_RULES): ArchitectureReport {
  const compiled = rules.map(compileRule);
  const violations: Violation[] = [];
  const seen = new Set<string>();
  const unresolved: ArchitectureReport['unresolved'] = [];
  for (const e of edges) {
    if (e.to.type === 'unresolved') {
      unresolved.push({ from: e.from, specifier: e.specifier, line: e.line });
      continue;
    }
    for (const r of compiled) {
      const area = areaOf(r, e.from);
      if (area === undefined || !forbids(r, area, e.from, e.to)) continue;
      const to = describe(e.to);
      const key = `${e.from}\0${to}\0${r.rule.name}`;
      if (seen.has(key)) continue;
      seen.add(key);
      violations.push({ from: e.from, to, rule: r.rule.name, line: e.line, kind: e.kind });
    }
  }
  const uncovered = files.filter((f) => !compiled.some((r) => !r.rule.crossCutting && areaOf(r, f) !== undefined));
  return { files: files.length, edges: edges.length, violations, uncovered, unresolved };
}

/** The check over the repository's TypeScript sources. */
export function checkArchitecture(root: string = REPO_ROOT, rules: readonly ArchitectureRule[] = ARCHITECTURE_RULES): ArchitectureReport {
  const files = listSources(root);
  return checkEdges(files, sourceGraph(files, root), rules);
}

/** One line per problem, in the form the check prints: `from -> to (rule)`. */
export function formatReport(r: ArchitectureReport, rules: readonly ArchitectureRule[] = ARCHITECTURE_RULES): string[] {
  const lines = r.violations.map((v) => `${v.from} -> ${v.to} (${v.rule})`);
  for (const f of r.uncovered) lines.push(`${f}: no architecture rule covers this file (add its folder to scripts/architecture-rules.ts)`);
  for (const u of r.unresolved) lines.push(`${u.from}:${u.line} -> ${u.specifier} (unresolved: no such file or package entry)`);
  const broken = new Set(r.violations.map((v) => v.rule));
  for (const rule of rules) if (broken.has(rule.name)) lines.push(`  ${rule.name}: ${rule.why}`);
  return lines;
}

export function isClean(r: ArchitectureReport): boolean {
  return r.violations.length === 0 && r.uncovered.length === 0 && r.unresolved.length === 0;
}

function main(argv: string[]): number {
  const report = checkArchitecture();
  if (argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    for (const line of formatReport(report)) process.stdout.write(`${line}\n`);
    process.stdout.write(
      `architecture: ${report.files} files, ${report.edges} import edges, ${report.violations.length} forbidden, ${report.uncovered.length} uncovered, ${report.unresolved.length} unresolved\n`,
    );
  }
  return isClean(report) ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
