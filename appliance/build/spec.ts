/**
 * The appliance spec: a YAML file naming the policies an image runs and how it behaves when
 * something is wrong. Errors point at the file and line, like policies do.
 *
 *   version: 1
 *   name: storage
 *   policies: [storage-nvme.yaml, storage-e1000e.yaml]   # relative to this file
 *   onFatal: reboot             # or halt: what the machine does when the manager stops or cannot start
 *   allowUnconfinedDma: false   # true boots on a machine without a working IOMMU (never for production)
 *   kernelArgs: []              # extra kernel command-line words (checked: no spaces, no quotes)
 *   files:                      # files put into the image (keys a policy names), relative to this file
 *     - { path: /etc/dmabox/keys.psk, from: keys/test.psk, mode: "0600" }
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import { ApplianceError } from '../image/errors.js';

export interface ApplianceSpec {
  /** The spec file (absolute). */
  file: string;
  name: string;
  /** Policy files, absolute, in the spec's order. */
  policies: string[];
  onFatal: 'reboot' | 'halt';
  allowUnconfinedDma: boolean;
  kernelArgs: string[];
  files: { path: string; from: string; mode: number }[];
}

const KNOWN = ['version', 'name', 'policies', 'onFatal', 'allowUnconfinedDma', 'kernelArgs', 'files'];
const IMAGE_FILE = /^\/etc\/dmabox\/[A-Za-z0-9._-]+$/;
const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const KERNEL_WORD = /^[A-Za-z0-9_.,:=/+-]+$/;

/** Read and check a spec file. Every problem is reported at once, each with its line. */
export function loadApplianceSpec(file: string): ApplianceSpec {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ApplianceError('ERR_APPLIANCE_SPEC', `cannot read the appliance spec ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      fix: 'name an existing YAML file, e.g. appliance/examples/storage.yaml',
      cause: e,
    });
  }
  return parseApplianceSpec(text, path);
}

export function parseApplianceSpec(text: string, path: string): ApplianceSpec {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const problems: string[] = [];
  const lineOf = (n: YamlNode | null | undefined): number => (n?.range ? lines.linePos(n.range[0]).line : 1);
  const bad = (n: YamlNode | null | undefined, field: string, message: string): void => {
    problems.push(`${path}:${lineOf(n)}: ${field}: ${message}`);
  };
  for (const e of doc.errors) problems.push(`${path}:${e.linePos?.[0]?.line ?? 1}: ${e.message.split('\n')[0]}`);
  const root = doc.contents;
  if (problems.length === 0 && !isMap(root)) problems.push(`${path}:1: expected a mapping with ${KNOWN.join(', ')}`);
  const spec: ApplianceSpec = { file: path, name: '', policies: [], onFatal: 'reboot', allowUnconfinedDma: false, kernelArgs: [], files: [] };
  if (problems.length === 0 && isMap(root)) {
    const get = (key: string): YamlNode | undefined => {
      const pair = root.items.find((p) => isScalar(p.key) && p.key.value === key);
      return (pair?.value as YamlNode | null | undefined) ?? undefined;
    };
    for (const p of root.items) {
      const k = isScalar(p.key) ? String(p.key.value) : '?';
      if (!KNOWN.includes(k)) bad(p.key as YamlNode, k, `unknown field; known fields: ${KNOWN.join(', ')}`);
    }
    const version = get('version');
    if (!isScalar(version) || version.value !== 1)
      bad(version ?? root, 'version', `expected 1, got ${isScalar(version) ? JSON.stringify(version.value) : 'nothing'}`);
    const name = get('name');
    if (isScalar(name) && typeof name.value === 'string' && NAME.test(name.value)) spec.name = name.value;
    else bad(name ?? root, 'name', 'expected a name of lower-case letters, digits and dashes (at most 63), e.g. storage');
    const policies = get('policies');
    if (isSeq(policies) && policies.items.length > 0) {
      for (const item of policies.items) {
        const n = item as YamlNode;
        if (isScalar(n) && typeof n.value === 'string' && n.value.endsWith('.yaml')) spec.policies.push(resolve(dirname(path), n.value));
        else bad(n, 'policies', 'expected a policy file name ending in .yaml, relative to this file');
      }
    } else bad(policies ?? root, 'policies', 'expected a non-empty list of policy files');
    const onFatal = get('onFatal');
    if (onFatal !== undefined) {
      if (isScalar(onFatal) && (onFatal.value === 'reboot' || onFatal.value === 'halt')) spec.onFatal = onFatal.value;
      else bad(onFatal, 'onFatal', `expected 'reboot' or 'halt'`);
    }
    const unconfined = get('allowUnconfinedDma');
    if (unconfined !== undefined) {
      if (isScalar(unconfined) && typeof unconfined.value === 'boolean') spec.allowUnconfinedDma = unconfined.value;
      else bad(unconfined, 'allowUnconfinedDma', 'expected true or false');
    }
    const args = get('kernelArgs');
    if (args !== undefined) {
      if (!isSeq(args)) bad(args, 'kernelArgs', 'expected a list of kernel command-line words');
      else
        for (const item of args.items) {
          const n = item as YamlNode;
          if (isScalar(n) && typeof n.value === 'string' && KERNEL_WORD.test(n.value)) spec.kernelArgs.push(n.value);
          else bad(n, 'kernelArgs', 'expected one word of letters, digits and _.,:=/+- (no spaces or quotes)');
        }
    }
    const files = get('files');
    if (files !== undefined) {
      if (!isSeq(files)) bad(files, 'files', 'expected a list of { path, from, mode }');
      else
        for (const item of files.items) {
          const n = item as YamlNode;
          if (!isMap(n)) {
            bad(n, 'files', 'expected { path: /etc/dmabox/NAME, from: FILE, mode: "0600" }');
            continue;
          }
          const field = (k: string): unknown => {
            const v = n.items.find((p) => isScalar(p.key) && p.key.value === k)?.value;
            return isScalar(v) ? v.value : undefined;
          };
          const target = field('path');
          const from = field('from');
          const mode = field('mode') ?? '0644';
          if (typeof target !== 'string' || !IMAGE_FILE.test(target))
            bad(n, 'files.path', 'expected a file directly under /etc/dmabox/ (what a policy can name)');
          else if (typeof from !== 'string' || from === '') bad(n, 'files.from', 'expected the file to copy, relative to this spec');
          else if (typeof mode !== 'string' || !/^0?[0-7]{3}$/.test(mode)) bad(n, 'files.mode', `expected an octal mode in quotes, e.g. "0600"`);
          else spec.files.push({ path: target, from: resolve(dirname(path), from), mode: parseInt(mode, 8) });
        }
    }
  }
  if (problems.length > 0) {
    throw new ApplianceError('ERR_APPLIANCE_SPEC', `the appliance spec has ${problems.length} problem(s):\n  ${problems.join('\n  ')}`, {
      fix: 'correct the lines named; appliance/examples/storage.yaml is a complete example',
    });
  }
  return spec;
}
