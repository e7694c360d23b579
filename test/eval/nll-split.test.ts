// The likelihood split against the models' own cross-entropy: the baseline's total is its loss, stage 1's coarse
// part is its loss, the aux's within + outside parts are its loss; and the coarse + within split of the baseline
// is what marginalising its distribution over each cluster gives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildCoarseMap } from '../../src/cluster/coarse-map.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import { nllSplit } from '../../src/eval/nll-split.js';
import { Gpt, gptConfig } from '../../src/models/gpt.js';

const V = 40, K = 6, grid = 3, T = grid * grid, N = 7;

function model(inVocab: number, outVocab: number, causal: boolean, seed: number): Gpt {
  const g = new Gpt(gptConfig('tiny', { inVocab, outVocab, numClasses: 3, grid, causal }), new Rng(seed));
  new Rng(seed).split('head').fillNormal(g.output.f32, 0, 0.3);
  return g;
}

test('nllSplit agrees with each model\'s cross-entropy on the same tokens', () => {
  const map = buildCoarseMap(new Tensor(new Rng(3).fillNormal(new Float32Array(V * 4)), [V, 4]), {
    k: K,
    seed: 0,
    restarts: 1,
    maxIter: 20,
    tokenizerHash: 'h',
  }).map;
  const rng = new Rng(9),
    fine = Int32Array.from({ length: N * T }, () => rng.int(V)),
    classes = Int32Array.from({ length: N }, (_, i) => i % 3);
  const coarse = fine.map((f) => map.fineToCoarse[f]!);
  const prefix = (x: Int32Array): Int32Array =>
    Int32Array.from({ length: N * (T - 1) }, (_, j) => x[Math.floor(j / (T - 1)) * T + (j % (T - 1))]!);
  const baseline = model(V, V, true, 1), stage1 = model(K, K, true, 2), aux = model(K, V, false, 3);
  const s = nllSplit({ baseline, stage1, aux }, map, fine, classes, { batch: 3 });
  const ce = (m: Gpt, inputs: Int32Array, targets: Int32Array): number =>
    m.loss(classes, inputs, targets, { training: false }).loss.item();
  assert.ok(Math.abs(s.baseline!.total - ce(baseline, prefix(fine), fine)) < 1e-5);
  assert.ok(Math.abs(s.stage1!.coarse - ce(stage1, prefix(coarse), coarse)) < 1e-5);
  assert.ok(Math.abs(s.aux!.within + s.aux!.outside - ce(aux, coarse, fine)) < 1e-5);
  assert.ok(s.baseline!.coarse > 0 && s.baseline!.within > 0 && s.aux!.outside > 0);
  assert.ok(Math.abs(s.baseline!.coarse + s.baseline!.within - s.baseline!.total) < 1e-12);
  // other batches: GEMM blocking may round differently
  const other = nllSplit({ aux }, map, fine, classes, { batch: 5 }).aux!;
  assert.ok(
    Math.abs(other.within - s.aux!.within) < 1e-5 && Math.abs(other.outside - s.aux!.outside) < 1e-5,
    'the batch size does not matter',
  );
});
