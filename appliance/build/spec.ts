/**
 * The appliance spec: a YAML file naming the policies an image runs and how it behaves when
 * something is wrong. Read with the policies' YAML reader and checked against a schema in the
 * policies' schema language (policies/schema-dsl.ts), so errors point at the file, line and field
 * as policies and campaign specs do.
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
import { LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { formatProblem, yamlToPNode, type PolicyProblem } from '../../policies/loader.js';
import { INVALID, validate, type Context, type ObjectSchema } from '../../policies/schema-dsl.js';
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

const MAX_POLICIES = 64;

export const applianceSchema: ObjectSchema = {
  t: 'object',
  fields: {
    version: { schema: { t: 'int', min: 1, max: 1, values: [1] }, required: true, doc: 'The appliance spec format version: 1.' },
    name: {
      schema: { t: 'string', hint: 'a name of lower-case letters, digits and dashes (at most 63), e.g. storage', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' },
      required: true,
      doc: 'The image name (in the manifest and the output file names).',
    },
    policies: {
      schema: {
        t: 'array',
        items: { t: 'string', hint: 'a policy file name ending in .yaml, relative to this file', pattern: '^.+\\.yaml$' },
        minItems: 1,
        maxItems: MAX_POLICIES,
      },
      required: true,
      doc: 'The policy files the image runs, relative to this file.',
    },
    onFatal: {
      schema: { t: 'string', hint: "'reboot' or 'halt'", enum: ['reboot', 'halt'] },
      default: 'reboot',
      doc: 'What the machine does when the manager stops or cannot start.',
    },
    allowUnconfinedDma: {
      schema: { t: 'bool' },
      default: false,
      doc: 'Boot on a machine without a working IOMMU (drivers then confine nothing: never for production).',
    },
    kernelArgs: {
      schema: {
        t: 'array',
        items: { t: 'string', hint: 'one word of letters, digits and _.,:=/+- (no spaces or quotes)', pattern: '^[A-Za-z0-9_.,:=/+-]+$' },
        minItems: 0,
        maxItems: 64,
      },
      default: [],
      doc: 'Extra kernel command-line words.',
    },
    files: {
      schema: {
        t: 'array',
        items: {
          t: 'object',
          fields: {
            path: {
              schema: { t: 'string', hint: 'a file directly under /etc/dmabox/ (what a policy can name)', pattern: '^/etc/dmabox/[A-Za-z0-9._-]+$' },
              required: true,
              doc: 'Where the file goes in the image.',
            },
            from: {
              schema: { t: 'string', hint: 'the file to copy, relative to this spec', pattern: '.' },
              required: true,
              doc: 'The file to copy, relative to this spec.',
            },
            mode: {
              schema: { t: 'string', hint: 'an octal mode in quotes, e.g. "0600"', pattern: '^0?[0-7]{3}$' },
              default: '0644',
              doc: 'Its mode in the image (octal, quoted).',
            },
          },
        },
        minItems: 0,
        maxItems: 256,
      },
      default: [],
      doc: 'Files put into the image (keys a policy names).',
    },
  },
};

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

function specError(problems: PolicyProblem[]): ApplianceError {
  return new ApplianceError('ERR_APPLIANCE_SPEC', `the appliance spec has ${problems.length} problem(s):\n  ${problems.map(formatProblem).join('\n  ')}`, {
    fix: 'correct the lines named; appliance/examples/storage.yaml is a complete example',
  });
}

export function parseApplianceSpec(text: string, path: string): ApplianceSpec {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number): number => Math.max(1, lines.linePos(offset).line);
  const problems: PolicyProblem[] = doc.errors.map((e) => ({ file: path, line: lineOf(e.pos[0]), path: '', message: `YAML: ${e.message.split('\n')[0]}` }));
  if (problems.length) throw specError(problems);
  if (doc.contents === null) throw specError([{ file: path, line: 1, path: '', message: 'empty: expected a mapping with version, name and policies' }]);
  const root = yamlToPNode(doc.contents as YamlNode, lineOf, (line, message) => problems.push({ file: path, line, path: '', message }));
  if (problems.length) throw specError(problems);
  const ctx: Context = { problems: [], lines: new Map() };
  const value = validate(applianceSchema, root, '', ctx);
  for (const p of ctx.problems) problems.push({ file: path, ...p });
  if (value === INVALID || problems.length) throw specError(problems);
  const raw = value as {
    name: string;
    policies: string[];
    onFatal: 'reboot' | 'halt';
    allowUnconfinedDma: boolean;
    kernelArgs: string[];
    files: { path: string; from: string; mode: string }[];
  };
  const here = dirname(path);
  return {
    file: path,
    name: raw.name,
    policies: raw.policies.map((p) => resolve(here, p)),
    onFatal: raw.onFatal,
    allowUnconfinedDma: raw.allowUnconfinedDma,
    kernelArgs: raw.kernelArgs,
    files: raw.files.map((f) => ({ path: f.path, from: resolve(here, f.from), mode: parseInt(f.mode, 8) })),
  };
}
