import fc from 'fast-check';
import { describe, it } from 'vitest';
import { mutatedSessions, randomBytes, randomFrames } from '../support/fuzz-properties.js';

// Seeded: a failure prints its seed and path, and reruns the same way. `npm run fuzz` runs many more.
const SEED = Number(process.env.FUZZ_SEED ?? 20261121);
const RUNS = { numRuns: 3000, seed: SEED };

describe('FrontendFramer under fuzzing, against an independent reference model', () => {
  // Each property: never throws, refuses at most once and last, with a SQLSTATE, and forwards exactly
  // the bytes the model allows (nothing from a refused frame on).
  it('mutated valid sessions split anywhere', () => fc.assert(mutatedSessions, RUNS));
  it('random bytes split anywhere', () => fc.assert(randomBytes, RUNS));
  it('random bytes after a valid startup', () => fc.assert(randomFrames, RUNS));
});
