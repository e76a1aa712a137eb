/** The JSON Schema of a policy document, as checked in at policies/schema.json (a test keeps them equal). */
import { toJsonSchema } from './schema-dsl.js';
import { policySchema } from './schema.js';

export function policyJsonSchema(): string {
  const schema = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://dmabox.invalid/policies/schema.json',
    title: 'dmabox policy',
    $comment: 'Generated from policies/schema.ts by `dmabox policy schema`; do not edit by hand.',
    ...toJsonSchema(policySchema),
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}
