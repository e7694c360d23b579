// What a run was trained on, as facts kept in its train state (extra) and compared when it is resumed: the data's
// sha256, the tokenizer's and the coarse map's hashes. A resumed run on other data would continue a trajectory it
// never started; it is refused, naming the saved and the given value.
import { CtfError } from '../errors.js';
import { describeData, type DataIdentity } from '../tokenizer/data-identity.js';
import type { LoadedTrainState } from './checkpoint.js';
import { canonicalJson } from './resume.js';

/** One fact about what a run trains on, kept in its train state (extra[key]) and compared on --resume. */
export interface IdentityCheck {
  key: string;
  value: unknown;                                        // this run's
  same?: (saved: unknown, mine: unknown) => boolean;     // default: equal as canonical JSON
  /** What differs and what to do, after "--resume: <state> ": "was trained on …, --tokens X holds … — resume …". */
  mismatch: (saved: unknown) => string;
}

/** Throws unless a resumed run was trained on what this one is. */
export function checkIdentity(saved: LoadedTrainState, checks: readonly IdentityCheck[]): void {
  const extra = (saved.extra ?? {}) as Record<string, unknown>;
  for (const c of checks) {
    const had = extra[c.key];
    const same = c.same ?? ((a, b) => canonicalJson(a) === canonicalJson(b));
    if (!same(had, c.value))
      throw new CtfError(`--resume: ${saved.source} ${c.mismatch(had)}, or start anew with --force`);
  }
}

/** The images of a tokenizer or classifier run (--data, --limit, the preprocessing), by their sha256. */
export function dataCheck(identity: DataIdentity): IdentityCheck {
  return {
    key: 'data', value: identity,
    same: (had) => had === undefined || (had as DataIdentity).sha256 === identity.sha256,
    mismatch: (had) => `was trained on ${describeData(had as DataIdentity)}, not on this data: ` +
      `${describeData(identity)} — resume with the same --data and --limit`,
  };
}
