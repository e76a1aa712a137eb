/**
 * Building and loading one mutant per trial. The sites of the chosen operators in the chosen files
 * (operators.ts over scanner.ts) are listed once; a trial's mutation is drawn from its seed alone
 * (an operator among those with sites, then one of its sites), so shards and `replay` agree. The
 * mutant is written to a temporary folder: the mutated file and every file that imports it
 * (transitively, up to the driver's module) under `m<N>/`, the rest of the graph once under
 * `base/`, every file with its loops guarded (instrument.ts); a fresh folder is a fresh module URL,
 * so each mutant is evaluated anew. A mutant that does not parse (V8's SyntaxError at import) is
 * re-drawn from the same stream. A mutant whose module throws while it is evaluated is loaded as a
 * driver whose every start fails with that error, as a container would see it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { mixSeed, Rng } from '../../common/prng.js';
import { DRIVER_CONTRACT } from '../../drivers/contract/driver.js';
import type { BlockDriverModule } from '../trial.js';
import { MutateError } from './errors.js';
import { globMatch, readGraph, relativeImports, type DriverGraph, type GraphFile } from './graph.js';
import { instrument } from './instrument.js';
import { findSites, MUTATION_OPERATORS, type MutationOperator, type Site } from './operators.js';
import { scan } from './scanner.js';

/** What a trial record says about its mutant: enough to rebuild it and to read it. */
export interface Mutation {
  /** The file, relative to the driver graph's common folder. */
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly operator: MutationOperator;
  readonly before: string;
  readonly after: string;
  /** Mutants drawn before this one that did not parse. */
  readonly redrawn: number;
  /** Set when the mutant's module threw while it was evaluated (every start then fails). */
  readonly loadError?: string;
}

export interface MutationParams {
  readonly operators: readonly string[];
  /** Patterns relative to the driver module's folder (`*` within a segment, `**` across). */
  readonly files: readonly string[];
}

const GUARD_FILE = fileURLToPath(new URL('./guard.js', import.meta.url));
const MAX_DRAWS = 64;
const SNIPPET = 60;

interface Candidate {
  readonly file: GraphFile;
  readonly site: Site;
}

function snippet(s: string): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length > SNIPPET ? `${one.slice(0, SNIPPET - 3)}...` : one;
}

function failing(error: string): BlockDriverModule {
  return {
    contract: DRIVER_CONTRACT,
    name: 'mutant',
    kind: 'block',
    start: () => Promise.reject(new MutateError('ERR_MUTATE_LOAD', `the mutant's module cannot be used: ${error}`)),
  } as BlockDriverModule;
}

export class Mutator {
  private readonly dir: string;
  private baseWritten = false;
  private built = 0;
  private readonly cache = new Map<string, { module: BlockDriverModule; loadError?: string }>();
  /** Files importing each file (the reverse edges). */
  private readonly importers = new Map<string, string[]>();

  private constructor(
    readonly graph: DriverGraph,
    readonly sites: ReadonlyMap<MutationOperator, readonly Candidate[]>,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'dmabox-mutants-'));
    for (const f of graph.files.values())
      for (const i of f.imports) {
        const list = this.importers.get(i.file) ?? [];
        if (!list.includes(f.path)) list.push(f.path);
        this.importers.set(i.file, list);
      }
  }

  /** The driver module `entry` and its graph, with the sites of `params` listed; throws MutateError when there are none. */
  static async create(entry: string, params: MutationParams): Promise<Mutator> {
    const graph = await readGraph(entry);
    const home = dirname(entry);
    const chosen = [...graph.files.values()].filter((f) => params.files.some((p) => globMatch(p, relative(home, f.path).split(sep).join('/'))));
    if (!chosen.length)
      throw new MutateError(
        'ERR_MUTATE_SITES',
        `mutation: files ${JSON.stringify(params.files)} match none of the driver's modules (relative to ${home}: ${[...graph.files.values()].map((f) => relative(home, f.path).split(sep).join('/')).join(', ')})`,
        { fix: 'name the driver’s files relative to its module’s folder, e.g. files: ["*.js"] or ["queue.js", "../kit/*.js"]' },
      );
    const sites = new Map<MutationOperator, Candidate[]>();
    for (const f of chosen) {
      const tokens = scan(f.source);
      const skip = (offset: number) => f.imports.some((i) => offset >= i.ss && offset < i.se);
      for (const op of MUTATION_OPERATORS) {
        if (!params.operators.includes(op)) continue;
        const list = sites.get(op) ?? [];
        for (const site of findSites(op, tokens, f.source, skip)) list.push({ file: f, site });
        sites.set(op, list);
      }
    }
    for (const [op, list] of sites) if (!list.length) sites.delete(op);
    if (!sites.size)
      throw new MutateError('ERR_MUTATE_SITES', `mutation: operators ${params.operators.join(', ')} have no site in ${chosen.map((f) => f.rel).join(', ')}`, {
        fix: 'add operators or files (campaigns/README.md lists the operators)',
      });
    return new Mutator(graph, sites);
  }

  /** How many sites each operator has. */
  counts(): Record<string, number> {
    return Object.fromEntries([...this.sites].map(([op, l]) => [op, l.length]));
  }

  /** The k-th candidate of a trial's stream (k = 0, 1, ... as mutants fail to parse). */
  private *draws(seed: number): Generator<Candidate> {
    const rng = new Rng(mixSeed(seed, 0x6d757461));
    const ops = [...this.sites.keys()];
    for (;;) {
      const list = this.sites.get(rng.pick(ops))!;
      yield list[rng.below(list.length)]!;
    }
  }

  /** Write the unmutated graph, loops guarded, once. */
  private writeBase(): void {
    if (this.baseWritten) return;
    for (const f of this.graph.files.values()) {
      const to = join(this.dir, 'base', f.rel);
      mkdirSync(dirname(to), { recursive: true });
      writeFileSync(to, instrument(f.source, GUARD_FILE));
    }
    this.baseWritten = true;
  }

  /** The mutated file and every file that imports it, up to the entry. */
  private affected(path: string): Set<string> {
    const out = new Set<string>([path]);
    const queue = [path];
    while (queue.length)
      for (const by of this.importers.get(queue.shift()!) ?? [])
        if (!out.has(by)) {
          out.add(by);
          queue.push(by);
        }
    return out;
  }

  /** Write a mutant's folder; returns the URL of its entry, or undefined when its text cannot even be scanned. */
  private async write(c: Candidate): Promise<string | undefined> {
    this.writeBase();
    const mdir = join(this.dir, `m${this.built++}`);
    for (const path of this.affected(c.file.path)) {
      const f = this.graph.files.get(path)!;
      let text = f === c.file ? f.source.slice(0, c.site.start) + c.site.after + f.source.slice(c.site.end) : f.source;
      try {
        text = instrument(text, GUARD_FILE);
        // Imports of files this mutant leaves alone go to the shared unmutated copies.
        const imports = await relativeImports(text, path);
        const affected = this.affected(c.file.path);
        for (const i of imports.sort((a, b) => b.s - a.s)) {
          if (affected.has(i.file)) continue;
          const rel = this.graph.files.get(i.file)?.rel;
          if (rel === undefined) continue;
          text = text.slice(0, i.s) + pathToFileURL(join(this.dir, 'base', rel)).href + text.slice(i.e);
        }
      } catch (e) {
        if (e instanceof MutateError) return undefined;
        throw e;
      }
      const to = join(mdir, f.rel);
      mkdirSync(dirname(to), { recursive: true });
      writeFileSync(to, text);
    }
    return pathToFileURL(join(mdir, this.graph.files.get(this.graph.entry)!.rel)).href;
  }

  /** Build and import one candidate's mutant; undefined when it does not parse. */
  private async build(c: Candidate): Promise<{ module: BlockDriverModule; loadError?: string } | undefined> {
    const key = `${c.file.path}:${c.site.start}:${c.site.after}`;
    let got = this.cache.get(key);
    if (got) return got;
    const url = await this.write(c);
    if (url === undefined) return undefined;
    try {
      const mod = (await import(url)) as Partial<BlockDriverModule>;
      got =
        mod.contract === DRIVER_CONTRACT && mod.kind === 'block' && typeof mod.start === 'function'
          ? { module: mod as BlockDriverModule }
          : { module: failing('not a block driver module any more'), loadError: 'not a block driver module any more' };
    } catch (e) {
      if (e instanceof SyntaxError) return undefined;
      const msg = (e as Error).message?.split('\n')[0] ?? String(e);
      got = { module: failing(msg), loadError: msg };
    }
    this.cache.set(key, got);
    return got;
  }

  /** The mutant at one named site (tests, and anyone reproducing a record by hand); undefined when there is no such site or it does not parse. */
  async loadAt(where: {
    file: string;
    line: number;
    operator: MutationOperator;
    before?: string;
    after?: string;
  }): Promise<{ module: BlockDriverModule; mutation: Mutation } | undefined> {
    const c = this.sites
      .get(where.operator)
      ?.find(
        (x) =>
          x.file.rel === where.file &&
          x.site.line === where.line &&
          (where.before === undefined || x.file.source.slice(x.site.start, x.site.end) === where.before) &&
          (where.after === undefined || x.site.after === where.after),
      );
    if (!c) return undefined;
    const got = await this.build(c);
    return got && { module: got.module, mutation: this.describe(c, 0, got.loadError) };
  }

  private describe(c: Candidate, redrawn: number, loadError: string | undefined): Mutation {
    const s = c.site;
    return {
      file: c.file.rel,
      line: s.line,
      col: s.col,
      operator: s.operator,
      before: snippet(c.file.source.slice(s.start, s.end)),
      after: snippet(s.after) || '(removed)',
      redrawn,
      ...(loadError ? { loadError } : {}),
    };
  }

  /** The mutant of a trial (`seed`: the trial's injector seed), loaded; the same seed always gives the same mutant. */
  async load(seed: number): Promise<{ module: BlockDriverModule; mutation: Mutation }> {
    let redrawn = 0;
    for (const c of this.draws(seed)) {
      if (redrawn >= MAX_DRAWS) break;
      const got = await this.build(c);
      if (!got) {
        redrawn++;
        continue;
      }
      return { module: got.module, mutation: this.describe(c, redrawn, got.loadError) };
    }
    throw new MutateError('ERR_MUTATE_SITES', `mutation: ${MAX_DRAWS} mutants drawn from seed ${seed} and none parsed`, {
      fix: 'choose other operators or files',
    });
  }

  /** Was `e` raised by a mutant's code (its stack runs through the mutants' folder)? */
  owns(e: unknown): boolean {
    const stack = (e as { stack?: unknown } | null)?.stack;
    return typeof stack === 'string' && stack.includes(this.dir);
  }

  /** Remove the mutants' folder (modules already loaded stay loaded). */
  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
