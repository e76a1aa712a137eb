/**
 * `npm run tcb`: the trusted computing base of `dmabox up` next to the untrusted driver code,
 * computed from the import graph of the JavaScript tsc emitted (what Node loads; type-only imports
 * are erased there), never from a hand list:
 *
 *   trusted   every file the manager process can load when it runs `dmabox up`: cli/main.ts (its
 *             static imports, and of its per-command dynamic imports only `up`), then everything
 *             reachable by static imports, re-exports and `import('literal')` calls, which
 *             include the linkback registry's starters;
 *   untrusted every file only the container or the device process loads: from
 *             sandbox/container/main.ts, sandbox/device/main.ts (the simulated device models) and
 *             the driver modules drivers/NAME/sandbox.ts, when they exist;
 *   shared    loaded by both: it runs in the manager too, so it counts as trusted.
 *
 * Lines of code are non-blank, non-comment lines of each file's TypeScript source (scripts/loc.ts),
 * per folder and in total, with SUD's trusted code as the reference (Boyd-Wickizer and Zeldovich,
 * "Tolerating malicious device drivers in Linux", USENIX ATC 2010: about 4,000 lines).
 *
 * Usage: npm run tcb [-- --json]   (builds first; or node dist/scripts/tcb.js after a build)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { type Edge, type ImportRef, reachable, readWorkspaces, REPO_ROOT } from './import-graph.js';
import { countLoc } from './loc.js';

/** SUD's trusted code, the reference printed beside ours. */
export const SUD_REFERENCE = { lines: 4000, source: 'SUD (Boyd-Wickizer and Zeldovich, USENIX ATC 2010): about 4,000 trusted lines' };

/** The manager process's entry and the one dispatch branch `dmabox up` takes. */
export const MANAGER_ENTRY = { file: 'cli/main.ts', command: './up.js' };
/** The privileged spawner's entry: what stays privileged after set-up, counted on a line of its own. */
export const SPAWNER_ENTRY = 'sandbox/spawner/main.ts';
/** The container's entry; driver modules are found as drivers/NAME/sandbox.ts. */
export const CONTAINER_ENTRY = 'sandbox/container/main.ts';
/** The device process's entry (simulated device models run there, not in the manager). */
export const DEVICE_ENTRY = 'sandbox/device/main.ts';

export type Side = 'trusted' | 'shared' | 'untrusted';

export interface TcbFile {
  path: string;
  side: Side;
  loc: number;
}

export interface TcbFolder {
  folder: string;
  /** Loaded by the manager only. */
  manager: number;
  shared: number;
  /** Loaded by the container only. */
  untrusted: number;
}

export interface TcbReport {
  roots: { trusted: string[]; untrusted: string[] };
  files: TcbFile[];
  folders: TcbFolder[];
  total: { trusted: number; shared: number; untrusted: number; managerOnly: number };
  /** Modules outside the project each side loads (`node:fs`, `koffi`). */
  external: { trusted: string[]; untrusted: string[] };
  unresolved: Edge[];
  reference: typeof SUD_REFERENCE;
  /** The spawner process (privileged after set-up): every project file it loads, and their lines; absent without a spawner. */
  spawner?: { files: string[]; lines: number };
}

/** Where tsc puts each compiled folder: [emitted dir, source dir], from the tsconfig files. */
export function outputDirs(root: string = REPO_ROOT): [string, string][] {
  const dirs = ['.', ...readWorkspaces(root).map((w) => w.dir)];
  const out: [string, string][] = [];
  for (const dir of dirs) {
    const file = join(root, dir, 'tsconfig.json');
    const read = ts.readConfigFile(file, (p) => readFileSync(p, 'utf8'));
    const opts = (read.config as { compilerOptions?: { outDir?: string; rootDir?: string } } | undefined)?.compilerOptions ?? {};
    if (!opts.outDir) continue;
    out.push([posix.join(dir, opts.outDir), posix.join(dir, opts.rootDir ?? '.')]);
  }
  // The most specific first: sys/dist before dist.
  return out.sort((a, b) => b[0].length - a[0].length);
}

function toSource(dist: string, dirs: [string, string][]): string {
  for (const [out, src] of dirs) {
    if (dist.startsWith(`${out}/`))
      return posix.normalize(posix.join(src, dist.slice(out.length + 1))).replace(/\.(m|c)?js$/, (_m, x: string | undefined) => `.${x ?? ''}ts`);
  }
  throw new Error(`tcb: ${dist} is not under any tsconfig outDir (${dirs.map(([o]) => o).join(', ')})`);
}

function toDist(source: string, dirs: [string, string][]): string {
  // Longest source dir first, so sys/src wins over '.'.
  const bySrc = [...dirs].sort((a, b) => b[1].length - a[1].length);
  for (const [out, src] of bySrc) {
    const prefix = src === '.' ? '' : `${src}/`;
    if (source.startsWith(prefix)) return posix.join(out, source.slice(prefix.length)).replace(/\.(m|c)?ts$/, (_m, x: string | undefined) => `.${x ?? ''}js`);
  }
  throw new Error(`tcb: ${source} is under no tsconfig rootDir`);
}

/** The driver modules the container loads, drivers/NAME/sandbox.ts, where they exist. */
export function driverModules(root: string = REPO_ROOT): string[] {
  const dir = join(root, 'drivers');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'sandbox.ts')))
    .map((e) => `drivers/${e.name}/sandbox.ts`)
    .sort();
}

const folderOf = (p: string): string => `${posix.dirname(p)}/`;

/** The count over the emitted JavaScript of `root` (run `npm run build` first). */
export function computeTcb(root: string = REPO_ROOT): TcbReport {
  const dirs = outputDirs(root);
  const managerEntry = toDist(MANAGER_ENTRY.file, dirs);
  const containerRoots = [CONTAINER_ENTRY, ...(existsSync(join(root, DEVICE_ENTRY)) ? [DEVICE_ENTRY] : []), ...driverModules(root)];
  for (const f of [managerEntry, ...containerRoots.map((r) => toDist(r, dirs))]) {
    if (!existsSync(join(root, f))) throw new Error(`tcb: ${f} is missing: run \`npm run build\` first`);
  }
  // From cli/main.js, of the per-command dynamic imports only `up`'s: the other commands never run in `dmabox up`.
  const follow = (from: string, ref: ImportRef): boolean => from !== managerEntry || ref.kind !== 'dynamic import' || ref.specifier === MANAGER_ENTRY.command;
  const manager = reachable([managerEntry], { root, follow });
  const container = reachable(
    containerRoots.map((r) => toDist(r, dirs)),
    { root },
  );

  const spawnerDist = toDist(SPAWNER_ENTRY, dirs);
  const spawnerFiles = existsSync(join(root, spawnerDist)) ? [...reachable([spawnerDist], { root }).files].map((f) => toSource(f, dirs)).sort() : undefined;

  const files: TcbFile[] = [];
  const all = new Set([...manager.files, ...container.files]);
  for (const dist of [...all].sort()) {
    const path = toSource(dist, dirs);
    const side: Side = manager.files.has(dist) ? (container.files.has(dist) ? 'shared' : 'trusted') : 'untrusted';
    files.push({ path, side, loc: countLoc(path, readFileSync(join(root, path), 'utf8')) });
  }
  files.sort((a, b) => a.path.localeCompare(b.path));

  const folders = new Map<string, TcbFolder>();
  for (const f of files) {
    const key = folderOf(f.path);
    const row = folders.get(key) ?? { folder: key, manager: 0, shared: 0, untrusted: 0 };
    if (f.side === 'trusted') row.manager += f.loc;
    else if (f.side === 'shared') row.shared += f.loc;
    else row.untrusted += f.loc;
    folders.set(key, row);
  }
  const sum = (side: Side): number => files.filter((f) => f.side === side).reduce((n, f) => n + f.loc, 0);
  const managerOnly = sum('trusted');
  const shared = sum('shared');
  return {
    roots: { trusted: [`${MANAGER_ENTRY.file} up`], untrusted: containerRoots },
    files,
    folders: [...folders.values()].sort((a, b) => a.folder.localeCompare(b.folder)),
    total: { trusted: managerOnly + shared, shared, untrusted: sum('untrusted'), managerOnly },
    external: { trusted: [...manager.external].sort(), untrusted: [...container.external].sort() },
    unresolved: [...manager.unresolved, ...container.unresolved],
    reference: SUD_REFERENCE,
    ...(spawnerFiles
      ? { spawner: { files: spawnerFiles, lines: spawnerFiles.reduce((n, f) => n + countLoc(f, readFileSync(join(root, f), 'utf8')), 0) } }
      : {}),
  };
}

const num = (n: number): string => (n === 0 ? '-' : n.toLocaleString('en-US'));

/** The table `npm run tcb` prints. */
export function formatTcb(r: TcbReport): string {
  const w = Math.max(6, ...r.folders.map((f) => f.folder.length));
  const row = (a: string, b: string, c: string, d: string, e: string): string =>
    `${a.padEnd(w)}  ${b.padStart(12)}  ${c.padStart(8)}  ${d.padStart(9)}  ${e.padStart(11)}`;
  const out = [
    `Trusted computing base of \`dmabox up\` (the manager process) beside the untrusted driver code`,
    `lines of code: non-blank, non-comment lines of the TypeScript sources, from the import graph of the emitted JavaScript`,
    `trusted roots: ${r.roots.trusted.join(', ')}; untrusted roots: ${r.roots.untrusted.join(', ')}`,
    '',
    row('folder', 'manager only', 'shared', 'trusted', 'untrusted'),
  ];
  for (const f of r.folders) out.push(row(f.folder, num(f.manager), num(f.shared), num(f.manager + f.shared), num(f.untrusted)));
  out.push(row('total', num(r.total.managerOnly), num(r.total.shared), num(r.total.trusted), num(r.total.untrusted)));
  out.push('');
  out.push(
    `trusted: ${num(r.total.trusted)} lines (${num(r.total.shared)} of them shared with the container: they run in the manager too); untrusted: ${num(r.total.untrusted)} lines`,
  );
  out.push(`reference: ${r.reference.source}; dmabox's trusted code is ${(r.total.trusted / r.reference.lines).toFixed(1)} times that`);
  if (r.spawner)
    out.push(
      `privileged after set-up: the spawner process (${SPAWNER_ENTRY}), ${num(r.spawner.lines)} lines in ${r.spawner.files.length} files (${[...new Set(r.spawner.files.map(folderOf))].join(', ')}); the manager itself then runs without root`,
    );
  const pkgs = (xs: string[]): string => xs.filter((x) => !x.startsWith('node:')).join(', ') || 'none';
  out.push(`packages loaded besides the project (not counted): manager ${pkgs(r.external.trusted)}; container ${pkgs(r.external.untrusted)}`);
  for (const u of r.unresolved) out.push(`unresolved: ${u.from}:${u.line} imports ${u.specifier} (not followed)`);
  return `${out.join('\n')}\n`;
}

function main(argv: string[]): number {
  const r = computeTcb();
  process.stdout.write(argv.includes('--json') ? `${JSON.stringify(r, null, 2)}\n` : formatTcb(r));
  return r.unresolved.length === 0 ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
