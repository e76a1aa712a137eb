/**
 * `dmabox policy check FILE...`: validate policies (all problems at once, as file:line: field: ...).
 * `dmabox policy show FILE... [--json]`: print the resolved policies, every default filled in.
 * `dmabox policy schema`: print the JSON Schema (policies/schema.json is this output).
 */
import { stringify } from 'yaml';
import { policyJsonSchema } from '../policies/json-schema.js';
import { loadPoliciesOrReport } from './load-policies.js';
import { present } from '../policies/schema-dsl.js';
import { policySchema } from '../policies/schema.js';

const USAGE = `usage: dmabox policy check FILE...
       dmabox policy show FILE... [--json]
       dmabox policy schema
`;

export interface Io {
  out(s: string): void;
  err(s: string): void;
}
const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

export async function run(argv: string[], io: Io = stdio): Promise<number> {
  const [sub, ...rest] = argv;
  const json = rest.includes('--json');
  const files = rest.filter((a) => a !== '--json');
  const unknown = files.filter((a) => a.startsWith('-'));
  if (unknown.length) {
    io.err(`dmabox policy: unknown option ${unknown.join(', ')}\n${USAGE}`);
    return 2;
  }
  switch (sub) {
    case 'schema':
      io.out(policyJsonSchema());
      return 0;
    case 'check':
    case 'show': {
      if (files.length === 0) {
        io.err(`dmabox policy ${sub}: name at least one policy file\n${USAGE}`);
        return 2;
      }
      const result = loadPoliciesOrReport(files, io);
      if (!result) return 1;
      if (sub === 'check') {
        for (const f of files) {
          const names = result.policies.filter((lp) => lp.file === f).map((lp) => lp.policy.name);
          io.out(`ok ${f}: ${names.join(', ')}\n`);
        }
        return 0;
      }
      if (json) {
        io.out(
          `${JSON.stringify(
            result.policies.map((lp) => lp.policy),
            null,
            2,
          )}\n`,
        );
        return 0;
      }
      result.policies.forEach((lp, i) => {
        const doc = stringify(present(policySchema, lp.policy), { lineWidth: 0 });
        io.out(`${i ? '---\n' : ''}# ${lp.policy.name}: from ${lp.file}:${lp.line}, every default filled in\n${doc}`);
      });
      return 0;
    }
    default:
      io.err(sub && sub !== '-h' && sub !== '--help' ? `dmabox policy: unknown subcommand '${sub}'\n${USAGE}` : USAGE);
      return sub === '-h' || sub === '--help' ? 0 : 2;
  }
}
