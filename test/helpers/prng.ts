/** The project's seeded PRNG (common/prng.ts), for fuzz tests that must replay from their seed. */
export { prng, mixSeed, Rng } from '../../common/prng.js';
