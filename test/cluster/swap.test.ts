import assert from 'node:assert/strict';
import { test } from 'node:test';
import { membersOf, type CoarseMap } from '../../src/cluster/coarse-map.js';
import { swapWithinClusters } from '../../src/cluster/swap.js';
import { Rng } from '../../src/engine/rng.js';
import { CtfError } from '../../src/errors.js';

test('swapWithinClusters: another member of the same cluster, uniformly; singletons stay; seeded', () => {
  const fineToCoarse = Int32Array.from([0, 1, 0, 2, 0, 1, 0]);  // cluster 0: {0,2,4,6}, 1: {1,5}, 2: {3}
  const map: Pick<CoarseMap, 'v' | 'fineToCoarse' | 'members'> = { v: 7, fineToCoarse, members: membersOf(fineToCoarse, 3) };
  const tokens = Int32Array.from({ length: 6000 }, (_, i) => [2, 5, 3][i % 3]!);
  const out = swapWithinClusters(tokens, map, new Rng(1));
  const counts = new Map<string, number>();
  out.forEach((s, i) => {
    const t = tokens[i]!;
    assert.equal(fineToCoarse[s], fineToCoarse[t], `token ${t} left its cluster for ${s}`);
    if (t === 3) assert.equal(s, 3);
    else assert.notEqual(s, t);
    counts.set(`${t}→${s}`, (counts.get(`${t}→${s}`) ?? 0) + 1);
  });
  assert.equal(counts.get('5→1'), 2000);
  for (const s of [0, 4, 6]) assert.ok(Math.abs(counts.get(`2→${s}`)! - 2000 / 3) < 100, `2→${s}: ${counts.get(`2→${s}`)}`);
  assert.deepEqual(swapWithinClusters(tokens, map, new Rng(1)), out);
  assert.throws(() => swapWithinClusters(Int32Array.from([7]), map, new Rng(1)), CtfError);
});
