// The paper's key observation as an operation: replace every token by a random *other* member of its
// cluster. With k-means clusters the decoded image barely changes; with random clusters it falls apart.
import { CtfError } from '../errors.js';
import type { Rng } from '../engine/rng.js';
import type { CoarseMap } from './coarse-map.js';

/**
 * tokens (any shape, fine ids) -> the same shape, each id replaced by a uniformly drawn other member of
 * its cluster (an id alone in its cluster stays). One draw per token, in order, from rng.
 */
export function swapWithinClusters(tokens: Int32Array, map: Pick<CoarseMap, 'v' | 'fineToCoarse' | 'members'>, rng: Rng): Int32Array {
  const out = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!(t >= 0 && t < map.v)) throw new CtfError(`swapWithinClusters: token ${i} is ${t}, outside the map's [0, ${map.v})`);
    const members = map.members[map.fineToCoarse[t]!]!;
    const r = rng.int(Math.max(1, members.length - 1));
    if (members.length === 1) { out[i] = t; continue; }
    // Members are ascending: skip t's own slot.
    const pick = members[r]! < t ? members[r]! : members[r + 1]!;
    out[i] = pick;
  }
  return out;
}
