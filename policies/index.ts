/** Policies: the format (schema.ts), reading and checking them (loader.ts), and the resolved types. See README.md. */
export { loadPolicyFiles, parsePolicies, formatProblem, PolicyError, type LoadResult, type PolicyProblem } from './loader.js';
export { policySchema, POLICY_VERSION, PAGE_SIZE, HUGE_PAGE_SIZE } from './schema.js';
export { policyJsonSchema } from './json-schema.js';
export { present } from './schema-dsl.js';
export type * from './types.js';
