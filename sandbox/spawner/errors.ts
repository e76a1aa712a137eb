/**
 * The spawner library's errors: one class, a closed set of codes, each documented in sandbox/spawner/README.md.
 */
import { DmaboxError } from '../../common/errors.js';

export type SpawnerCode =
  | 'ERR_SPAWNER_IDENTITY' // no identity can be had: the range is used up, or a pinned identity is taken
  | 'ERR_SPAWNER_LAUNCH' // the process could not be started (spawn failed, bwrap said nothing)
  | 'ERR_SPAWNER_CGROUP' // its cgroup could not be made or limited
  | 'ERR_SPAWNER_ARG'; // a launch spec out of range

export class SpawnerError extends DmaboxError<SpawnerCode> {}
