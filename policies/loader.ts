/**
 * Reading policies: YAML with source positions, checked against the schema (policies/schema.ts),
 * then against the rules one field cannot express alone (the driver must fit the device, windows
 * must fit the memory limit, names must be unique). Every problem is reported at once, as
 * `file:line: field.path: what was expected, got what`.
 */
import { readFileSync, statSync } from 'node:fs';
import { isIP, isIPv4 } from 'node:net';
import { dirname, resolve } from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseAllDocuments, type Node as YamlNode } from 'yaml';
import { DmaboxError } from '../common/errors.js';
import { INVALID, validate, type Context, type PNode } from './schema-dsl.js';
import { isLoopbackAddress, onSubnet, parseCidr, splitHostPort } from './addresses.js';
import { HUGE_PAGE_SIZE, policySchema } from './schema.js';
import type { LoadedPolicy, NbdLinkbackOptions, NbdListen, Policy } from './types.js';
import { formatSize } from './units.js';

export interface PolicyProblem {
  file: string;
  line: number;
  path: string;
  message: string;
}

export function formatProblem(p: PolicyProblem): string {
  return `${p.file}:${p.line}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}

/** The codes a PolicyError carries (policies/README.md documents each). */
export type PolicyCode = 'ERR_POLICY_INVALID';

/** One or more policy files are invalid; `problems` lists every problem found, in file order. */
export class PolicyError extends DmaboxError<PolicyCode> {
  readonly problems: readonly PolicyProblem[];
  constructor(problems: PolicyProblem[]) {
    super('ERR_POLICY_INVALID', `${problems.length} problem${problems.length === 1 ? '' : 's'} in policy:\n${problems.map(formatProblem).join('\n')}`, {
      fix: 'correct the fields named above; `dmabox policy show FILE` prints a valid policy with every default filled in',
    });
    this.problems = problems;
  }
}

export interface LoadResult {
  policies: LoadedPolicy[];
  /** Not errors, but said loudly: `unconfined: true`. */
  warnings: PolicyProblem[];
}

/** Known PCI ids and the driver that serves them (QEMU's NVMe, the 82574L that QEMU's e1000e models). */
const KNOWN_IDS: Record<string, 'nvme' | 'e1000e'> = { '1b36:0010': 'nvme', '8086:10d3': 'e1000e' };
/** The kind (service) of each built-in driver. */
const BUILTIN_KIND: Record<string, 'block' | 'net'> = { nvme: 'block', e1000e: 'net' };
/** uid and gid 65534: nobody, shared by everything on the host that runs as nobody. */
const NOBODY = 65534;

/** Parse the policies in one YAML source (one policy per document). Throws PolicyError listing every problem. */
export function parsePolicies(source: string, file: string): LoadResult {
  const problems: PolicyProblem[] = [];
  const warnings: PolicyProblem[] = [];
  const policies: LoadedPolicy[] = [];
  const lc = new LineCounter();
  const docs = parseAllDocuments(source, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number) => Math.max(1, lc.linePos(offset).line);
  const list = Array.isArray(docs) ? docs : [];
  let seen = 0;
  for (const doc of list) {
    for (const e of doc.errors) problems.push({ file, line: lineOf(e.pos[0]), path: '', message: `YAML: ${e.message.split('\n')[0]}` });
    if (doc.errors.length) continue;
    if (doc.contents === null) continue;
    seen++;
    const docLine = lineOf(doc.contents.range?.[0] ?? 0);
    const local: PolicyProblem[] = [];
    const root = yamlToPNode(doc.contents as YamlNode, lineOf, (line, message) => local.push({ file, line, path: '', message }));
    if (local.length) {
      problems.push(...local);
      continue;
    }
    const ctx: Context = { problems: [], lines: new Map() };
    const value = validate(policySchema, root, '', ctx);
    for (const p of ctx.problems) problems.push({ file, ...p });
    if (value === INVALID) continue;
    const policy = normalize(value as Policy);
    const at = (path: string) => ctx.lines.get(path) ?? docLine;
    const rule = (path: string, message: string) => problems.push({ file, line: at(path), path, message });
    resolveModule(policy, file, rule);
    checkRules(policy, rule);
    if (policy.unconfined) {
      warnings.push({
        file,
        line: at('unconfined'),
        path: 'unconfined',
        message: `UNCONFINED: sandbox '${policy.name}' may run without IOMMU confinement, seccomp or privilege drop; its device may reach all of memory. Debugging only.`,
      });
    }
    policies.push({ policy, file, line: docLine });
  }
  if (seen === 0 && problems.length === 0)
    problems.push({ file, line: 1, path: '', message: 'no policy in this file: expected a YAML mapping with version, name, device, driver and windows' });
  if (problems.length) throw new PolicyError(problems);
  return { policies, warnings };
}

/** Read and check policy files together: names, devices and linkback endpoints must be unique across all of them. */
export function loadPolicyFiles(paths: readonly string[]): LoadResult {
  const problems: PolicyProblem[] = [];
  const result: LoadResult = { policies: [], warnings: [] };
  for (const file of paths) {
    let source: string;
    try {
      source = readFileSync(file, 'utf8');
    } catch (e) {
      problems.push({ file, line: 0, path: '', message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
      continue;
    }
    try {
      const r = parsePolicies(source, file);
      result.policies.push(...r.policies);
      result.warnings.push(...r.warnings);
    } catch (e) {
      if (!(e instanceof PolicyError)) throw e;
      problems.push(...e.problems);
    }
  }
  problems.push(...checkUnique(result.policies));
  if (problems.length) throw new PolicyError(problems);
  return result;
}

/** A YAML node as a positional tree (campaigns/spec.ts reads its files the same way). */
export function yamlToPNode(node: YamlNode, lineOf: (offset: number) => number, bad: (line: number, message: string) => void): PNode {
  const line = lineOf(node.range?.[0] ?? 0);
  if (isAlias(node)) {
    bad(line, 'anchors and aliases are not supported in policies: write the value out');
    return { kind: 'scalar', line, value: null };
  }
  if (isMap(node)) {
    const entries = new Map<string, { keyLine: number; value: PNode }>();
    for (const pair of node.items) {
      const key = pair.key as YamlNode | null;
      const keyLine = key?.range ? lineOf(key.range[0]) : line;
      if (!isScalar(key) || typeof key.value !== 'string') {
        bad(keyLine, 'mapping keys must be plain names');
        continue;
      }
      const v = pair.value as YamlNode | null;
      entries.set(key.value, { keyLine, value: v ? yamlToPNode(v, lineOf, bad) : { kind: 'scalar', line: keyLine, value: null } });
    }
    return { kind: 'map', line, entries };
  }
  if (isSeq(node)) return { kind: 'seq', line, items: node.items.map((n) => yamlToPNode(n as YamlNode, lineOf, bad)) };
  if (isScalar(node)) {
    const v = node.value;
    const value = v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : String(v);
    return { kind: 'scalar', line, value };
  }
  bad(line, 'unsupported YAML node');
  return { kind: 'scalar', line, value: null };
}

/** One spelling for each device: `0000:00:01.0` (domain added, lower case), `1b36:0010` (lower case). */
function normalize(p: Policy): Policy {
  const d = p.device;
  if ('pci' in d) d.pci = (d.pci.length === 7 ? `0000:${d.pci}` : d.pci).toLowerCase();
  if ('id' in d) d.id = d.id.toLowerCase();
  if ('mac' in d) d.mac = d.mac.toLowerCase();
  // An identity is one number: a uid alone is its gid too.
  if (p.container.uid !== undefined && p.container.gid === undefined) p.container.gid = p.container.uid;
  return p;
}

/**
 * A driver module's path, relative to the policy file's folder, becomes absolute; it must name a
 * readable regular file. (Its kind is the module's to declare: the container checks it against the
 * device, as nothing of the module is run here.)
 */
function resolveModule(p: Policy, file: string, rule: (path: string, message: string) => void): void {
  const m = p.driver.module;
  if (m === undefined) return;
  const abs = resolve(dirname(file), m);
  p.driver.module = abs;
  try {
    if (!statSync(abs).isFile()) rule('driver.module', `expected a driver module file, got ${abs}, which is not a regular file`);
  } catch (e) {
    rule('driver.module', `expected a driver module file, got ${m} (${abs}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
}

/** The kind of driver the device needs, when the device says (a simulated model, a known PCI id). */
function deviceKind(p: Policy): 'block' | 'net' | undefined {
  const dev = p.device;
  const builtin = 'sim' in dev ? dev.sim : 'id' in dev ? KNOWN_IDS[dev.id] : undefined;
  return builtin ? BUILTIN_KIND[builtin] : undefined;
}

/** The rules that tie fields together. */
function checkRules(p: Policy, rule: (path: string, message: string) => void): void {
  const dev = p.device;
  const expectedDriver = 'sim' in dev ? dev.sim : 'id' in dev ? KNOWN_IDS[dev.id] : undefined;
  if (expectedDriver && p.driver.name !== undefined && expectedDriver !== p.driver.name) {
    rule('driver.name', `expected '${expectedDriver}' for device ${'sim' in dev ? `sim:${dev.sim}` : 'id' in dev ? dev.id : ''}, got '${p.driver.name}'`);
  }
  if ('sim' in dev && dev.sim === 'nvme' && p.driver.name === 'nvme') {
    if (p.driver.queues > dev.maxQueues) rule('driver.queues', `expected at most ${dev.maxQueues} (device.maxQueues), got ${p.driver.queues}`);
    if (p.driver.depth > dev.mqes) rule('driver.depth', `expected at most ${dev.mqes} (device.mqes), got ${p.driver.depth}`);
    if (dev.capacity % dev.blockSize !== 0) rule('device.capacity', `expected a multiple of device.blockSize (${dev.blockSize}), got ${dev.capacity}`);
  }
  const labels = new Map<string, number>();
  let total = 0;
  p.windows.forEach((w, i) => {
    total += w.size;
    if (w.hugePages && w.size % HUGE_PAGE_SIZE !== 0) rule(`windows[${i}].size`, `expected a multiple of 2MiB with hugePages: true, got ${formatSize(w.size)}`);
    if (w.label !== undefined) {
      const prev = labels.get(w.label);
      if (prev !== undefined) rule(`windows[${i}].label`, `expected a label not used before, got '${w.label}' (also windows[${prev}].label)`);
      labels.set(w.label, i);
    }
  });
  if (total > p.container.memory) {
    rule(
      'container.memory',
      `expected at least the windows' total ${formatSize(total)} (the driver maps its windows, so they count against its memory), got ${formatSize(p.container.memory)}`,
    );
  }
  if (p.container.uid === undefined && p.container.gid !== undefined)
    rule('container.gid', 'expected container.uid with container.gid, or neither (then the sandbox gets an identity of its own)');
  if (p.container.uid === NOBODY || p.container.gid === NOBODY)
    rule(
      p.container.uid === NOBODY ? 'container.uid' : 'container.gid',
      'expected an identity of its own, got 65534 (nobody, shared with everything on the host that runs as nobody): leave container.uid and gid out',
    );
  if (!p.unconfined) {
    if (p.container.uid === 0)
      rule(
        'container.uid',
        `expected an unprivileged uid (or none: an identity of its own is allocated), got 0: a driver running as root is not sandboxed (allowed only with unconfined: true)`,
      );
    if (p.container.gid === 0 && p.container.uid !== 0)
      rule('container.gid', `expected an unprivileged gid (or none), got 0 (allowed only with unconfined: true)`);
    if (p.container.seccomp === 'none')
      rule('container.seccomp', `expected a seccomp profile (default 'driver'), got 'none' (allowed only with unconfined: true)`);
  }
  if (p.restart.backoff.initial > p.restart.backoff.max)
    rule('restart.backoff.initial', `expected at most restart.backoff.max (${p.restart.backoff.max}ms), got ${p.restart.backoff.initial}ms`);
  if (p.linkback) {
    const kind = p.driver.name !== undefined ? BUILTIN_KIND[p.driver.name] : deviceKind(p);
    const what = p.driver.name !== undefined ? `'${p.driver.name}'` : `a ${kind ?? 'module'} driver`;
    if ('nbd' in p.linkback && kind === 'net')
      rule('linkback.nbd', `expected a disk driver (nvme, or a module of kind block) for an NBD linkback, got ${what}: use linkback.tap`);
    if ('tap' in p.linkback && kind === 'block')
      rule('linkback.tap', `expected a network driver (e1000e, or a module of kind net) for a TAP linkback, got ${what}: use linkback.nbd`);
    if ('nbd' in p.linkback) checkNbdTls(p.linkback.nbd, rule);
    if ('tap' in p.linkback) checkTapAddress(p.linkback.tap, rule);
  }
}

/** TLS keys go with TLS, and an NBD export reachable from elsewhere must authenticate its clients. */
function checkNbdTls(n: NbdListen & NbdLinkbackOptions, rule: (path: string, message: string) => void): void {
  const keys = (n['tls-psk'] !== undefined ? 1 : 0) + (n['tls-certificates'] !== undefined ? 1 : 0);
  if (n.tls === 'off' && keys > 0)
    rule(n['tls-psk'] !== undefined ? 'linkback.nbd.tls-psk' : 'linkback.nbd.tls-certificates', `expected tls: on or require with TLS keys, got tls: off`);
  if (n.tls !== 'off' && keys !== 1)
    rule('linkback.nbd.tls', `expected exactly one of tls-psk and tls-certificates with tls: ${n.tls}, got ${keys === 0 ? 'neither' : 'both'}`);
  if (n['tls-verify-peer'] && n['tls-certificates'] === undefined)
    rule('linkback.nbd.tls-verify-peer', 'expected tls-certificates with tls-verify-peer (a PSK already authenticates the client)');
  if ('address' in n) {
    const { host, port } = splitHostPort(n.address);
    if (port < 1 || port > 65535) rule('linkback.nbd.address', `expected a port from 1 to 65535, got ${port}`);
    if (!isIP(host)) rule('linkback.nbd.address', `expected an IP address, got '${host}'`);
    else if (!isLoopbackAddress(host) && n.tls !== 'require')
      rule(
        'linkback.nbd.address',
        `expected tls: require on ${n.address}, got tls: ${n.tls}: an NBD export on an address other than loopback is a raw disk for anyone who reaches it; require TLS with tls-psk or tls-certificates`,
      );
  }
}

/** The TAP side's address: a real IPv4 address and prefix; a gateway on its subnet, only with an address. */
function checkTapAddress(t: { address?: string; gateway?: string }, rule: (path: string, message: string) => void): void {
  const cidr = t.address === undefined ? undefined : parseCidr(t.address);
  if (t.address !== undefined && !cidr) rule('linkback.tap.address', `expected an IPv4 address and a prefix length up to 32, got '${t.address}'`);
  if (t.gateway === undefined) return;
  if (t.address === undefined) rule('linkback.tap.gateway', 'expected linkback.tap.address with a gateway (the route goes through the interface)');
  else if (!isIPv4(t.gateway)) rule('linkback.tap.gateway', `expected an IPv4 address, got '${t.gateway}'`);
  else if (cidr && !onSubnet(cidr, t.gateway)) rule('linkback.tap.gateway', `expected an address on ${t.address}'s subnet, got ${t.gateway}`);
}

/** The TCP endpoint an NBD linkback claims (`tcp HOST:PORT`), or its socket path. */
export function nbdEndpoint(n: NbdListen): string {
  if ('socket' in n) return `socket ${n.socket}`;
  if ('port' in n) return `tcp 127.0.0.1:${n.port}`;
  return `tcp ${n.address}`;
}

function deviceKey(p: Policy): string | undefined {
  const d = p.device;
  if ('pci' in d) return `pci ${d.pci}`;
  if ('id' in d) return `id ${d.id} #${d.index}`;
  return undefined; // every simulated device is its own
}

function checkUnique(all: readonly LoadedPolicy[]): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const seen = new Map<string, LoadedPolicy>();
  const claim = (key: string | undefined, lp: LoadedPolicy, path: string, what: string) => {
    if (key === undefined) return;
    const prev = seen.get(key);
    if (prev)
      problems.push({ file: lp.file, line: lp.line, path, message: `${what} is already used by policy '${prev.policy.name}' (${prev.file}:${prev.line})` });
    else seen.set(key, lp);
  };
  for (const lp of all) {
    const p = lp.policy;
    claim(`name ${p.name}`, lp, 'name', `name '${p.name}'`);
    claim(deviceKey(p), lp, 'device', 'this device');
    // One identity per sandbox: two sandboxes (confined or not) never share a uid or a gid.
    if (p.container.uid !== undefined)
      claim(`id ${p.container.uid}`, lp, 'container.uid', `uid ${p.container.uid} (one identity per sandbox: leave container.uid out to get one allocated)`);
    if (p.container.gid !== undefined && p.container.gid !== p.container.uid)
      claim(`id ${p.container.gid}`, lp, 'container.gid', `gid ${p.container.gid} (one identity per sandbox: leave container.gid out to get one allocated)`);
    const l = p.linkback;
    if (l && 'nbd' in l) claim(nbdEndpoint(l.nbd), lp, 'linkback.nbd', nbdEndpoint(l.nbd));
    if (l && 'tap' in l) claim(`tap ${l.tap.interface}`, lp, 'linkback.tap.interface', `interface ${l.tap.interface}`);
  }
  return problems;
}
