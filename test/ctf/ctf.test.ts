// The two stages together: seeded CTF samples independent of chunking and of the rest of the request, the baseline
// as the shared decode loop over fine tokens, and the checks that refuse models and maps not made for each other.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { membersOf } from '../../src/cluster/coarse-map.js';
import { baselineSample } from '../../src/ctf/baseline.js';
import { checkCtfModels, ctfSample } from '../../src/ctf/ctf.js';
import { generate } from '../../src/ctf/generate.js';
import { sampleCoarse } from '../../src/ctf/stage1.js';
import { refine } from '../../src/ctf/stage2.js';
import { GRID, agreement, randomCoarseMap, tinyCtf, tinyGpt } from './models.js';

const { K, V, map, stage1, aux, classes, coarse } = tinyCtf(), T = GRID * GRID;

test('CTF samples do not depend on the chunk size or the rest of the request; seeds matter', () => {
  const o = { classes, cfgScale: 2, seed: 8, stage2: { temperature: 1.1 } };
  const ref = ctfSample(stage1, aux, map, o);
  for (const batchSize of [1, 5]) {
    const r = ctfSample(stage1, aux, map, { ...o, batchSize });
    assert.deepEqual(r.coarse, ref.coarse, `coarse, batchSize ${batchSize}`);
    assert.deepEqual(r.fine, ref.fine, `fine, batchSize ${batchSize}`);
  }
  // Images 0 and 1 of class 2 alone: request positions 2 and 7 of classes.
  const alone = ctfSample(stage1, aux, map, { ...o, classes: Int32Array.from([2, 2]) });
  assert.deepEqual(alone.fine.subarray(0, T), ref.fine.subarray(2 * T, 3 * T));
  assert.deepEqual(alone.fine.subarray(T), ref.fine.subarray(7 * T, 8 * T));
  const other = ctfSample(stage1, aux, map, { ...o, seed: 9 });
  assert.ok(agreement(other.fine, ref.fine) < 0.5);
  assert.ok(ref.seconds.stage1 > 0 && ref.seconds.stage2 > 0);
});

test('baselineSample is generate() over fine tokens', () => {
  const baseline = tinyGpt(V, V, true, 3);
  const o = { classes, cfgScale: 2, temperature: 1.1, topK: 30, seed: 2 };
  assert.deepEqual(baselineSample(baseline, o).fine, generate(baseline, o));
});

test('mismatched models and maps are refused, naming the mismatch', () => {
  assert.throws(() => checkCtfModels(stage1, stage1, map), /auxiliary model is causal/);
  assert.throws(() => checkCtfModels(aux, aux, map), /stage-1 model is bidirectional/);
  assert.throws(() => checkCtfModels(stage1, aux, randomCoarseMap(K, V + 1, 1)), /V = 97/);
  assert.throws(() => checkCtfModels(tinyGpt(K + 1, K + 1, true, 1), aux, map), /K = 8/);
  const broken = { ...map, members: map.members.map((m, c) => (c === 0 ? m.slice(1) : m)) };
  assert.throws(() => checkCtfModels(stage1, aux, broken), /exactly once/);
  assert.throws(() => refine(aux, map, classes, coarse.subarray(1)), /coarse labels/);
  assert.throws(() => sampleCoarse(aux, map, { classes }), /stage 1: the stage-1 model is bidirectional/);
  assert.throws(() => sampleCoarse(tinyGpt(K + 1, K + 1, true, 1), map, { classes }), /K = 8 clusters/);
});

test('a coarse map with an empty cluster is refused by every sampler, even where no image would predict it', () => {
  // k-means re-seeds every empty cluster and the random mode copies its sizes (test/cluster), so a map with one
  // was not made by ctfgen; the one check (checkCoarseMap) refuses it wherever a sampler takes a map.
  const fineToCoarse = map.fineToCoarse.map((c) => (c === 3 ? 2 : c));  // cluster 3's members join cluster 2
  const empty = { k: K, v: V, fineToCoarse, members: membersOf(fineToCoarse, K) };
  assert.equal(empty.members[3]!.length, 0);
  const avoiding = coarse.map((c) => (c === 3 ? 2 : c));
  assert.throws(() => checkCtfModels(stage1, aux, empty), /ctf: coarse map: field "members": cluster 3 is empty/);
  assert.throws(() => refine(aux, empty, classes, avoiding),
    /stage 2: coarse map: field "members": cluster 3 is empty/);
  assert.throws(() => ctfSample(stage1, aux, empty, { classes }), /cluster 3 is empty/);
  assert.doesNotThrow(() => refine(aux, map, classes, avoiding), 'the same labels with the full map');
});
